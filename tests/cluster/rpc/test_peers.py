"""
Tests for L{stalwart.cluster.rpc.peers}: one link per peer with a bounded
queue, capped exponential back-off with jitter, and rpc-timeout, driven by
a L{Clock} and fake connections over L{twisted.test.iosim}.
"""

import random
from collections import Counter

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import AppendEntries, Entry, RequestVote
from stalwart.cluster.rpc import auth
from stalwart.cluster.rpc.peers import PeerLink, PeerLinks, backoff_delay
from stalwart.cluster.rpc.protocol import ClientProtocol, ServerProtocol

KEY = auth.derive_key("k")
INITIAL, MAXIMUM, TIMEOUT = 0.05, 2.0, 1.0


def vote(term: int) -> RequestVote:
    return RequestVote(term=term, sender="n1", recipient="n2", last_log_index=0, last_log_term=0)


class BackoffTests(SynchronousTestCase):
    def test_table(self) -> None:
        """The delay doubles from the initial one up to the cap, jittered within its upper half."""
        rng = random.Random(1)
        for failures, ceiling in [(0, 0.05), (1, 0.1), (2, 0.2), (5, 1.6), (6, 2.0), (1000, 2.0)]:
            for _ in range(50):
                delay = backoff_delay(failures, INITIAL, MAXIMUM, rng)
                self.assertTrue(ceiling / 2 <= delay <= ceiling, (failures, delay))

    def test_seeded(self) -> None:
        """The same seed gives the same delays: jitter comes only from the injected Random."""
        a = [backoff_delay(i, INITIAL, MAXIMUM, random.Random(9)) for i in range(10)]
        b = [backoff_delay(i, INITIAL, MAXIMUM, random.Random(9)) for i in range(10)]
        self.assertEqual(a, b)


class Network:
    """Connection attempts the test answers: with a real protocol pair over iosim, or a failure."""

    def __init__(self, clock: Clock, counters: Counter) -> None:
        self.clock = clock
        self.counters = counters
        self.attempts: list = []
        self.pumps: list = []
        self.servers: list = []
        self.delivered: list = []
        self.rng = random.Random(3)

    def connect(self, address=None) -> Deferred:
        d: Deferred = Deferred(lambda d: self.attempts.remove(d) if d in self.attempts else None)
        self.attempts.append(d)
        return d

    def server(self, **common) -> ServerProtocol:
        return ServerProtocol(deliver=self.delivered.append, message_bytes_max=1 << 24, **common)

    def client(self, **common) -> ClientProtocol:
        return ClientProtocol(**common)

    def accept(self) -> ClientProtocol:
        """Answer the oldest attempt with a connection to a live server (L{server}, L{client})."""
        common = dict(key=KEY, urandom=self.rng.randbytes, clock=self.clock, binding=lambda t: b"c",
                      counters=Counter(), timeout_seconds=TIMEOUT)
        server, client = self.server(**common), self.client(**common)
        pump = iosim.connect(server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client),
                             greet=False, clock=self.clock)
        self.pumps.append(pump)
        self.servers.append(server)
        client.admitted.chainDeferred(self.attempts.pop(0))
        self.flush()
        return client

    def refuse(self) -> None:
        self.attempts.pop(0).errback(ConnectionRefusedError())

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()


class PeerLinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.counters: Counter = Counter()
        self.net = Network(self.clock, self.counters)

    def link(self, **overrides) -> PeerLink:
        options = dict(connect=self.net.connect, clock=self.clock, rng=random.Random(5), counters=self.counters,
                       timeout_seconds=TIMEOUT, backoff_initial_seconds=INITIAL, backoff_max_seconds=MAXIMUM,
                       queue_messages_max=100, queue_bytes_max=1 << 20, inflight_max=4)
        options.update(overrides)
        return PeerLink(("10.0.0.2", 7911), **options)

    def test_queued_until_connected(self) -> None:
        """Messages sent before the connection is up go out, in order, once it is."""
        link = self.link()
        self.assertEqual(len(self.net.attempts), 1)
        for term in range(1, 11):
            link.send(vote(term))
        self.assertEqual(self.net.delivered, [])
        self.net.accept()
        self.net.flush()
        self.assertEqual([m.term for m in self.net.delivered], list(range(1, 11)))
        self.assertEqual(self.counters["sent"], 10)

    def test_backoff_after_failures(self) -> None:
        """Each failed attempt waits longer before the next, up to the cap."""
        link = self.link()
        waits = []
        for _ in range(8):
            self.net.refuse()
            self.assertEqual(self.net.attempts, [])
            (call,) = self.clock.getDelayedCalls()
            waits.append(call.getTime() - self.clock.seconds())
            self.clock.advance(waits[-1])
            self.assertEqual(len(self.net.attempts), 1)
        for failures, wait in enumerate(waits, start=1):
            ceiling = min(MAXIMUM, INITIAL * 2**failures)
            self.assertTrue(ceiling / 2 <= wait <= ceiling, (failures, wait))
        self.assertEqual(self.counters["connect_failed"], 8)
        self.net.accept()
        link.send(vote(1))
        self.net.flush()
        self.assertEqual(len(self.net.delivered), 1)

    def test_timeout(self) -> None:
        """An attempt that has not finished within rpc-timeout is cancelled and retried."""
        self.link()
        self.clock.advance(TIMEOUT)
        self.assertEqual(self.net.attempts, [])
        self.assertEqual(self.counters["connect_failed"], 1)
        self.clock.advance(MAXIMUM)
        self.assertEqual(len(self.net.attempts), 1)

    def test_peer_restart(self) -> None:
        """After the peer goes away, the link reconnects with back-off and sends what was queued since."""
        link = self.link()
        client = self.net.accept()
        link.send(vote(1))
        self.net.flush()
        client.transport.loseConnection()  # the peer restarts
        self.net.flush()
        self.assertFalse(link.connected)
        link.send(vote(2))
        self.assertEqual(self.net.attempts, [])  # the retry waits for its back-off
        self.clock.advance(MAXIMUM)
        self.net.refuse()  # not back up yet: the first retry fails
        self.clock.advance(MAXIMUM)
        self.net.accept()
        self.net.flush()
        self.assertTrue(link.connected)
        self.assertEqual([m.term for m in self.net.delivered], [1, 2])

    def test_in_flight_lost(self) -> None:
        """Messages in flight on a lost connection are counted as lost, not resent (Raft resends)."""
        link = self.link()
        client = self.net.accept()
        self.net.pumps.clear()  # the bytes never arrive: the connection resets under them
        link.send(vote(1))
        client.transport.reportDisconnect()
        self.assertEqual(self.counters["lost_in_flight"], 1)
        self.assertEqual(link.queued, 0)

    def test_queue_drops_oldest(self) -> None:
        """A full queue drops its oldest messages, by count and by bytes."""
        link = self.link(queue_messages_max=3)
        for term in range(1, 6):
            link.send(vote(term))
        self.assertEqual(self.counters["dropped_queue_full"], 2)
        self.net.accept()
        self.net.flush()
        self.assertEqual([m.term for m in self.net.delivered], [3, 4, 5])

        big = AppendEntries(term=9, sender="n1", recipient="n2", prev_index=0, prev_term=0,
                            entries=(Entry(9, 1, bytes(600)),), commit=0)
        link = self.link(queue_bytes_max=1000)
        link.send(big)
        link.send(big)
        self.assertEqual(link.queued, 1)
        self.assertEqual(self.counters["dropped_queue_full"], 3)

    def test_inflight_window(self) -> None:
        """At most inflight_max messages are unacknowledged; the rest wait in the queue."""
        link = self.link(inflight_max=2)
        self.net.accept()
        for term in range(1, 6):
            link.send(vote(term))
        self.assertEqual(link.queued, 3)
        self.net.flush()
        self.assertEqual(link.queued, 0)
        self.assertEqual(len(self.net.delivered), 5)

    def test_stop(self) -> None:
        """Stopping closes the connection, cancels retries and leaves no timer behind."""
        link = self.link()
        self.net.accept()
        d = link.stop()
        self.net.flush()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        link.send(vote(1))
        self.assertEqual(self.counters["dropped_stopped"], 1)

        link = self.link()
        self.net.refuse()
        self.successResultOf(link.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

        link = self.link()
        self.successResultOf(link.stop())  # an attempt in progress is cancelled
        self.assertEqual(self.net.attempts, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PeerLinksTests(SynchronousTestCase):
    def test_one_link_per_address(self) -> None:
        """Messages to one address share one link; another address gets its own."""
        clock = Clock()
        net = Network(clock, Counter())
        addresses = []

        def connect(address):
            addresses.append(address)
            return net.connect()

        links = PeerLinks(connect, clock=clock, rng=random.Random(1), counters=Counter(),
                          timeout_seconds=TIMEOUT, backoff_initial_seconds=INITIAL, backoff_max_seconds=MAXIMUM,
                          queue_messages_max=10, queue_bytes_max=1 << 20, inflight_max=4)
        links.send(("a", 1), vote(1))
        links.send(("a", 1), vote(2))
        links.send(("b", 1), vote(3))
        self.assertEqual(addresses, [("a", 1), ("b", 1)])
        self.successResultOf(links.stop())
        self.assertEqual(clock.getDelayedCalls(), [])
