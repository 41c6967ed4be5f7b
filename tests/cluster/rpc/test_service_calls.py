"""
Real-socket tests of the calls of L{stalwart.cluster.rpc.service} on
127.0.0.1 with real TLS: C{exchange} and C{forward} between two services,
one admitted connection reused for many calls, a forward past its
deadline, peers that refuse or are not there, and a clean stop.
"""

import random

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.trial.unittest import TestCase

from stalwart.cluster.rpc.calls import CallTimedOut, Unreachable
from stalwart.cluster.rpc.commands import NotLeader, Unavailable

from tests.cluster.rpc.test_service import Node, vote


class Leader:
    """The handlers of a node: it answers exchanges with its own document, and applies forwards."""

    def __init__(self, document: bytes = b'{"members": ["b"]}') -> None:
        self.document = document
        self.exchanged: list = []
        self.forwarded: list = []
        self.answer = None

    def exchange(self, data: bytes) -> bytes:
        self.exchanged.append(data)
        return self.document

    def forward(self, payload: bytes) -> Deferred:
        self.forwarded.append(payload)
        if self.answer is not None:
            return self.answer
        return succeed((2, len(self.forwarded)))


class ServiceCallTests(TestCase):
    def setUp(self) -> None:
        self.book: dict = {}
        self.leader = Leader()

    def nodes(self, **options):
        a = Node(self, "a", self.book, **options)
        b = Node(self, "b", self.book, exchange=self.leader.exchange, forward=self.leader.forward, **options)
        return a, b

    @inlineCallbacks
    def test_exchange_and_forward(self):
        """An exchange and a forward cross real TLS; the answers come back."""
        a, b = self.nodes()
        self.assertEqual((yield a.service.exchange(self.book["b"], b'{"members": ["a"]}')),
                         b'{"members": ["b"]}')
        self.assertEqual((yield a.service.forward(self.book["b"], b"write")), (2, 1))
        self.assertEqual(self.leader.exchanged, [b'{"members": ["a"]}'])
        self.assertEqual(self.leader.forwarded, [b"write"])
        self.assertEqual(b.service.counters["forward_received"], 1)
        self.assertEqual(a.service.counters["forward_answered"], 1)

    @inlineCallbacks
    def test_reuse(self):
        """Many calls in turn share one connection: the peer admits it once."""
        a, b = self.nodes()
        for i in range(10):
            yield a.service.exchange(self.book["b"], b"%d" % i)
            yield a.service.forward(self.book["b"], b"w%d" % i)
        self.assertEqual(b.service.counters["admitted"], 1)
        self.assertEqual(a.service.counters["call_connections_opened"], 1)
        self.assertEqual(len(self.leader.forwarded), 10)

    @inlineCallbacks
    def test_apart_from_raft(self):
        """Calls do not use the Raft link: each has its own connection and admission."""
        a, b = self.nodes()
        arrived = b.next()
        a.service.send(vote("a", "b"))
        yield arrived
        yield a.service.exchange(self.book["b"], b"{}")
        self.assertEqual(b.service.counters["admitted"], 2)

    @inlineCallbacks
    def test_large_forward(self):
        """An 8 MiB forward payload crosses real TLS whole."""
        a, b = self.nodes()
        payload = random.Random(6).randbytes(8 * 1024 * 1024)
        yield a.service.forward(self.book["b"], payload)
        self.assertEqual(self.leader.forwarded, [payload])

    @inlineCallbacks
    def test_errors(self):
        """The leader's NotLeader and Unavailable reach the follower; so does a node with no handler."""
        a, b = self.nodes()
        self.leader.answer = fail(NotLeader("c"))
        failure = yield self.assertFailure(a.service.forward(self.book["b"], b"w"), NotLeader)
        self.assertEqual(failure.leader, "c")
        self.leader.answer = fail(Unavailable("storage failed"))
        failure = yield self.assertFailure(a.service.forward(self.book["b"], b"w"), Unavailable)
        self.assertEqual(failure.reason, "storage failed")
        yield self.assertFailure(b.service.forward(self.book["a"], b"w"), Unavailable)  # a has no handler

    @inlineCallbacks
    def test_forward_timeout(self):
        """A forward not applied within forward_timeout_ms fails with CallTimedOut; the next call works."""
        a, b = self.nodes(forward_timeout_ms=200)
        never = self.leader.answer = Deferred()
        yield self.assertFailure(a.service.forward(self.book["b"], b"slow"), CallTimedOut)
        self.assertEqual(a.service.counters["calls_timed_out"], 1)
        self.leader.answer = None
        self.assertEqual((yield a.service.forward(self.book["b"], b"fast")), (2, 2))
        self.assertNoResult(never)

    @inlineCallbacks
    def test_wrong_key(self):
        """A peer with another key is refused: the call fails with Unreachable, never sent."""
        a = Node(self, "a", self.book)
        c = Node(self, "c", self.book, key="another key", exchange=self.leader.exchange)
        yield self.assertFailure(a.service.exchange(self.book["c"], b"{}"), Unreachable)
        self.assertEqual(self.leader.exchanged, [])
        self.assertGreaterEqual(c.service.counters["refused_proof"], 1)
        self.assertGreaterEqual(a.service.counters["refused_by_peer"], 1)

    @inlineCallbacks
    def test_nobody_there(self):
        """A call to a closed port fails with Unreachable."""
        a, b = self.nodes()
        address = self.book["b"]
        yield b.stop()
        yield self.assertFailure(a.service.exchange(address, b"{}"), Unreachable)

    @inlineCallbacks
    def test_stop(self):
        """
        Stopping the service closes its call connections (the peer sees
        them go) and fails calls made afterwards.
        """
        a, b = self.nodes()
        yield a.service.exchange(self.book["b"], b"{}")
        self.assertEqual(len(b.service._connections), 1)
        (server,) = b.service._connections
        yield a.service.stopService()
        yield server.when_lost()
        yield self.assertFailure(a.service.exchange(self.book["b"], b"{}"), Unreachable)

    @inlineCallbacks
    def test_limits(self):
        """Data over exchange_bytes_max, or a payload over message_bytes_max, is refused before sending."""
        a, b = self.nodes(exchange_bytes_max=1000, message_bytes_max=100000)
        yield self.assertFailure(a.service.exchange(self.book["b"], bytes(1001)), ValueError)
        yield self.assertFailure(a.service.forward(self.book["b"], bytes(100000)), ValueError)
        self.assertEqual(a.service.counters["call_connections_opened"], 0)
