"""
Tests for L{stalwart.cluster.rpc.calls}: a pool of admitted call
connections per address, reused, bounded, closed when idle; deadlines,
lost connections and unreachable peers each fail calls with their own
type.  Driven by a L{Clock} and connections over L{twisted.test.iosim}.
"""

from collections import Counter

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.rpc import auth
from stalwart.cluster.rpc.calls import (
    CallLost,
    CallPool,
    CallPools,
    CallTimedOut,
    Overloaded,
    Unreachable,
)
from stalwart.cluster.rpc.commands import Exchange, Forward, NotLeader, Unavailable
from stalwart.cluster.rpc.protocol import ClientProtocol, ServerProtocol
from tests.cluster.rpc.test_peers import Network as PeerNetwork

KEY = auth.derive_key("k")
TIMEOUT, IDLE, FORWARD_TIMEOUT = 1.0, 60.0, 30.0
ADDRESS = ("10.0.0.2", 7911)


class UnknownError(amp.Command):
    """Forward's name and arguments, but a narrower errors map: as from an older peer."""

    commandName = b"Forward"
    arguments = Forward.arguments
    response = Forward.response


class Network(PeerNetwork):
    """
    Connection attempts the test answers: with a server over iosim whose
    forward handler answers from C{self.answers} (a Deferred, or a
    Deferred per call from a list), or with a failure.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock, Counter())
        self.forwarded: list = []
        self.answers: list = []

    def _forward(self, payload: bytes) -> Deferred:
        self.forwarded.append(payload)
        return self.answers.pop(0) if self.answers else succeed((1, len(self.forwarded)))

    def server(self, **common) -> ServerProtocol:
        return ServerProtocol(deliver=lambda m: None, message_bytes_max=1 << 24, forward=self._forward,
                              exchange=lambda data: data[::-1], **common)

    def client(self, **common) -> ClientProtocol:
        return ClientProtocol(answer_bytes_max=1 << 21, **common)


class CallPoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters: Counter = Counter()
        self.net = Network(self.clock)

    def pool(self, **overrides) -> CallPool:
        options = dict(connect=self.net.connect, clock=self.clock, counters=self.counters,
                       timeout_seconds=TIMEOUT, connections_max=2, queue_calls_max=2,
                       queue_bytes_max=1 << 20, idle_seconds=IDLE)
        options.update(overrides)
        return CallPool(ADDRESS, **options)

    def forward(self, pool: CallPool, payload: bytes = b"entry", timeout: float = FORWARD_TIMEOUT) -> Deferred:
        return pool.call(Forward, {"payload": payload}, len(payload), timeout)

    def test_reuse(self) -> None:
        """Calls one after another share one admitted connection: one handshake, not one per call."""
        pool = self.pool()
        for i in range(1, 4):
            d = pool.call(Exchange, {"data": b"abc%d" % i}, 4, TIMEOUT)
            if i == 1:
                self.net.accept()
            self.net.flush()
            self.assertEqual(self.successResultOf(d), {"data": b"%dcba" % i})
        self.assertEqual(self.net.attempts, [])
        self.assertEqual(len(self.net.servers), 1)
        self.assertEqual(self.counters["call_connections_opened"], 1)
        self.assertEqual(self.counters["exchange_answered"], 3)
        self.assertEqual(pool.connections, 1)

    def test_reuse_from_callback(self) -> None:
        """A call made as the previous one's answer arrives reuses its connection, not a new one."""
        pool = self.pool()
        later: list = []
        d = self.forward(pool, b"1")
        d.addCallback(lambda _: later.append(self.forward(pool, b"2")))
        self.net.accept()
        self.net.flush()
        self.successResultOf(later[0])
        self.assertEqual(self.counters["call_connections_opened"], 1)
        self.assertEqual(self.net.attempts, [])

    def test_retry_from_errback(self) -> None:
        """A call made by an Unreachable errback is not failed with it: it makes a new attempt."""
        pool = self.pool()
        retried: list = []
        d = self.forward(pool, b"1")
        d.addErrback(lambda f: retried.append(self.forward(pool, b"2")))
        self.net.refuse()
        self.assertEqual(len(self.net.attempts), 1)
        self.net.accept()
        self.successResultOf(retried[0])

    def test_connections_max(self) -> None:
        """
        Calls in flight open connections up to connections_max; the next
        waits and goes out on the first connection to come free.
        """
        pool = self.pool(connections_max=2)
        answers = self.net.answers = [Deferred(), Deferred()]
        answers = answers[:]
        first, second, third = self.forward(pool, b"1"), self.forward(pool, b"2"), self.forward(pool, b"3")
        self.assertEqual(len(self.net.attempts), 2)
        self.net.accept()
        self.net.accept()
        self.assertEqual(self.net.forwarded, [b"1", b"2"])
        answers[1].callback((1, 20))
        self.net.flush()
        self.assertEqual(self.successResultOf(second), {"term": 1, "index": 20})
        self.assertEqual(self.net.forwarded, [b"1", b"2", b"3"])
        self.assertEqual(self.successResultOf(third), {"term": 1, "index": 3})
        self.assertNoResult(first)
        answers[0].callback((1, 10))
        self.net.flush()
        self.assertEqual(self.successResultOf(first), {"term": 1, "index": 10})
        self.assertEqual(self.counters["call_connections_opened"], 2)

    def test_overloaded(self) -> None:
        """Beyond connections_max in flight and queue_calls_max waiting, a call fails at once, unsent."""
        pool = self.pool(connections_max=1, queue_calls_max=1)
        waiting = [self.forward(pool), self.forward(pool)]
        self.failureResultOf(self.forward(pool), Overloaded)
        self.assertEqual(self.counters["calls_overloaded"], 1)
        self.net.accept()
        self.net.flush()
        for d in waiting:
            self.successResultOf(d)
        self.assertEqual(len(self.net.forwarded), 2)

    def test_queue_bytes(self) -> None:
        """Waiting calls are bounded in bytes too, though a lone call may exceed the bound."""
        pool = self.pool(connections_max=1, queue_calls_max=10, queue_bytes_max=1000)
        self.forward(pool, bytes(1500))  # alone: accepted
        self.failureResultOf(self.forward(pool, bytes(10)), Overloaded)

    def test_timeout_waiting(self) -> None:
        """A call still waiting for a connection at its deadline fails with CallTimedOut, never sent."""
        pool = self.pool(timeout_seconds=10.0)
        d = self.forward(pool, timeout=2.0)
        self.clock.advance(2.0)
        self.failureResultOf(d, CallTimedOut)
        self.net.accept()
        self.assertEqual(self.net.forwarded, [])
        self.assertEqual(pool.connections, 1)  # the connection stays, idle, for the next call

    def test_timeout_in_flight(self) -> None:
        """
        A call sent but unanswered at its deadline fails with CallTimedOut
        and its connection is aborted; the next call gets a new one.
        """
        pool = self.pool()
        self.net.answers = [Deferred()]  # committed and applied: never
        d = self.forward(pool, timeout=FORWARD_TIMEOUT)
        client = self.net.accept()
        self.clock.advance(FORWARD_TIMEOUT - 0.001)
        self.assertNoResult(d)
        self.clock.advance(0.001)
        self.failureResultOf(d, CallTimedOut)
        self.net.flush()
        self.assertTrue(client.is_lost)
        self.assertEqual(self.counters["calls_timed_out"], 1)
        d = self.forward(pool)
        self.assertEqual(len(self.net.attempts), 1)
        self.net.accept()
        self.successResultOf(d)

    def test_lost(self) -> None:
        """A lost connection fails its call at once with CallLost; the next call reconnects."""
        pool = self.pool()
        self.net.answers = [Deferred()]
        d = self.forward(pool)
        client = self.net.accept()
        client.transport.reportDisconnect()
        self.failureResultOf(d, CallLost)
        self.assertEqual(self.counters["calls_lost"], 1)
        self.assertEqual(pool.connections, 0)
        self.forward(pool)
        self.assertEqual(len(self.net.attempts), 1)

    def test_unreachable(self) -> None:
        """A failed or timed-out connection attempt fails the waiting calls with Unreachable."""
        pool = self.pool(connections_max=1)
        first, second = self.forward(pool), self.forward(pool)
        self.net.refuse()
        self.failureResultOf(first, Unreachable)
        self.failureResultOf(second, Unreachable)
        d = self.forward(pool)
        self.clock.advance(TIMEOUT)
        self.failureResultOf(d, Unreachable)
        self.assertEqual(self.counters["call_connect_failed"], 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_peer_errors(self) -> None:
        """The peer's NotLeader and Unavailable reach the caller as they are."""
        pool = self.pool()
        self.net.answers = [fail(NotLeader("n1")), fail(Unavailable("stopping"))]
        first, second = self.forward(pool), self.forward(pool)
        self.net.accept()
        self.net.accept()
        self.assertEqual(self.failureResultOf(first, NotLeader).value.leader, "n1")
        self.assertEqual(self.failureResultOf(second, Unavailable).value.reason, "stopping")
        self.assertEqual(self.counters["forward_refused"], 2)
        self.assertEqual(pool.connections, 2)

    def test_unknown_peer_error(self) -> None:
        """An error code the command does not list (an older peer) becomes Unavailable."""
        pool = self.pool()
        self.net.answers = [fail(NotLeader("n1"))]
        d = pool.call(UnknownError, {"payload": b"x"}, 1, TIMEOUT)
        self.net.accept()
        self.failureResultOf(d, Unavailable)

    def test_idle(self) -> None:
        """A connection unused for idle_seconds is closed, and leaves no timer behind."""
        pool = self.pool()
        self.forward(pool)
        client = self.net.accept()
        self.clock.advance(IDLE - 1)
        self.net.flush()
        self.assertFalse(client.is_lost)
        self.clock.advance(1)
        self.net.flush()
        self.assertTrue(client.is_lost)
        self.assertEqual(pool.connections, 0)
        self.assertTrue(pool.empty)
        self.assertEqual(self.counters["call_connections_idle_closed"], 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """Cancelling a waiting call drops it; cancelling a sent one aborts its connection."""
        pool = self.pool(connections_max=1)
        self.net.answers = [Deferred()]
        sent, waiting = self.forward(pool, b"1"), self.forward(pool, b"2")
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        client = self.net.accept()
        sent.cancel()
        self.failureResultOf(sent, CancelledError)
        self.net.flush()
        self.assertTrue(client.is_lost)
        self.assertEqual(self.net.forwarded, [b"1"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """
        Stopping fails calls in flight with CallLost and waiting calls with
        Unreachable, closes every connection, cancels attempts and leaves
        no timer.
        """
        pool = self.pool(connections_max=2)
        self.net.answers = [Deferred(), Deferred()]
        in_flight = [self.forward(pool, b"1"), self.forward(pool, b"2")]
        waiting = self.forward(pool, b"3")
        clients = [self.net.accept(), self.net.accept()]
        stopped = pool.stop()
        self.net.flush()
        self.successResultOf(stopped)
        for d in in_flight:
            self.failureResultOf(d, CallLost)
        self.failureResultOf(waiting, Unreachable)
        self.assertTrue(all(client.is_lost for client in clients))
        self.failureResultOf(self.forward(pool), Unreachable)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_idle(self) -> None:
        """Stopping closes idle connections and cancels connection attempts."""
        pool = self.pool()
        d = self.forward(pool)
        client = self.net.accept()
        self.successResultOf(d)
        self.assertEqual(pool.connections, 1)
        stopped = pool.stop()
        self.net.flush()
        self.successResultOf(stopped)
        self.assertTrue(client.is_lost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

        pool = self.pool()
        d = self.forward(pool)
        self.assertEqual(len(self.net.attempts), 1)
        self.successResultOf(pool.stop())
        self.assertEqual(self.net.attempts, [])
        self.failureResultOf(d, Unreachable)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CallPoolsTests(SynchronousTestCase):
    def test_per_address(self) -> None:
        """Each address has its own pool; empty pools are forgotten; stop leaves nothing behind."""
        clock = Clock()
        net = Network(clock)
        addresses = []

        def connect(address):
            addresses.append(address)
            return net.connect()

        pools = CallPools(connect, clock=clock, counters=Counter(), timeout_seconds=TIMEOUT, connections_max=2,
                          queue_calls_max=2, queue_bytes_max=1 << 20, idle_seconds=IDLE)
        calls = [pools.call(("a", 1), Exchange, {"data": b"x"}, 1, TIMEOUT),
                 pools.call(("a", 1), Exchange, {"data": b"y"}, 1, TIMEOUT)]
        self.assertEqual(addresses, [("a", 1), ("a", 1)])
        net.refuse()
        net.refuse()
        for d in calls:
            self.failureResultOf(d, Unreachable)
        self.assertTrue(pools.pools[("a", 1)].empty)
        d = pools.call(("b", 1), Exchange, {"data": b"z"}, 1, TIMEOUT)
        self.assertEqual(list(pools.pools), [("b", 1)])
        self.successResultOf(pools.stop())
        self.failureResultOf(d, Unreachable)
        self.failureResultOf(pools.call(("b", 1), Exchange, {"data": b"z"}, 1, TIMEOUT), Unreachable)
        self.assertEqual(clock.getDelayedCalls(), [])
