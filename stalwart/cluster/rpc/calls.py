# -*- test-case-name: tests.cluster.rpc.test_calls -*-
"""
Request/response calls to peers (C{Exchange}, C{Forward}): a small pool of
admitted connections per address, apart from the Raft links of
L{stalwart.cluster.rpc.peers}, so that a 50 MB forward never delays a vote
or a heartbeat.

Each pooled connection carries one call at a time.  AMP could multiplex,
but then a small C{Exchange} would wait on the TCP stream behind a large
C{Forward}, and a call past its deadline could not close its connection
without failing its neighbours.  Per address:

  - at most C{connections_max} connections, open or being opened, so at
    most that many calls in flight.  A connection is opened only when a
    call waits and none is idle, and is reused for later calls (one TLS
    handshake and admission, not one per call); it is closed once idle
    for C{idle_seconds}, or when the pool stops.
  - Calls beyond that wait, in order, for a connection: at most
    C{connections_max + queue_calls_max} calls in flight or waiting, and
    C{queue_bytes_max} argument bytes waiting (a lone call may exceed
    them).  One more fails at once with
    L{Overloaded}: a caller (a JMAP request) is better told to retry than
    kept waiting, and 50 MB forwards must not pile up in memory.
  - Every call has a deadline from the moment it is made, queueing,
    connecting and answering included.  Past it the call fails with
    L{CallTimedOut} and, if it was sent, its connection is aborted (its
    state is unknown: half a payload may still be in the buffers).
  - A lost connection fails its call at once with L{CallLost}.
  - A failed connection attempt (TCP, TLS, admission, or C{timeout_seconds},
    rpc-timeout, for all three) fails every waiting call with
    L{Unreachable} when no other connection is open or being opened.
    Nothing is retried here: the caller knows whether a retry is safe.

The peer's own errors, L{NotLeader} and L{Unavailable}, reach the caller
as they are; any other AMP error (say, from an older peer without the
command) becomes L{Unavailable}.  After L{CallLost} or L{CallTimedOut}, a
forwarded write may or may not have been applied.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, Callable, Deque, Dict, Optional, Set, Tuple

import attrs
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from stalwart.logs import observer

from stalwart.cluster.rpc.commands import NotLeader, Unavailable
from stalwart.cluster.rpc.protocol import ClientProtocol

__all__ = ["CallFailed", "Unreachable", "Overloaded", "CallLost", "CallTimedOut", "CallPool", "CallPools"]

Address = Tuple[str, int]


class CallFailed(Exception):
    """A call failed on this side of the wire (the peer's answers are L{NotLeader} and L{Unavailable})."""


class Unreachable(CallFailed):
    """No admitted connection to the peer could be made, or the pool is stopped: the call was not sent."""


class Overloaded(CallFailed):
    """Too many calls already wait for the address: the call was not sent."""


class CallLost(CallFailed):
    """The connection was lost, or its answer did not parse, after the call was sent: the outcome is unknown."""


class CallTimedOut(CallFailed):
    """The call's deadline passed; if it had been sent, its outcome is unknown."""


@attrs.define(eq=False)
class _Call:
    name: str
    command: type
    arguments: Optional[Dict[str, Any]]
    size: int
    result: Deferred = attrs.field(factory=Deferred)
    timer: Any = None
    protocol: Optional[ClientProtocol] = None


def _peer_error(failure: Failure) -> Optional[Exception]:
    """The exception to give the caller for an error the peer answered, or None if it is not one."""
    if failure.check(NotLeader, Unavailable):
        return failure.value
    if failure.check(amp.RemoteAmpError):  # UnknownRemoteError: a code this command does not list
        return Unavailable(str(failure.value))
    return None


class CallPool:
    """
    The call connections to one address (see the module docstring).

    @param connect: connects to the address; fires with an admitted
        L{ClientProtocol}.
    """

    log = Logger(observer=observer)

    def __init__(self, address: Address, *, connect: Callable[[], Deferred], clock: IReactorTime,
                 counters: Counter, timeout_seconds: float, connections_max: int, queue_calls_max: int,
                 queue_bytes_max: int, idle_seconds: float) -> None:
        assert connections_max >= 1 and queue_calls_max >= 0
        self.address = address
        self._connect = connect
        self._clock = clock
        self._counters = counters
        self._timeout_seconds = timeout_seconds
        self._connections_max = connections_max
        self._queue_calls_max = queue_calls_max
        self._queue_bytes_max = queue_bytes_max
        self._idle_seconds = idle_seconds
        self._queue: Deque[_Call] = deque()
        self._queued_bytes = 0
        self._idle: Dict[ClientProtocol, Any] = {}  # protocol -> its idle timer; the newest last
        self._busy: Dict[ClientProtocol, _Call] = {}
        self._attempts: Set[Deferred] = set()
        self._stopped = False

    @property
    def connections(self) -> int:
        """Admitted connections, idle or busy."""
        return len(self._idle) + len(self._busy)

    @property
    def empty(self) -> bool:
        """Whether the pool holds nothing: no connection, attempt or waiting call."""
        return not (self._idle or self._busy or self._attempts or self._queue)

    def call(self, command: type, arguments: Dict[str, Any], size: int, timeout_seconds: float) -> Deferred:
        """
        Send C{command} with C{arguments} (C{size} bytes of them) on a
        connection of the pool; fires with the answer's dict, or fails with
        L{NotLeader}, L{Unavailable} or a L{CallFailed}.  Cancelling it
        drops the call, closing its connection if it was sent.
        """
        name = command.__name__.lower()
        if self._stopped:
            return fail(Unreachable(f"{self.address}: stopped"))
        if (len(self._busy) + len(self._queue) >= self._connections_max + self._queue_calls_max
                or (self._queue and self._queued_bytes + size > self._queue_bytes_max)):
            self._counters["calls_overloaded"] += 1
            return fail(Overloaded(f"{self.address}: {len(self._queue)} calls waiting"))
        call = _Call(name, command, arguments, size)
        call.result = Deferred(lambda d: self._cancelled(call))
        call.timer = self._clock.callLater(timeout_seconds, self._expired, call)
        self._queue.append(call)
        self._queued_bytes += size
        self._pump()
        return call.result

    def _pump(self) -> None:
        while self._queue and self._idle:
            protocol = next(reversed(self._idle))  # the most recently used: the others may idle out
            self._idle.pop(protocol).cancel()
            self._send(self._dequeue(), protocol)
        while (len(self._queue) > len(self._attempts)
               and self.connections + len(self._attempts) < self._connections_max):
            self._open()

    def _take_queue(self) -> list:
        calls = list(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        return calls

    def _dequeue(self) -> _Call:
        call = self._queue.popleft()
        self._queued_bytes -= call.size
        return call

    def _open(self) -> None:
        attempt = self._connect().addTimeout(self._timeout_seconds, self._clock)
        self._attempts.add(attempt)
        attempt.addCallbacks(self._opened, self._open_failed, callbackArgs=(attempt,), errbackArgs=(attempt,))

    def _opened(self, protocol: ClientProtocol, attempt: Deferred) -> None:
        self._attempts.discard(attempt)
        self._counters["call_connections_opened"] += 1
        protocol.when_lost().addCallback(self._lost, protocol)
        self._release(protocol)

    def _open_failed(self, failure: Failure, attempt: Deferred) -> None:
        self._attempts.discard(attempt)
        if self._stopped:
            return
        self._counters["call_connect_failed"] += 1
        self.log.info("RPC calls to {address}: cannot connect: {why}", address=self.address,
                      why=failure.getErrorMessage())
        if not (self._idle or self._busy or self._attempts):
            for call in self._take_queue():  # a call made by a caller's errback makes a new attempt
                self._finish(call, Failure(Unreachable(f"{self.address}: {failure.getErrorMessage()}")))

    def _release(self, protocol: ClientProtocol) -> None:
        """A connection is free: give it the next call, or keep it idle for a while."""
        if protocol.closing:
            return
        if self._stopped:
            protocol.transport.loseConnection()
        elif self._queue:
            self._send(self._dequeue(), protocol)
        else:
            self._idle[protocol] = self._clock.callLater(self._idle_seconds, self._idled_out, protocol)

    def _idled_out(self, protocol: ClientProtocol) -> None:
        del self._idle[protocol]
        self._counters["call_connections_idle_closed"] += 1
        protocol.transport.loseConnection()

    def _send(self, call: _Call, protocol: ClientProtocol) -> None:
        call.protocol = protocol
        self._busy[protocol] = call
        arguments, call.arguments = call.arguments, None  # the transport holds the bytes now
        self._counters[f"{call.name}_sent"] += 1
        protocol.call(call.command, **arguments).addBoth(self._answered, call, protocol)

    def _answered(self, result: Any, call: _Call, protocol: ClientProtocol) -> None:
        if self._busy.get(protocol) is not call:
            return  # expired or cancelled: its connection was aborted, its failure is expected
        del self._busy[protocol]
        if not isinstance(result, Failure):
            self._counters[f"{call.name}_answered"] += 1
        elif (error := _peer_error(result)) is not None:
            self._counters[f"{call.name}_refused"] += 1
            result = Failure(error)
        else:
            if not protocol.closing:
                protocol.transport.abortConnection()  # an answer that does not parse: trust it no more
            self._counters["calls_lost"] += 1
            self._finish(call, Failure(CallLost(f"{self.address}: {result.getErrorMessage()}")))
            return
        self._release(protocol)  # first, so that a call made by the caller's callback reuses it
        self._finish(call, result)

    def _finish(self, call: _Call, result: Any) -> None:
        if call.timer.active():
            call.timer.cancel()
        if isinstance(result, Failure):
            call.result.errback(result)
        else:
            call.result.callback(result)

    def _abandon(self, call: _Call) -> None:
        """Take C{call} out of the queue, or abort the connection it was sent on."""
        if call.timer.active():
            call.timer.cancel()
        if call.protocol is None:
            self._queue.remove(call)
            self._queued_bytes -= call.size
        elif self._busy.get(call.protocol) is call:
            del self._busy[call.protocol]
            call.protocol.transport.abortConnection()

    def _expired(self, call: _Call) -> None:
        self._counters["calls_timed_out"] += 1
        self._abandon(call)
        call.result.errback(CallTimedOut(f"{self.address}: no answer in time"))
        self._pump()

    def _cancelled(self, call: _Call) -> None:
        self._counters["calls_cancelled"] += 1
        self._abandon(call)
        self._pump()

    def _lost(self, _: None, protocol: ClientProtocol) -> None:
        timer = self._idle.pop(protocol, None)
        if timer is not None and timer.active():
            timer.cancel()
        call = self._busy.pop(protocol, None)
        if call is not None:  # AMP fails its calls first; this is only a safety net
            self._finish(call, Failure(CallLost(f"{self.address}: connection lost")))
        if not self._stopped:
            self._pump()

    def stop(self) -> Deferred:
        """Fail waiting calls, abort calls in flight, close every connection; fires once all are closed."""
        self._stopped = True
        for call in self._take_queue():
            self._finish(call, Failure(Unreachable(f"{self.address}: stopped")))
        for attempt in list(self._attempts):
            attempt.cancel()
        waits = []
        for protocol, timer in list(self._idle.items()):
            timer.cancel()
            waits.append(protocol.when_lost())
            protocol.transport.loseConnection()
        self._idle.clear()
        for protocol in list(self._busy):
            waits.append(protocol.when_lost())
            protocol.transport.abortConnection()
        return DeferredList(waits, consumeErrors=True)


class CallPools:
    """
    The call pools of a node, one per address, made on first use and
    forgotten once empty.

    @param connect: given an address, connects and fires with an admitted
        L{ClientProtocol} (the service gives TLS endpoints; tests, fakes).
    @param pool_options: the keyword arguments of every L{CallPool}.
    """

    def __init__(self, connect: Callable[[Address], Deferred], **pool_options: Any) -> None:
        self._connect = connect
        self._options = pool_options
        self.pools: Dict[Address, CallPool] = {}
        self._stopped = False

    def call(self, address: Address, command: type, arguments: Dict[str, Any], size: int,
             timeout_seconds: float) -> Deferred:
        """L{CallPool.call} on the pool of C{address}."""
        if self._stopped:
            return fail(Unreachable(f"{address}: stopped"))
        pool = self.pools.get(address)
        if pool is None:
            for other in [a for a, p in self.pools.items() if p.empty]:
                del self.pools[other]
            pool = self.pools[address] = CallPool(address, connect=lambda: self._connect(address), **self._options)
        return pool.call(command, arguments, size, timeout_seconds)

    def stop(self) -> Deferred:
        """Stop every pool; fires once all their connections are closed."""
        self._stopped = True
        pools, self.pools = list(self.pools.values()), {}
        return DeferredList([pool.stop() for pool in pools], consumeErrors=True)
