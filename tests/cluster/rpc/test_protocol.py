"""
Tests for L{stalwart.cluster.rpc.protocol}: the admission exchange before
any command, then Raft messages; untrusted bytes never reach C{deliver}.
AMP over L{twisted.test.iosim} with a fake channel binding (the real one
is tested in test_service).
"""

import random
from collections import Counter

from twisted.internet.defer import CancelledError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import AppendEntries, Entry, RequestVote
from stalwart.cluster.rpc import auth, codec
from stalwart.cluster.rpc.commands import Hello, MalformedArguments, Prove, RaftMessage, UnsupportedMessage
from stalwart.cluster.rpc.protocol import (
    HANDSHAKE_BOX_BYTES_MAX,
    AdmissionFailed,
    ClientProtocol,
    ServerProtocol,
)

KEY = auth.derive_key("the cluster key")
VOTE = RequestVote(term=2, sender="n1", recipient="n2", last_log_index=5, last_log_term=1)
TIMEOUT = 1.0


def outcome(d):
    """
    The list the result of C{d} will be appended to.  AMP hands a remote
    error nobody has caught yet to its unhandledError, so catch it at once.
    """
    results: list = []
    d.addBoth(results.append)
    return results


class Silent(amp.AMP):
    """A server that never answers, but can send commands."""

    def ampBoxReceived(self, box):
        if amp.COMMAND not in box:
            super().ampBoxReceived(box)


class Raw(Protocol):
    """A client that writes whatever the test wants."""

    def dataReceived(self, data: bytes) -> None:
        pass


class RogueServer(amp.AMP):
    """A server without the key: it answers with a made-up proof."""

    @Hello.responder
    def hello(self, version, nonce):
        return {"version": version, "nonce": b"s" * 32}

    @Prove.responder
    def prove(self, proof):
        return {"proof": b"p" * 32}


class Harness:
    def __init__(self, test: SynchronousTestCase, message_bytes_max: int = 16 * 1024 * 1024) -> None:
        self.clock = Clock()
        self.counters: Counter = Counter()
        self.delivered: list = []
        self.message_bytes_max = message_bytes_max
        self.rng = random.Random(7)

    def common(self, key: bytes, binding: bytes) -> dict:
        return dict(key=key, urandom=self.rng.randbytes, clock=self.clock, binding=lambda transport: binding,
                    counters=self.counters, timeout_seconds=TIMEOUT)

    def server(self, key: bytes = KEY, binding: bytes = b"channel") -> ServerProtocol:
        return ServerProtocol(deliver=self.delivered.append, message_bytes_max=self.message_bytes_max,
                              **self.common(key, binding))

    def client(self, key: bytes = KEY, binding: bytes = b"channel") -> ClientProtocol:
        return ClientProtocol(**self.common(key, binding))

    def connect(self, server, client):
        pump = iosim.connect(server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client),
                             greet=False, clock=self.clock)
        pump.flush()
        return pump


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self)

    def test_right_key(self) -> None:
        """Both sides prove the key; then a RaftMessage reaches deliver and is acknowledged."""
        server, client = self.h.server(), self.h.client()
        pump = self.h.connect(server, client)
        self.assertIs(self.successResultOf(client.admitted), client)
        d = client.send(codec.to_arguments(VOTE))
        pump.flush()
        self.assertEqual(self.successResultOf(d), {})
        self.assertEqual(self.h.delivered, [VOTE])
        self.assertEqual(self.h.counters["admitted"], 1)
        self.assertEqual(self.h.counters["connected"], 1)

    def test_wrong_key(self) -> None:
        """A client without the key is refused, counted and disconnected."""
        server, client = self.h.server(), self.h.client(key=auth.derive_key("wrong"))
        self.h.connect(server, client)
        self.failureResultOf(client.admitted, AdmissionFailed)
        self.assertEqual(self.h.counters["refused_proof"], 1)
        self.assertEqual(self.h.counters["refused_by_peer"], 1)
        self.assertTrue(server.is_lost)
        self.assertTrue(client.is_lost)

    def test_relayed_proof(self) -> None:
        """
        A proof computed on another TLS channel (a relaying man in the
        middle sees two channels, with two bindings) is refused.
        """
        server, client = self.h.server(binding=b"channel-2"), self.h.client(binding=b"channel-1")
        self.h.connect(server, client)
        self.failureResultOf(client.admitted, AdmissionFailed)
        self.assertEqual(self.h.counters["refused_proof"], 1)
        self.assertTrue(server.is_lost)

    def test_server_without_key(self) -> None:
        """A server that cannot prove the key is refused by the client, which sends it nothing."""
        server, client = RogueServer(), self.h.client()
        self.h.connect(server, client)
        self.failureResultOf(client.admitted, AdmissionFailed)
        self.assertEqual(self.h.counters["refused_proof"], 1)
        self.assertTrue(client.is_lost)

    def test_client_timeout(self) -> None:
        """A client whose server never answers gives up after the timeout."""
        client = self.h.client()
        pump = self.h.connect(Raw(), client)
        self.assertNoResult(client.admitted)
        self.h.clock.advance(TIMEOUT)
        pump.flush()
        self.failureResultOf(client.admitted, AdmissionFailed)
        self.assertEqual(self.h.counters["refused_timeout"], 1)

    def test_cancel(self) -> None:
        """Cancelling admitted closes the connection."""
        client = self.h.client()
        pump = self.h.connect(Raw(), client)
        client.admitted.cancel()
        pump.flush()
        self.failureResultOf(client.admitted, CancelledError)
        self.assertTrue(client.is_lost)

    def test_server_commands_refused_by_client(self) -> None:
        """The client accepts no commands: a server sending one is disconnected."""
        client = self.h.client()
        server = Silent()
        pump = self.h.connect(server, client)
        result = outcome(server.callRemote(RaftMessage, **codec.to_arguments(VOTE)))
        pump.flush()
        self.assertIsInstance(result[0], Failure)
        self.assertEqual(self.h.counters["refused_premature"], 1)
        self.failureResultOf(client.admitted, AdmissionFailed)

    def test_large_message(self) -> None:
        """A 5 MB entry crosses in chunks and arrives whole."""
        server, client = self.h.server(), self.h.client()
        pump = self.h.connect(server, client)
        data = random.Random(3).randbytes(5 * 1024 * 1024)
        message = AppendEntries(term=1, sender="n1", recipient="n2", prev_index=0, prev_term=0,
                                entries=(Entry(1, 1, data),), commit=0)
        d = client.send(codec.to_arguments(message))
        pump.flush()
        self.successResultOf(d)
        self.assertEqual(self.h.delivered, [message])


