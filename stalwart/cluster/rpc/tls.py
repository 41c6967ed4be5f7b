# -*- test-case-name: tests.cluster.rpc.test_tls -*-
"""
TLS for cluster RPC: the certificate, the contexts, the channel binding.

Nodes do not verify each other's certificates: admission is by the key
proof of L{stalwart.cluster.rpc.auth}, which binds to the TLS channel
through L{channel_binding}.  So with only C{encryption-key} configured a
node makes itself a self-signed certificate at first start and reuses it;
a configured certificate (C{cert_path}, C{key_path}) is used instead when
given.  Files under C{<data-dir>/rpc/}::

    key.pem    PKCS#8 private key (EC P-256), mode 0600
    cert.pem   self-signed X.509 certificate for the key

Recovery: each file is written to a temporary name, fsynced and renamed,
key first; a missing or unreadable pair is made anew at the next start
(peers pin nothing, so a new certificate costs nothing).

Channel binding (what both proofs cover): 32 bytes of keying material
exported under the label C{EXPORTER-stalwart-rpc} (RFC 5705; RFC 9266's
tls-exporter for TLS 1.3), then the SHA-256 of the server's certificate as
each side sees it.  A man in the middle terminates two TLS sessions with
different exporter secrets, and cannot present the server's certificate
without its key; either difference breaks every relayed proof.  The
certificate digest also keeps the binding sound on TLS 1.2 should the
extended master secret (RFC 7627) not be negotiated.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from typing import Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, ITransport
from zope.interface import implementer

__all__ = [
    "EXPORTER_LABEL",
    "load_or_create",
    "server_options",
    "ClientCreator",
    "server_binding",
    "client_binding",
]

EXPORTER_LABEL = b"EXPORTER-stalwart-rpc"
EXPORTER_BYTES = 32
_VALIDITY = datetime.timedelta(days=100 * 365)


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _self_signed(now: datetime.datetime) -> Tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stalwart-jmap cluster rpc")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _read_pair(cert_path: str, key_path: str) -> Tuple[bytes, bytes]:
    with open(cert_path, "rb") as f:
        cert_pem = f.read()
    with open(key_path, "rb") as f:
        key_pem = f.read()
    ssl.PrivateCertificate.loadPEM(key_pem + b"\n" + cert_pem)  # raises if they do not match
    return cert_pem, key_pem


def load_or_create(data_dir: str, now: datetime.datetime, cert_path: Optional[str] = None,
                   key_path: Optional[str] = None) -> Tuple[bytes, bytes]:
    """
    The PEM certificate and key for the RPC listener: the configured pair if
    given, else the one in C{data_dir/rpc/}, made now if missing or broken.

    @param now: the current time, for the new certificate's validity.
    """
    if (cert_path is None) != (key_path is None):
        raise ValueError("give both the RPC certificate and its key, or neither")
    if cert_path is not None and key_path is not None:
        return _read_pair(cert_path, key_path)
    directory = os.path.join(data_dir, "rpc")
    cert_file, key_file = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    try:
        return _read_pair(cert_file, key_file)
    except (OSError, crypto.Error, SSL.Error, ValueError):
        pass
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_pem, key_pem = _self_signed(now)
    _write_atomically(key_file, key_pem, 0o600)
    _write_atomically(cert_file, cert_pem, 0o644)
    _fsync_dir(directory)
    return cert_pem, key_pem


def server_options(cert_pem: bytes, key_pem: bytes) -> ssl.CertificateOptions:
    """The listener's TLS options: TLS 1.2 or later, no client certificates asked."""
    pair = ssl.PrivateCertificate.loadPEM(key_pem + b"\n" + cert_pem)
    return ssl.CertificateOptions(
        privateKey=pair.privateKey.original,
        certificate=pair.original,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )


@implementer(IOpenSSLClientConnectionCreator)
class ClientCreator:
    """
    Client TLS connections that do not verify the server's certificate
    (admission is by the key proof instead), TLS 1.2 or later.
    """

    def __init__(self) -> None:
        self._context = ssl.CertificateOptions(raiseMinimumTo=ssl.TLSVersion.TLSv1_2).getContext()
        self._context.set_verify(SSL.VERIFY_NONE, lambda *args: True)

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        return connection


def _binding(connection: SSL.Connection, certificate: Optional[x509.Certificate]) -> bytes:
    assert certificate is not None, "channel binding before the TLS handshake"
    exported = connection.export_keying_material(EXPORTER_LABEL, EXPORTER_BYTES)
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return exported + digest


def server_binding(transport: ITransport) -> bytes:
    """The channel binding on the accepting side of a TLS transport."""
    connection = transport.getHandle()  # type: ignore[attr-defined]
    return _binding(connection, connection.get_certificate(as_cryptography=True))


def client_binding(transport: ITransport) -> bytes:
    """The channel binding on the connecting side of a TLS transport."""
    connection = transport.getHandle()  # type: ignore[attr-defined]
    return _binding(connection, connection.get_peer_certificate(as_cryptography=True))
