# -*- test-case-name: tests.lmtp.test_service -*-
"""
The C{"lmtp"} service: the LMTP listener of a node (RFC 2033).

Every node accepts LMTP.  A recipient is looked up on the node's own
state (L{stalwart.mail.recipients}); a delivery is one C{mail.deliver}
command proposed through the node's write path (DESIGN.md section 1), so
when there is no leader, or the store fails, the proposal fails and every
recipient is answered 451 for the MTA to retry.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Optional, Sequence

from twisted.application.service import Service
from twisted.internet import protocol
from twisted.internet.error import CannotListenError

from stalwart.lmtp.server import LMTPServer, LmtpLimits
from stalwart.mail.delivery import Envelope, build_delivery
from stalwart.mail.recipients import resolve_recipient
from stalwart.service.errors import ConfigError

__all__ = ["LmtpFactory", "LmtpService", "trusted_networks", "tls_options"]


def trusted_networks(entries: Sequence[str]) -> Callable[[str], bool]:
    """C{trusted(ip)}: whether C{ip} is in one of the addresses or CIDR networks."""
    networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def trusted(ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    return trusted


def tls_options(cert_path: str, key_path: str):
    """The STARTTLS context factory from a PEM chain and key (read at start)."""
    from OpenSSL import crypto
    from twisted.internet import ssl

    try:
        with open(cert_path, "rb") as f:
            pem = f.read()
        with open(key_path, "rb") as f:
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
        marker = b"-----BEGIN CERTIFICATE-----"
        certs = [crypto.load_certificate(crypto.FILETYPE_PEM, marker + b) for b in pem.split(marker)[1:]]
    except (OSError, crypto.Error) as e:
        raise ConfigError(f"lmtp-cert-path/lmtp-key-path: cannot load: {e}") from None
    if not certs:
        raise ConfigError(f"lmtp-cert-path: no certificate in {cert_path}")
    return ssl.CertificateOptions(
        privateKey=key, certificate=certs[0], extraCertChain=certs[1:], raiseMinimumTo=ssl.TLSVersion.TLSv1_2
    )


class LmtpFactory(protocol.ServerFactory):
    """
    Builds an L{LMTPServer} per connection, bound to a node's read and
    write paths.

    @param node: a L{stalwart.service.node.Node} (its reader and propose).
    @param delivered: hook called after each delivery's replies; vacation
        auto-replies (RFC 3834, through the SMTP relay) will plug in here.
    """

    def __init__(self, node, clock, host: str, limits: LmtpLimits, trusted: Callable[[str], bool],
                 tls=None, tls_only: bool = False, delivered: Optional[Callable] = None) -> None:
        self.node, self.clock, self.host = node, clock, host.encode("idna")
        self.limits, self.trusted, self.tls, self.tls_only = limits, trusted, tls, tls_only
        self.delivered = delivered

    def resolve(self, address: str):
        return self.node.reader.run(resolve_recipient, address)

    def deliver(self, envelope: Envelope, recipients, message: bytes):
        return self.node.propose(build_delivery(envelope, recipients, message, self.clock.seconds()))

    def buildProtocol(self, addr):
        server = LMTPServer(self.resolve, self.deliver, self.clock, self.host, self.limits,
                            trusted=self.trusted, tls=self.tls, tls_only=self.tls_only, delivered=self.delivered)
        server.factory = self
        return server


class LmtpService(Service):
    """Listens on lmtp-bind-addr:lmtp-port; not built when lmtp-port is 0."""

    def __init__(self, config, node, reactor, host: Optional[str] = None,
                 delivered: Optional[Callable] = None) -> None:
        tls = None
        if config.lmtp_cert_path is not None:
            tls = tls_options(config.lmtp_cert_path, config.lmtp_key_path)
        self.config = config
        self._reactor = reactor
        self.factory = LmtpFactory(
            node, reactor, host or _host_name(), LmtpLimits(message_bytes_max=config.mail_max_size),
            trusted_networks(config.lmtp_trusted_ips), tls=tls, tls_only=config.lmtp_tls_only,
            delivered=delivered,
        )
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
        c = self.config
        try:
            self.port = self._reactor.listenTCP(c.lmtp_port, self.factory, interface=c.lmtp_bind_addr)
        except CannotListenError as e:
            raise ConfigError(f"lmtp-port: cannot listen on {c.lmtp_bind_addr}:{c.lmtp_port}: {e.socketError}") from None

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def _host_name() -> str:
    """This machine's name, for the greeting and Received headers (no DNS lookup)."""
    import socket

    return socket.gethostname()