class UntrustedInputTests(SynchronousTestCase):
    """Nothing a peer sends reaches deliver before admission, or crashes the server."""

    def setUp(self) -> None:
        self.h = Harness(self, message_bytes_max=1024 * 1024)
        self.server = self.h.server()

    def send_raw(self, data: bytes):
        raw = Raw()
        pump = self.h.connect(self.server, raw)
        raw.transport.write(data)
        pump.flush()
        return pump

    def assertRefused(self, reason: str) -> None:
        self.assertTrue(self.server.is_lost)
        self.assertEqual(self.h.counters[f"refused_{reason}"], 1, self.h.counters)
        self.assertEqual(self.h.delivered, [])

    def test_raft_message_first(self) -> None:
        """A RaftMessage before the admission exchange is refused and never delivered."""
        box = RaftMessage.makeArguments(codec.to_arguments(VOTE), None)
        box[amp.COMMAND], box[amp.ASK] = b"RaftMessage", b"1"
        self.send_raw(box.serialize())
        self.assertRefused("premature")

    def test_prove_first(self) -> None:
        """Prove before Hello is refused."""
        self.send_raw(amp.AmpBox({amp.COMMAND: b"Prove", amp.ASK: b"1", b"proof": b"x" * 32}).serialize())
        self.assertRefused("premature")

    def test_unknown_command_first(self) -> None:
        """Any other command first is refused."""
        self.send_raw(amp.AmpBox({amp.COMMAND: b"\xff\xfe", amp.ASK: b"1"}).serialize())
        self.assertRefused("malformed")

    def test_box_without_command(self) -> None:
        """A box that is neither command nor answer is refused."""
        self.send_raw(amp.AmpBox({b"a": b"b"}).serialize())
        self.assertRefused("malformed")

    def test_answer_to_nothing(self) -> None:
        """An answer or error nobody asked for is refused."""
        self.send_raw(amp.AmpBox({amp.ANSWER: b"1"}).serialize())
        self.assertRefused("malformed")

    def test_bad_hello_arguments(self) -> None:
        """A Hello whose arguments do not parse is refused, not logged as a failure."""
        self.send_raw(amp.AmpBox({amp.COMMAND: b"Hello", amp.ASK: b"1", b"version": b"one"}).serialize())
        self.assertRefused("malformed")

    def test_key_too_long(self) -> None:
        """A key length over AMP's 255 bytes is refused."""
        self.send_raw(b"\x01\x00" + b"k" * 256)
        self.assertRefused("oversized")

    def test_long_value_before_admission(self) -> None:
        """Before admission a value longer than the handshake limit is refused from its length alone."""
        self.send_raw(b"\x00\x05nonce" + b"\xff\xff")
        self.assertRefused("oversized")

    def test_oversized_before_admission(self) -> None:
        """A box growing past the handshake limit is refused before it ends."""
        value = b"v" * 1000
        data = b"".join(b"\x00\x02k" + bytes([i % 10 + 48]) + b"\x03\xe8" + value for i in range(10))
        self.send_raw(data)
        self.assertGreater(len(data), HANDSHAKE_BOX_BYTES_MAX)
        self.assertRefused("oversized")

    def test_truncated_frame(self) -> None:
        """Half a box, then silence, is dropped at the timeout; half a box then close is just closed."""
        hello = amp.AmpBox({amp.COMMAND: b"Hello", amp.ASK: b"1", b"version": b"1", b"nonce": b"n" * 32})
        raw = Raw()
        pump = self.h.connect(self.server, raw)
        raw.transport.write(hello.serialize()[:-5])
        pump.flush()
        self.assertFalse(self.server.is_lost)
        self.h.clock.advance(TIMEOUT)
        pump.flush()
        self.assertRefused("timeout")

        server = self.h.server()
        raw = Raw()
        pump = self.h.connect(server, raw)
        raw.transport.write(hello.serialize()[:-5])
        raw.transport.loseConnection()
        pump.flush()
        self.assertTrue(server.is_lost)
        self.assertEqual(self.h.delivered, [])

    def test_random_garbage(self) -> None:
        """
        Random bytes (seeded) never raise out of the protocol or reach
        deliver; the connection ends by a refusal or by the timeout.
        """
        for seed in range(100):
            rng = random.Random(seed)
            server = self.h.server()
            raw = Raw()
            pump = self.h.connect(server, raw)
            raw.transport.write(rng.randbytes(rng.randint(1, 3000)))
            pump.flush()
            self.h.clock.advance(TIMEOUT)
            pump.flush()
            self.assertTrue(server.is_lost, f"seed {seed}")
        self.assertEqual(self.h.delivered, [])

    def test_timeout(self) -> None:
        """A connection that sends nothing is dropped after the timeout."""
        raw = Raw()
        pump = self.h.connect(self.server, raw)
        self.h.clock.advance(TIMEOUT)
        pump.flush()
        self.assertRefused("timeout")


