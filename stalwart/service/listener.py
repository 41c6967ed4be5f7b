# -*- test-case-name: tests.service.test_maker -*-
"""
What the JMAP and LMTP listeners share: binding their port (before
privileges are dropped under twistd, or at start when embedded), a port in
use reported as one line naming the key, and TLS options read from PEM files.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.error import CannotListenError

from stalwart.service.errors import ConfigError

__all__ = ["ListeningService", "tls_options"]


def tls_options(cert_path: str, key_path: str, keys: str) -> ssl.CertificateOptions:
    """
    Server TLS (1.2 or later) from a PEM certificate chain and key.
    @param keys: the configuration keys named in errors, e.g. "jmap-cert-path/jmap-key-path".
    """
    from OpenSSL import crypto

    try:
        with open(cert_path, "rb") as f:
            pem = f.read()
        with open(key_path, "rb") as f:
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
        marker = b"-----BEGIN CERTIFICATE-----"
        certs = [crypto.load_certificate(crypto.FILETYPE_PEM, marker + b) for b in pem.split(marker)[1:]]
    except (OSError, crypto.Error) as e:
        raise ConfigError(f"{keys}: cannot load: {e}") from None
    if not certs:
        raise ConfigError(f"{keys}: no certificate in {cert_path}")
    return ssl.CertificateOptions(
        privateKey=key, certificate=certs[0], extraCertChain=certs[1:], raiseMinimumTo=ssl.TLSVersion.TLSv1_2
    )


class ListeningService(Service):
    """A service owning one listening port, opened by C{listen()}."""

    #: The configuration key named when the port cannot be bound.
    port_key = "port"

    def __init__(self, listen: Callable[[], object], address: str) -> None:
        """
        @param listen: binds and returns the port (may raise CannotListenError).
        @param address: "host:port", for the error message.
        """
        self._listen_now = listen
        self._address = address
        self.port = None

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        self._listen()
        super().startService()

    def _listen(self) -> None:
        if self.port is not None:
            return
        try:
            self.port = self._listen_now()
        except CannotListenError as e:
            raise ConfigError(f"{self.port_key}: cannot listen on {self._address}: {e.socketError}") from None

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None
