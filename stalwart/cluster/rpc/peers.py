# -*- test-case-name: tests.cluster.rpc.test_peers -*-
"""
The outgoing side of cluster RPC: one connection per peer address.

Each L{PeerLink} connects at once, keeps a bounded queue of encoded Raft
messages, sends up to C{inflight_max} of them unacknowledged, and on a
failed or lost connection retries after a capped exponential back-off
with jitter (the policy of Twisted's C{ClientService}, with an injected
C{random.Random}).  When the queue is full the oldest message is dropped:
Raft tolerates lost messages (its leader resends from the follower's
progress), but not an unbounded memory.  Messages in flight on a lost
connection are lost too, for the same reason.

A connection attempt (TCP, TLS, admission) must finish within
C{timeout_seconds} (C{rpc-timeout}).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from stalwart.logs import observer

from stalwart.cluster.raft.messages import Message
from stalwart.cluster.rpc import codec
from stalwart.cluster.rpc.protocol import ClientProtocol

__all__ = ["backoff_delay", "PeerLink", "PeerLinks", "Address"]

Address = Tuple[str, int]
#: Connects to one address; fires with an admitted L{ClientProtocol}.
Connect = Callable[[], Deferred]


def backoff_delay(failures: int, initial_seconds: float, max_seconds: float, rng: random.Random) -> float:
    """
    Seconds to wait after C{failures} consecutive failures (0 after a lost
    connection): C{initial * 2**failures}, capped at C{max_seconds}, then a
    uniformly random point in its upper half so that nodes that lost a peer
    together do not retry in lockstep.
    """
    ceiling = min(max_seconds, initial_seconds * 2.0 ** min(failures, 64))
    return rng.uniform(ceiling / 2, ceiling)


class PeerLink:
    """The connection to one peer address, with its queue and back-off."""

    log = Logger(observer=observer)

    def __init__(self, address: Address, *, connect: Connect, clock: IReactorTime, rng: random.Random,
                 counters: Counter, timeout_seconds: float, backoff_initial_seconds: float,
                 backoff_max_seconds: float, queue_messages_max: int, queue_bytes_max: int,
                 inflight_max: int) -> None:
        self.address = address
        self._connect_to = connect
        self._clock = clock
        self._rng = rng
        self._counters = counters
        self._timeout_seconds = timeout_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._queue_messages_max = queue_messages_max
        self._queue_bytes_max = queue_bytes_max
        self._inflight_max = inflight_max
        self._queue: Deque[Tuple[Dict[str, bytes], int]] = deque()
        self._queued_bytes = 0
        self._inflight = 0
        self._failures = 0
        self._protocol: Optional[ClientProtocol] = None
        self._attempt: Optional[Deferred] = None
        self._retry: Any = None
        self._stopped = False
        self._connect()

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send(self, message: Message) -> None:
        """Queue C{message}, dropping the oldest queued ones beyond the limits."""
        if self._stopped:
            self._counters["dropped_stopped"] += 1
            return
        arguments = codec.to_arguments(message)
        size = len(arguments["message"])
        self._queue.append((arguments, size))
        self._queued_bytes += size
        while len(self._queue) > 1 and (len(self._queue) > self._queue_messages_max
                                        or self._queued_bytes > self._queue_bytes_max):
            _, dropped = self._queue.popleft()
            self._queued_bytes -= dropped
            self._counters["dropped_queue_full"] += 1
        self._pump()

    def _connect(self) -> None:
        self._retry = None
        self._attempt = self._connect_to().addTimeout(self._timeout_seconds, self._clock)
        self._attempt.addCallbacks(self._connected, self._failed)

    def _connected(self, protocol: ClientProtocol) -> None:
        self._attempt = None
        if self._stopped:
            protocol.transport.loseConnection()
            return
        if self._failures:
            self.log.info("RPC peer {address} reachable again", address=self.address)
        self._failures = 0
        self._protocol = protocol
        protocol.when_lost().addCallback(self._lost, protocol)
        self._pump()

    def _failed(self, failure: Failure) -> None:
        self._attempt = None
        if self._stopped:
            return
        self._failures += 1
        self._counters["connect_failed"] += 1
        if self._failures == 1:
            self.log.info("RPC peer {address} unreachable: {why}", address=self.address,
                          why=failure.getErrorMessage())
        self._schedule()

    def _lost(self, _: None, protocol: ClientProtocol) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        self._inflight = 0
        if not self._stopped:
            self.log.info("RPC peer {address} connection lost", address=self.address)
            self._schedule()

    def _schedule(self) -> None:
        delay = backoff_delay(self._failures, self._backoff_initial, self._backoff_max, self._rng)
        self._retry = self._clock.callLater(delay, self._connect)

    def _pump(self) -> None:
        protocol = self._protocol
        while (protocol is not None and not protocol.closing and self._queue
               and self._inflight < self._inflight_max):
            arguments, size = self._queue.popleft()
            self._queued_bytes -= size
            self._inflight += 1
            d = protocol.send(arguments)  # errbacks attached at once: AMP logs uncaught remote errors
            d.addCallbacks(self._acked, self._not_acked, callbackArgs=(protocol,), errbackArgs=(protocol,))

    def _acked(self, _: object, protocol: ClientProtocol) -> None:
        self._counters["sent"] += 1
        if protocol is self._protocol:
            self._inflight -= 1
            self._pump()

    def _not_acked(self, failure: Failure, protocol: ClientProtocol) -> None:
        if failure.check(amp.RemoteAmpError):
            self._counters["rejected"] += 1
            self.log.warn("RPC peer {address} rejected a message: {why}", address=self.address,
                          why=failure.getErrorMessage())
        else:
            self._counters["lost_in_flight"] += 1
        if protocol is self._protocol:
            self._inflight -= 1
            self._pump()

    def stop(self) -> Deferred:
        """Stop retrying and close the connection; fires once it is closed."""
        self._stopped = True
        self._counters["dropped_stopped"] += len(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._attempt is not None:
            self._attempt.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is None:
            return succeed(None)
        lost = protocol.when_lost()
        protocol.transport.loseConnection()
        return lost


class PeerLinks:
    """
    The links of a node, one per address, made on first use.

    @param connect: given an address, connects and fires with an admitted
        L{ClientProtocol} (the service gives TLS endpoints; tests, fakes).
    @param link_options: the keyword arguments of every L{PeerLink}.
    """

    def __init__(self, connect: Callable[[Address], Deferred], **link_options: Any) -> None:
        self._connect = connect
        self._options = link_options
        self.links: Dict[Address, PeerLink] = {}
        self._stopped = False

    def send(self, address: Address, message: Message) -> None:
        if self._stopped:
            return
        link = self.links.get(address)
        if link is None:
            link = self.links[address] = PeerLink(address, connect=lambda: self._connect(address),
                                                  **self._options)
        link.send(message)

    def stop(self) -> Deferred:
        """Stop every link; fires once all their connections are closed."""
        self._stopped = True
        links, self.links = list(self.links.values()), {}
        return DeferredList([link.stop() for link in links], consumeErrors=True)
