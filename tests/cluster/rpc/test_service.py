"""
Real-socket tests of L{stalwart.cluster.rpc.service} on 127.0.0.1 with real
TLS: messages both ways, wrong keys, a relaying man in the middle, bad
bytes on the port, and reconnection after a peer restarts.
"""

import datetime
import os
import random
from collections import Counter

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from stalwart.cluster.raft.messages import AppendEntries, Entry, RequestVote
from stalwart.cluster.rpc import auth, codec, tls
from stalwart.cluster.rpc.commands import RaftMessage
from stalwart.cluster.rpc.protocol import AdmissionFailed, ClientProtocol
from stalwart.cluster.rpc.service import RPCService


def vote(sender: str, recipient: str, term: int = 1) -> RequestVote:
    return RequestVote(term=term, sender=sender, recipient=recipient, last_log_index=0, last_log_term=0)


class Node:
    """
    A service and what it delivered; C{next()} fires at the next delivery.
    C{options} go to L{RPCService} (handlers, limits).
    """

    def __init__(self, test: TestCase, node_id: str, book: dict, key: str = "cluster key", port: int = 0,
                 data_dir: str = None, **options) -> None:
        from twisted.internet import reactor

        self.node_id = node_id
        self.delivered: list = []
        self._waiting: list = []
        self.data_dir = data_dir or test.mktemp()
        self.service = RPCService(
            reactor=reactor, node_id=node_id, bind_addr="127.0.0.1", port=port, encryption_key=key,
            data_dir=self.data_dir, address_book=book, deliver=self._deliver, rng=random.Random(node_id),
            urandom=os.urandom, timeout_ms=2000, backoff_max_ms=200, **options)
        self.service.startService()
        book[node_id] = self.service.address
        test.addCleanup(self.stop)

    def _deliver(self, message) -> None:
        self.delivered.append(message)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(message)

    def next(self) -> Deferred:
        d: Deferred = Deferred()
        self._waiting.append(d)
        return d

    def stop(self):
        if self.service.running:
            return self.service.stopService()


class Lost(Protocol):
    """A client that writes what it is given and reports when the server closes."""

    def __init__(self) -> None:
        self.lost: Deferred = Deferred()

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


