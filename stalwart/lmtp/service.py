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

from twisted.internet import protocol

from stalwart.lmtp.server import LMTPServer, LmtpLimits
from stalwart.mail.delivery import Envelope, build_delivery
from stalwart.mail.recipients import resolve_recipient
from stalwart.service.listener import ListeningService, tls_options

__all__ = ["LmtpFactory", "LmtpService", "trusted_networks"]


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


class LmtpService(ListeningService):
    """Listens on lmtp-bind-addr:lmtp-port; not built when lmtp-port is 0."""

    port_key = "lmtp-port"

    def __init__(self, config, node, reactor, host: Optional[str] = None,
                 delivered: Optional[Callable] = None) -> None:
        tls = None
        if config.lmtp_cert_path is not None:
            tls = tls_options(config.lmtp_cert_path, config.lmtp_key_path, "lmtp-cert-path/lmtp-key-path")
        self.config = config
        self.factory = LmtpFactory(
            node, reactor, host or _host_name(), LmtpLimits(message_bytes_max=config.mail_max_size),
            trusted_networks(config.lmtp_trusted_ips), tls=tls, tls_only=config.lmtp_tls_only,
            delivered=delivered,
        )
        super().__init__(
            lambda: reactor.listenTCP(config.lmtp_port, self.factory, interface=config.lmtp_bind_addr),
            f"{config.lmtp_bind_addr}:{config.lmtp_port}",
        )


def _host_name() -> str:
    """This machine's name, for the greeting and Received headers (no DNS lookup)."""
    import socket

    return socket.gethostname()