class AdmittedTests(SynchronousTestCase):
    """After admission, bad messages are still refused, never delivered."""

    def setUp(self) -> None:
        self.h = Harness(self, message_bytes_max=1024 * 1024)
        self.server, self.client = self.h.server(), self.h.client()
        self.pump = self.h.connect(self.server, self.client)
        self.successResultOf(self.client.admitted)

    def test_timeout_cancelled(self) -> None:
        """An admitted connection is not closed by the admission timeout."""
        self.h.clock.advance(TIMEOUT * 10)
        self.pump.flush()
        self.assertFalse(self.server.is_lost)

    def test_malformed_message(self) -> None:
        """An undecodable message is refused with a fatal error: the connection closes."""
        result = outcome(self.client.send({"message": b"\x01\x01garbage"}))
        self.pump.flush()
        self.assertTrue(result[0].check(MalformedArguments))
        self.assertEqual(self.h.counters["refused_malformed"], 1)
        self.assertTrue(self.server.is_lost)
        self.assertEqual(self.h.delivered, [])

    def test_bad_chunks(self) -> None:
        """Chunks that do not add up are refused like a malformed message."""
        box = amp.AmpBox({amp.COMMAND: b"RaftMessage", amp.ASK: b"x", b"message": b"2", b"message.0": b"a"})
        self.client.transport.write(box.serialize())
        self.pump.flush()
        # The server refuses; so does the client, at the answer to a question it never asked.
        self.assertEqual(self.h.counters["refused_malformed"], 2)
        self.assertTrue(self.server.is_lost)
        self.assertEqual(self.h.delivered, [])

    def test_unsupported_message(self) -> None:
        """A message kind from a newer peer is answered UNSUPPORTED; the connection stays."""
        result = outcome(self.client.send({"message": bytes((codec.VERSION, 200))}))
        self.pump.flush()
        self.assertTrue(result[0].check(UnsupportedMessage))
        self.assertEqual(self.h.counters["unsupported"], 1)
        self.assertFalse(self.server.is_lost)
        d = self.client.send(codec.to_arguments(VOTE))
        self.pump.flush()
        self.successResultOf(d)
        self.assertEqual(self.h.delivered, [VOTE])

    def test_oversized_message(self) -> None:
        """A message over message_bytes_max is refused before it is whole."""
        message = AppendEntries(term=1, sender="n1", recipient="n2", prev_index=0, prev_term=0,
                                entries=(Entry(1, 1, bytes(2 * 1024 * 1024)),), commit=0)
        result = outcome(self.client.send(codec.to_arguments(message)))
        self.pump.flush()
        self.assertIsInstance(result[0], Failure)
        self.assertEqual(self.h.counters["refused_oversized"], 1)
        self.assertEqual(self.h.delivered, [])

    def test_second_hello(self) -> None:
        """A Hello after admission is refused."""
        result = outcome(self.client.callRemote(Hello, version=1, nonce=b"n" * 32))
        self.pump.flush()
        self.assertIsInstance(result[0], Failure)
        self.assertEqual(self.h.counters["refused_unexpected"], 1)