class Pipe(Protocol):
    """One side of a relay: what it receives goes to the other side."""

    def __init__(self) -> None:
        self.other = None
        self.pending: list = []

    def dataReceived(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.loseConnection()


class ServiceTests(TestCase):
    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.book: dict = {}

    @inlineCallbacks
    def test_both_ways(self):
        """A message each way between two nodes on real TLS sockets reaches the other's deliver."""
        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        arrived = b.next()
        a.service.send(vote("a", "b", 3))
        self.assertEqual((yield arrived), vote("a", "b", 3))
        arrived = a.next()
        b.service.send(vote("b", "a", 4))
        self.assertEqual((yield arrived), vote("b", "a", 4))
        self.assertEqual(a.service.counters["admitted"], 1)
        self.assertEqual(b.service.counters["admitted"], 1)

    @inlineCallbacks
    def test_tls_1_2_peer(self):
        """The channel binding works on TLS 1.2 too (exporter of RFC 5705): such a peer is admitted."""
        from OpenSSL import SSL

        b = Node(self, "b", self.book)
        creator = tls.ClientCreator()
        creator._context.set_max_proto_version(SSL.TLS1_2_VERSION)
        versions = []

        def binding(transport):
            versions.append(transport.getHandle().get_protocol_version_name())
            return tls.client_binding(transport)

        endpoint = wrapClientTLS(creator, TCP4ClientEndpoint(self.reactor, *self.book["b"]))
        client = yield endpoint.connect(Factory.forProtocol(lambda: ClientProtocol(
            key=auth.derive_key("cluster key"), urandom=os.urandom, clock=self.reactor, binding=binding,
            counters=Counter(), timeout_seconds=2)))
        yield client.admitted
        arrived = b.next()
        client.send(codec.to_arguments(vote("a", "b")))
        yield arrived
        client.transport.loseConnection()
        yield client.when_lost()
        self.assertEqual(versions, ["TLSv1.2"])

    @inlineCallbacks
    def test_large_message(self):
        """A 5 MB entry crosses real TLS whole."""
        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        data = random.Random(2).randbytes(5 * 1024 * 1024)
        message = AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                entries=(Entry(1, 1, data),), commit=0)
        arrived = b.next()
        a.service.send(message)
        self.assertEqual((yield arrived), message)

    @inlineCallbacks
    def test_wrong_key(self):
        """A node with another key is refused; none of its messages reach deliver."""
        b = Node(self, "b", self.book)
        c = Node(self, "c", self.book, key="another key")
        yield self.assertFailure(c.service.probe(self.book["b"]), AdmissionFailed)
        c.service.send(vote("c", "b"))
        a = Node(self, "a", self.book)
        arrived = b.next()
        a.service.send(vote("a", "b"))
        yield arrived
        self.assertEqual(b.delivered, [vote("a", "b")])
        self.assertGreaterEqual(b.service.counters["refused_proof"], 1)
        self.assertGreaterEqual(c.service.counters["refused_by_peer"], 1)

    @inlineCallbacks
    def test_relaying_man_in_the_middle(self):
        """
        A relay that terminates TLS on both sides (its own certificate to
        the client) passes every byte, yet admission fails: each proof is
        bound to its own TLS channel.
        """
        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        cert, key = tls.load_or_create(self.mktemp(), datetime.datetime.now(datetime.timezone.utc))

        def relay() -> Pipe:
            inner = Pipe()
            outer = Pipe()
            inner.other, outer.other = outer, inner
            endpoint = wrapClientTLS(tls.ClientCreator(), TCP4ClientEndpoint(self.reactor, *self.book["b"]))

            def connected(_):
                for data in inner.pending:
                    outer.transport.write(data)

            endpoint.connect(Factory.forProtocol(lambda: outer)).addCallback(connected)
            return inner

        port = self.reactor.listenSSL(0, Factory.forProtocol(relay), tls.server_options(cert, key),
                                      interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield self.assertFailure(a.service.probe(("127.0.0.1", port.getHost().port)), AdmissionFailed)
        self.assertEqual(b.service.counters["refused_proof"], 1)
        self.assertEqual(b.delivered, [])

    @inlineCallbacks
    def assertClosed(self, b: Node, data: bytes, use_tls: bool = True, hang_up: bool = False):
        """Send C{data}; the server closes the connection (or we do, with C{hang_up})."""
        endpoint = TCP4ClientEndpoint(self.reactor, *self.book["b"])
        if use_tls:
            endpoint = wrapClientTLS(tls.ClientCreator(), endpoint)
        client = yield endpoint.connect(Factory.forProtocol(Lost))
        client.transport.write(data)
        if hang_up:
            client.transport.loseConnection()
        yield client.lost

    @inlineCallbacks
    def test_bad_bytes(self):
        """
        Garbage, a RaftMessage before admission, a truncated frame, an
        oversized frame and a plain-TCP client are all closed; none reaches
        deliver, and the node still works afterwards.
        """
        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        box = RaftMessage.makeArguments(codec.to_arguments(vote("x", "b")), None)
        box[b"_command"], box[b"_ask"] = b"RaftMessage", b"1"
        rng = random.Random(4)
        yield self.assertClosed(b, rng.randbytes(5000))
        yield self.assertClosed(b, box.serialize())
        yield self.assertClosed(b, box.serialize()[:-100], hang_up=True)  # truncated
        yield self.assertClosed(b, b"\x01\x00" + b"k" * 256)  # a key over 255 bytes
        yield self.assertClosed(b, b"".join(b"\x00\x02k%d" % (i % 10) + b"\xff\xff" + bytes(65535)
                                          for i in range(4)))
        yield self.assertClosed(b, box.serialize(), use_tls=False)
        yield self.assertClosed(b, rng.randbytes(100), use_tls=False)
        arrived = b.next()
        a.service.send(vote("a", "b"))
        yield arrived
        self.assertEqual(b.delivered, [vote("a", "b")])
        self.assertEqual(b.service.counters["admitted"], 1)
        counters = b.service.counters
        self.assertGreaterEqual(counters["refused_premature"], 1)
        self.assertGreaterEqual(counters["refused_oversized"], 1)
        self.assertGreaterEqual(counters["closed_unadmitted"], 2)  # plain TCP: the TLS handshake fails

    @inlineCallbacks
    def test_reconnect_after_restart(self):
        """
        After a peer restarts on the same port, the link reconnects and
        messages flow again.  Messages sent before the sender noticed the
        loss are lost, as Raft allows; like Raft's heartbeats, the test
        sends again until one arrives.
        """
        from twisted.internet.task import LoopingCall

        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        arrived = b.next()
        a.service.send(vote("a", "b", 1))
        yield arrived
        port = self.book["b"][1]
        yield b.stop()
        b2 = Node(self, "b", self.book, port=port, data_dir=b.data_dir)
        arrived = b2.next()
        heartbeat = LoopingCall(a.service.send, vote("a", "b", 2))
        heartbeat.clock = self.reactor
        heartbeat.start(0.05)
        try:
            message = yield arrived.addTimeout(10, self.reactor)
        finally:
            heartbeat.stop()
        self.assertEqual(message, vote("a", "b", 2))
        self.assertEqual(a.service.counters["connected"], 2)

    @inlineCallbacks
    def test_misrouted_and_unknown(self):
        """A message for another node is dropped by its receiver; one for an unknown node is not sent."""
        a, b = Node(self, "a", self.book), Node(self, "b", self.book)
        self.book["z"] = self.book["b"]
        a.service.send(vote("a", "z"))
        a.service.send(vote("a", "nobody"))
        arrived = b.next()
        a.service.send(vote("a", "b"))
        yield arrived
        self.assertEqual(b.delivered, [vote("a", "b")])
        self.assertEqual(b.service.counters["dropped_misrouted"], 1)
        self.assertEqual(a.service.counters["dropped_unknown_recipient"], 1)

    @inlineCallbacks
    def test_peer_lost_reported(self):
        """When a peer that sent Raft messages goes away, the receiver is told its node id at once."""
        lost: Deferred = Deferred()
        b = Node(self, "b", self.book, peer_lost=lambda node: lost.callback(node) if not lost.called else None)
        a = Node(self, "a", self.book)
        arrived = b.next()
        a.service.send(vote("a", "b", 1))
        yield arrived
        self.assertFalse(lost.called)
        yield a.stop()
        self.assertEqual((yield lost.addTimeout(10, self.reactor)), "a")
