"""
Tests for the calls of L{stalwart.cluster.rpc.protocol}: C{Exchange} and
C{Forward} reach their handlers only after admission, and every outcome
of a handler (an answer, L{NotLeader}, L{Unavailable}, a bug) becomes an
answer or a clean AMP error on a connection that stays.  AMP over
L{twisted.test.iosim} with a fake channel binding.
"""

import random

from twisted.internet.defer import Deferred, fail, succeed
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.rpc.chunks import CHUNK_BYTES
from stalwart.cluster.rpc.commands import Exchange, Forward, NotLeader, Unavailable
from stalwart.cluster.rpc.protocol import ClientProtocol, ServerProtocol

from tests.cluster.rpc.test_protocol import KEY, Harness, Raw, outcome


class Handlers:
    """Handlers that record their arguments and answer what the test set."""

    def __init__(self) -> None:
        self.exchanged: list = []
        self.forwarded: list = []
        self.exchange_answer: object = b"their document"
        self.forward_answer: object = (3, 42)

    def exchange(self, data: bytes):
        self.exchanged.append(data)
        return self.exchange_answer

    def forward(self, payload: bytes):
        self.forwarded.append(payload)
        answer = self.forward_answer
        return answer if isinstance(answer, Deferred) else succeed(answer)


class CallHarness(Harness):
    def __init__(self, test: SynchronousTestCase, **server_options) -> None:
        super().__init__(test)
        self.handlers = Handlers()
        self.server_options = dict(exchange=self.handlers.exchange, forward=self.handlers.forward)
        self.server_options.update(server_options)

    def server(self, key: bytes = KEY, binding: bytes = b"channel") -> ServerProtocol:
        return ServerProtocol(deliver=self.delivered.append, message_bytes_max=self.message_bytes_max,
                              **self.server_options, **self.common(key, binding))

    def client(self, key: bytes = KEY, binding: bytes = b"channel", **options) -> ClientProtocol:
        options.setdefault("answer_bytes_max", 2 << 20)
        return ClientProtocol(**options, **self.common(key, binding))


