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

Calls: C{exchange(address, data)} and C{forward(address, payload)} go to
an address (a member or a seed) over a pool of call connections of their
own (L{stalwart.cluster.rpc.calls}); a peer's C{Exchange} and C{Forward}
go to the C{exchange} and C{forward} handlers given to the constructor.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.raft.messages import Message
from stalwart.cluster.rpc import auth, tls
from stalwart.cluster.rpc.calls import CallPools, Unreachable
from stalwart.cluster.rpc.chunks import CHUNK_BYTES
from stalwart.cluster.rpc.commands import Exchange, Forward
from stalwart.cluster.rpc.peers import Address, PeerLinks
from stalwart.cluster.rpc.protocol import (
    ClientProtocol,
    Connection,
    ExchangeHandler,
    ForwardHandler,
    ServerProtocol,
)

__all__ = ["RPCService"]

_MiB = 1024 * 1024
#: Box bytes besides the values: command, tag, and per chunk its key and two length prefixes.
_BOX_OVERHEAD_BYTES = 256
_CHUNK_OVERHEAD_BYTES = 32


def _box_bytes(value_bytes: int) -> int:
    """An upper bound of the bytes of a box carrying one chunked value of C{value_bytes}."""
    return value_bytes + _BOX_OVERHEAD_BYTES + _CHUNK_OVERHEAD_BYTES * (value_bytes // CHUNK_BYTES + 1)


class _Factory(Factory):
    def __init__(self, build: Callable[[], Connection]) -> None:
        self._build = build

    def buildProtocol(self, addr: Any) -> Connection:
        protocol = self._build()
        protocol.factory = self
        return protocol


class RPCService(Service):
    """
    @param peer_lost: called with a peer's node id when the connection its
        Raft messages arrived on is lost.
    @param accepted_keys: further cluster keys a connecting peer may prove
        (key rotation: L{auth.ServerAdmission}); this node proves
        C{encryption_key}.
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
    @param exchange: answers a peer's C{Exchange} document with this node's
        (bytes or a Deferred of them); None answers
        L{stalwart.cluster.rpc.commands.Unavailable}.
    @param forward: proposes a peer's forwarded write; a Deferred of its
        C{(term, index)} once applied here, or failing with
        L{stalwart.cluster.rpc.commands.NotLeader} or C{Unavailable}; None
        answers C{Unavailable}.
    @param forward_timeout_ms: deadline of a L{forward} call: commit and
        apply of a large entry take much longer than rpc-timeout, the
        deadline of every other call.
    @param exchange_bytes_max: largest C{Exchange} document either way; a
        membership document of hundreds of members is tens of KiB.
    @param call_connections_max: call connections (so calls in flight)
        per address; each is a TLS connection, and a follower's forwards
        beyond it wait.
    @param call_queue_max: calls waiting per address beyond those in
        flight; more fail at once with
        L{stalwart.cluster.rpc.calls.Overloaded} rather than pile up.
    @param call_queue_bytes_max: argument bytes waiting per address.
    @param call_idle_ms: a call connection unused this long is closed;
        exchanges come every second or so, to one member in N.
    """

    log = Logger(observer=observer)

    def __init__(self, *, reactor: Any, node_id: str, bind_addr: str, port: int, encryption_key: str,
                 accepted_keys: Sequence[str] = (), peer_lost: Optional[Callable[[str], None]] = None,
                 data_dir: str, address_book: Mapping[str, Tuple[str, int]],
                 deliver: Callable[[Message], None], rng: random.Random, urandom: Callable[[int], bytes],
                 cert_path: Optional[str] = None, key_path: Optional[str] = None,
                 timeout_ms: int = 1000, backoff_max_ms: int = 2000, backoff_initial_ms: int = 50,
                 message_bytes_max: int = 64 * _MiB, queue_messages_max: int = 1024,
                 queue_bytes_max: int = 64 * _MiB, inflight_max: int = 32,
                 exchange: Optional[ExchangeHandler] = None, forward: Optional[ForwardHandler] = None,
                 forward_timeout_ms: int = 30000, exchange_bytes_max: int = _MiB, call_connections_max: int = 8,
                 call_queue_max: int = 64, call_queue_bytes_max: int = 128 * _MiB,
                 call_idle_ms: int = 60000) -> None:
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
            deliver=self._deliver, message_bytes_max=message_bytes_max, exchange=exchange, forward=forward,
            exchange_bytes_max=exchange_bytes_max, binding=tls.server_binding,
            accepted_keys=[auth.derive_key(k) for k in accepted_keys], peer_lost=peer_lost, **common)))
        self._client_factory = _Factory(lambda: self._track(ClientProtocol(binding=tls.client_binding, **common)))
        self._call_factory = _Factory(lambda: self._track(ClientProtocol(
            binding=tls.client_binding, answer_bytes_max=_box_bytes(exchange_bytes_max), **common)))
        self._message_bytes_max = message_bytes_max
        self._exchange_bytes_max = exchange_bytes_max
        self._forward_timeout_seconds = forward_timeout_ms / 1000
        self._call_options = dict(
            clock=reactor, counters=self.counters, timeout_seconds=self._timeout_seconds,
            connections_max=call_connections_max, queue_calls_max=call_queue_max,
            queue_bytes_max=call_queue_bytes_max, idle_seconds=call_idle_ms / 1000)
        self._calls: Optional[CallPools] = None
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
        self._calls = CallPools(lambda address: self._connect(address, self._call_factory), **self._call_options)
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
        if self._calls is not None:
            waits.append(self._calls.stop())
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

    def exchange(self, address: Address, data: bytes) -> Deferred:
        """
        Send this node's membership document C{data} to C{address}; fires
        with the peer's, or fails with
        L{stalwart.cluster.rpc.commands.Unavailable} (from the peer) or a
        L{stalwart.cluster.rpc.calls.CallFailed}, within rpc-timeout.
        C{data} over C{exchange_bytes_max} fails with C{ValueError}.
        """
        assert isinstance(data, bytes), type(data)
        if len(data) > self._exchange_bytes_max:
            return fail(ValueError(f"exchange data of {len(data)} bytes, at most {self._exchange_bytes_max}"))
        d = self._call(address, Exchange, {"data": data}, len(data), self._timeout_seconds)
        return d.addCallback(lambda answer: answer["data"])

    def forward(self, address: Address, payload: bytes) -> Deferred:
        """
        Forward a write to the leader at C{address}; fires with the
        C{(term, index)} of its entry once the leader applied it, or fails
        with L{stalwart.cluster.rpc.commands.NotLeader}, C{Unavailable} or
        a L{stalwart.cluster.rpc.calls.CallFailed} (C{CallTimedOut} after
        C{forward_timeout_ms}).  A payload too large for a box of
        C{message_bytes_max} fails with C{ValueError}.
        """
        assert isinstance(payload, bytes), type(payload)
        if _box_bytes(len(payload)) > self._message_bytes_max:
            return fail(ValueError(f"forward payload of {len(payload)} bytes over message_bytes_max"))
        d = self._call(address, Forward, {"payload": payload}, len(payload), self._forward_timeout_seconds)
        return d.addCallback(lambda answer: (answer["term"], answer["index"]))

    def _call(self, address: Address, command: type, arguments: dict, size: int, timeout: float) -> Deferred:
        if not self.running or self._calls is None:
            self.counters["calls_stopped"] += 1
            return fail(Unreachable("cluster RPC is not running"))
        host, port = address
        return self._calls.call((host, port), command, arguments, size, timeout)

    def _deliver(self, message: Message) -> None:
        if message.recipient != self._node_id:
            self.counters["dropped_misrouted"] += 1
            self.log.warn("RPC message for {node} reached {me}", node=message.recipient, me=self._node_id)
            return
        self._deliver_to(message)

    def _connect(self, address: Address, factory: Optional[Factory] = None) -> Deferred:
        host, port = address
        endpoint = wrapClientTLS(self._creator, HostnameEndpoint(
            self._reactor, host, port, timeout=max(1, round(self._timeout_seconds))))
        return endpoint.connect(factory or self._client_factory).addCallback(lambda protocol: protocol.admitted)

    def _track(self, protocol: Connection) -> Connection:
        self._connections.append(protocol)
        protocol.when_lost().addCallback(lambda _: self._connections.remove(protocol))
        return protocol
