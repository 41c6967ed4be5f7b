# -*- test-case-name: tests.cluster.rpc.test_service -*-
"""
The cluster RPC service: listens with TLS on C{rpc-bind-addr}:C{rpc-port},
admits only peers holding the cluster key, hands each Raft message it
receives to C{deliver}, and sends Raft messages to their recipients.

Routing: C{send(message)} looks C{message.recipient} up in the address
book (node id -> (host, port)), which the caller owns and may change while
running; each address gets one outgoing link (L{stalwart.cluster.rpc.peers}).
A received message whose recipient is not this node is dropped and counted.
Everything refused or dropped is counted in L{RPCService.counters}.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from typing import Any, Callable, List, Mapping, Optional, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.raft.messages import Message
from stalwart.cluster.rpc import auth, tls
from stalwart.cluster.rpc.peers import Address, PeerLinks
from stalwart.cluster.rpc.protocol import ClientProtocol, ServerProtocol, Connection

__all__ = ["RPCService"]

_MiB = 1024 * 1024


class _Factory(Factory):
    def __init__(self, build: Callable[[], Connection]) -> None:
        self._build = build

    def buildProtocol(self, addr: Any) -> Connection:
        protocol = self._build()
        protocol.factory = self
        return protocol


class RPCService(Service):
    """
    @param reactor: provides IReactorTCP, IReactorSSL, IReactorTime and name
        resolution.
    @param timeout_ms: C{rpc-timeout}: connect, TLS and admission together,
        on both sides; a peer slower than this is dropped.
    @param backoff_max_ms: C{rpc-backoff-max}: longest wait between
        reconnection attempts.  Short, because a restarted node receives
        nothing (no votes, no entries) until its peers reconnect to it, and
        a retry costs one SYN.
    @param message_bytes_max: largest message accepted from an admitted
        peer; must exceed the largest log entry (max-size-upload plus its
        command) and raft-batch-max.
    @param queue_messages_max: messages queued per peer before the oldest
        is dropped; C{queue_bytes_max}: the same, in encoded bytes.
    @param inflight_max: messages sent to a peer and not yet acknowledged.
    """

    log = Logger(observer=observer)

    def __init__(self, *, reactor: Any, node_id: str, bind_addr: str, port: int, encryption_key: str,
                 data_dir: str, address_book: Mapping[str, Tuple[str, int]],
                 deliver: Callable[[Message], None], rng: random.Random, urandom: Callable[[int], bytes],
                 cert_path: Optional[str] = None, key_path: Optional[str] = None,
                 timeout_ms: int = 1000, backoff_max_ms: int = 2000, backoff_initial_ms: int = 50,
                 message_bytes_max: int = 64 * _MiB, queue_messages_max: int = 1024,
                 queue_bytes_max: int = 64 * _MiB, inflight_max: int = 32) -> None:
        self._reactor = reactor
        self._node_id = node_id
        self._bind = (bind_addr, port)
        self._data_dir = data_dir
        self._tls_paths = (cert_path, key_path)
        self._address_book = address_book
        self._deliver_to = deliver
        self._timeout_seconds = timeout_ms / 1000
        self.counters: Counter = Counter()
        common = dict(key=auth.derive_key(encryption_key), urandom=urandom, clock=reactor,
                      counters=self.counters, timeout_seconds=self._timeout_seconds)
        self._server_factory = _Factory(lambda: self._track(ServerProtocol(
            deliver=self._deliver, message_bytes_max=message_bytes_max, binding=tls.server_binding, **common)))
        self._client_factory = _Factory(lambda: self._track(ClientProtocol(binding=tls.client_binding, **common)))
        self._link_options = dict(
            clock=reactor, rng=rng, counters=self.counters, timeout_seconds=self._timeout_seconds,
            backoff_initial_seconds=backoff_initial_ms / 1000, backoff_max_seconds=backoff_max_ms / 1000,
            queue_messages_max=queue_messages_max, queue_bytes_max=queue_bytes_max, inflight_max=inflight_max)
        self._connections: List[Connection] = []
        self._listening: Any = None
        self._links: Optional[PeerLinks] = None
        self._creator: Optional[tls.ClientCreator] = None

    @property
    def address(self) -> Tuple[str, int]:
        """The address the listener is bound to (its real port when asked for port 0)."""
        host = self._listening.getHost()
        return host.host, host.port

    def startService(self) -> None:
        cert_pem, key_pem = tls.load_or_create(self._data_dir, datetime.datetime.now(datetime.timezone.utc),
                                               *self._tls_paths)
        self._creator = tls.ClientCreator()
        self._links = PeerLinks(self._connect, **self._link_options)
        self._listening = self._reactor.listenSSL(self._bind[1], self._server_factory,
                                                  tls.server_options(cert_pem, key_pem), interface=self._bind[0])
        super().startService()
        self.log.info("cluster RPC listening on {address}", address=self.address)

    def stopService(self) -> Deferred:
        """Stop listening and close every connection; fires once all are closed."""
        super().stopService()
        waits = [maybeDeferred(self._listening.stopListening)]
        if self._links is not None:
            waits.append(self._links.stop())
        for protocol in list(self._connections):
            waits.append(protocol.when_lost())
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        return DeferredList(waits, consumeErrors=True)

    def send(self, message: Message) -> None:
        """Send C{message} to its recipient, or drop it if that node has no known address."""
        address = self._address_book.get(message.recipient)
        if address is None:
            self.counters["dropped_unknown_recipient"] += 1
            self.log.debug("no RPC address for {node}", node=message.recipient)
            return
        if not self.running or self._links is None:
            self.counters["dropped_stopped"] += 1
            return
        self._links.send(tuple(address), message)

    def probe(self, address: Address) -> Deferred:
        """
        Connect to C{address} and run the admission exchange, then close:
        fires with None if both sides proved the key, or fails (for
        example with L{stalwart.cluster.rpc.protocol.AdmissionFailed}).
        """
        def close(protocol: ClientProtocol) -> Deferred:
            protocol.transport.loseConnection()
            return protocol.when_lost()

        return self._connect(address).addTimeout(self._timeout_seconds, self._reactor).addCallback(close)

    def _deliver(self, message: Message) -> None:
        if message.recipient != self._node_id:
            self.counters["dropped_misrouted"] += 1
            self.log.warn("RPC message for {node} reached {me}", node=message.recipient, me=self._node_id)
            return
        self._deliver_to(message)

    def _connect(self, address: Address) -> Deferred:
        host, port = address
        endpoint = wrapClientTLS(self._creator, HostnameEndpoint(
            self._reactor, host, port, timeout=max(1, round(self._timeout_seconds))))
        return endpoint.connect(self._client_factory).addCallback(lambda protocol: protocol.admitted)

    def _track(self, protocol: Connection) -> Connection:
        self._connections.append(protocol)
        protocol.when_lost().addCallback(lambda _: self._connections.remove(protocol))
        return protocol