class CallTests(SynchronousTestCase):
    """Calls on an admitted connection."""

    def connect(self, client_options: dict = None, **server_options) -> None:
        self.h = CallHarness(self, **server_options)
        self.server, self.client = self.h.server(), self.h.client(**(client_options or {}))
        self.pump = self.h.connect(self.server, self.client)
        self.successResultOf(self.client.admitted)

    def setUp(self) -> None:
        self.connect()

    def call(self, command, **arguments):
        result = outcome(self.client.call(command, **arguments))
        self.pump.flush()
        return result

    def assertStays(self) -> None:
        """The connection is still up, and still answers."""
        self.h.handlers.exchange_answer = b"still here"
        self.assertEqual(self.call(Exchange, data=b"again"), [{"data": b"still here"}])
        self.assertFalse(self.server.is_lost)

    def test_exchange(self) -> None:
        """An Exchange document reaches the handler, and its answer comes back."""
        self.assertEqual(self.call(Exchange, data=b"my document"), [{"data": b"their document"}])
        self.assertEqual(self.h.handlers.exchanged, [b"my document"])
        self.assertEqual(self.h.counters["exchange_received"], 1)

    def test_exchange_deferred(self) -> None:
        """An Exchange handler may answer later, with a Deferred."""
        later = self.h.handlers.exchange_answer = Deferred()
        result = self.call(Exchange, data=b"")
        self.assertEqual(result, [])
        later.callback(b"later")
        self.pump.flush()
        self.assertEqual(result, [{"data": b"later"}])

    def test_forward(self) -> None:
        """A Forward is answered with term and index only once the handler's Deferred fires (applied)."""
        applied = self.h.handlers.forward_answer = Deferred()
        result = self.call(Forward, payload=b"entry")
        self.assertEqual(self.h.handlers.forwarded, [b"entry"])
        self.assertEqual(result, [])
        applied.callback((7, 1234))
        self.pump.flush()
        self.assertEqual(result, [{"term": 7, "index": 1234}])

    def test_not_leader(self) -> None:
        """NotLeader reaches the caller with the leader's node id, or an empty one if none is known."""
        for leader in ("n3", ""):
            self.h.handlers.forward_answer = fail(NotLeader(leader))
            (failure,) = self.call(Forward, payload=b"entry")
            failure.trap(NotLeader)
            self.assertEqual(failure.value.leader, leader)
        self.assertEqual(self.h.counters["forward_not_leader"], 2)
        self.assertStays()

    def test_unavailable(self) -> None:
        """Unavailable reaches the caller with its reason."""
        self.h.handlers.forward_answer = fail(Unavailable("storage failed"))
        (failure,) = self.call(Forward, payload=b"entry")
        failure.trap(Unavailable)
        self.assertEqual(failure.value.reason, "storage failed")
        self.assertStays()

    def test_handler_bug(self) -> None:
        """
        A handler raising anything else is a bug: it is logged, the caller
        gets Unavailable("internal error"), and the connection stays.
        """
        def broken(payload):
            raise ZeroDivisionError("oops")

        self.server._forward = broken
        (failure,) = self.call(Forward, payload=b"entry")
        failure.trap(Unavailable)
        self.assertEqual(failure.value.reason, "internal error")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.h.counters["forward_failed"], 1)
        self.assertStays()

    def test_handler_bad_answer(self) -> None:
        """A handler answering the wrong type is a bug too: an internal error, not a dropped connection."""
        self.h.handlers.forward_answer = ("3", None)
        self.h.handlers.exchange_answer = "not bytes"
        for command, arguments in ((Forward, {"payload": b"p"}), (Exchange, {"data": b"d"})):
            (failure,) = self.call(command, **arguments)
            failure.trap(Unavailable)
        self.assertEqual(len(self.flushLoggedErrors(AssertionError)), 2)
        self.assertStays()

    def test_no_handler(self) -> None:
        """Without a handler, the command is answered Unavailable; the connection stays."""
        self.connect(exchange=None, forward=None)
        for command, arguments in ((Forward, {"payload": b"p"}), (Exchange, {"data": b"d"})):
            (failure,) = self.call(command, **arguments)
            failure.trap(Unavailable)
        self.assertEqual(self.h.counters["forward_not_served"], 1)
        self.assertEqual(self.h.counters["exchange_not_served"], 1)
        self.assertFalse(self.server.is_lost)

    def test_large_forward(self) -> None:
        """A 6 MiB payload crosses in about a hundred chunks and arrives whole."""
        payload = random.Random(5).randbytes(6 * 1024 * 1024 + 17)
        box = Forward.makeArguments({"payload": payload}, None)
        self.assertEqual(int(box[b"payload"]), len(payload) // CHUNK_BYTES + 1)
        self.assertEqual(self.call(Forward, payload=payload), [{"term": 3, "index": 42}])
        self.assertEqual(self.h.handlers.forwarded, [payload])

    def test_exchange_limits(self) -> None:
        """A document over exchange_bytes_max is answered Unavailable, whichever side made it."""
        self.connect(exchange_bytes_max=1000)
        (failure,) = self.call(Exchange, data=bytes(1001))
        failure.trap(Unavailable)
        self.assertEqual(self.h.handlers.exchanged, [])
        self.h.handlers.exchange_answer = bytes(1001)
        (failure,) = self.call(Exchange, data=b"small")
        failure.trap(Unavailable)
        self.assertEqual(self.h.counters["exchange_oversized"], 1)
        self.assertEqual(self.h.counters["exchange_answer_oversized"], 1)
        self.assertFalse(self.server.is_lost)

    def test_answer_limit(self) -> None:
        """A client refuses an answer over its answer_bytes_max, and closes the connection."""
        self.connect(client_options={"answer_bytes_max": 10000})
        self.h.handlers.exchange_answer = bytes(20000)
        (failure,) = self.call(Exchange, data=b"small")
        self.assertIsInstance(failure, Failure)
        self.assertEqual(self.h.counters["refused_oversized"], 1)
        self.assertTrue(self.client.is_lost)

    def test_calls_inflight_max(self) -> None:
        """Calls over calls_inflight_max on one connection are answered Unavailable("busy")."""
        self.connect(calls_inflight_max=1)
        applied = self.h.handlers.forward_answer = Deferred()
        first = outcome(self.client.call(Forward, payload=b"1"))
        second = outcome(self.client.call(Forward, payload=b"2"))
        self.pump.flush()
        self.assertEqual(first, [])
        second[0].trap(Unavailable)
        self.assertEqual(second[0].value.reason, "busy")
        applied.callback((1, 1))
        self.pump.flush()
        self.assertEqual(first, [{"term": 1, "index": 1}])
        self.assertEqual(self.h.counters["calls_busy"], 1)


class PrematureCallTests(SynchronousTestCase):
    """Calls before admission are refused like any other command, and never reach a handler."""

    def send_first(self, command, arguments: dict) -> None:
        h = CallHarness(self)
        server = h.server()
        raw = Raw()
        pump = h.connect(server, raw)
        box = command.makeArguments(arguments, None)
        box[amp.COMMAND], box[amp.ASK] = command.commandName, b"1"
        raw.transport.write(box.serialize())
        pump.flush()
        self.assertTrue(server.is_lost)
        self.assertEqual(h.counters["refused_premature"], 1, h.counters)
        self.assertEqual((h.handlers.exchanged, h.handlers.forwarded), ([], []))

    def test_exchange_first(self) -> None:
        """An Exchange before the admission exchange is refused."""
        self.send_first(Exchange, {"data": b"{}"})

    def test_forward_first(self) -> None:
        """A Forward before the admission exchange is refused."""
        self.send_first(Forward, {"payload": b"entry"})

    def test_after_hello(self) -> None:
        """A Forward between Hello and Prove is refused too."""
        h = CallHarness(self)
        server = h.server()
        raw = Raw()
        pump = h.connect(server, raw)
        hello = amp.AmpBox({amp.COMMAND: b"Hello", amp.ASK: b"1", b"version": b"1", b"nonce": b"n" * 32})
        box = Forward.makeArguments({"payload": b"entry"}, None)
        box[amp.COMMAND], box[amp.ASK] = b"Forward", b"2"
        raw.transport.write(hello.serialize() + box.serialize())
        pump.flush()
        self.assertTrue(server.is_lost)
        self.assertEqual(h.counters["refused_premature"], 1, h.counters)
        self.assertEqual(h.handlers.forwarded, [])
