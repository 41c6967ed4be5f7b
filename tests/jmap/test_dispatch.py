# -*- test-case-name: tests.jmap.test_dispatch -*-
"""
Tests for L{stalwart.jmap.dispatch}: running a request's method calls
(RFC 8620 3.3 to 3.7), with fake methods and no reactor.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.dispatch import Dispatcher
from stalwart.jmap.errors import MethodError
from stalwart.jmap.request import Invocation, Request

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"


class FakeMethod:
    """
    A method that records its calls and answers with C{respond}.
    """

    def __init__(self, respond: Callable[[dict, Any, dict], Any], capability: str = CORE) -> None:
        self.capability = capability
        self.respond = respond
        self.calls: list[dict] = []

    def __call__(self, arguments: dict, context: Any, created_ids: dict) -> Any:
        self.calls.append(arguments)
        return self.respond(arguments, context, created_ids)


def answer(name: str, **arguments: Any) -> FakeMethod:
    """
    A method that answers C{[(name, arguments)]} through a fired Deferred.
    """
    return FakeMethod(lambda args, ctx, ids: succeed([(name, dict(arguments))]))


def echo() -> FakeMethod:
    """
    Core/echo (RFC 8620 4): answer with the arguments given.
    """
    return FakeMethod(lambda args, ctx, ids: [("Core/echo", args)])


class FakeContext:
    """
    The opaque per-request context; counts calls to C{session_state}.
    """

    def __init__(self, state: str = "75128aab4b1b") -> None:
        self.state = state
        self.state_calls = 0

    def session_state(self) -> str:
        self.state_calls += 1
        return self.state


def request(*calls: tuple, using=(CORE, MAIL), created_ids=None) -> Request:
    return Request(tuple(using), tuple(Invocation(*call) for call in calls), created_ids)


class DispatcherTests(SynchronousTestCase):
    """
    The Response object and the order of calls (RFC 8620 3.4, 3.10).
    """

    def processed(self, dispatcher: Dispatcher, req: Request, context: Any = None) -> dict:
        """
        Process C{req} and return the Response object, which must be ready.
        """
        return self.successResultOf(dispatcher.process(req, context or FakeContext()))

    def test_rfcExampleResponse(self) -> None:
        """
        The example of RFC 8620 3.4: responses in call order, a method with
        two responses gives both with its call id, an unknown method gives
        an unknownMethod error, and sessionState comes from the context.
        """
        dispatcher = Dispatcher(
            {
                "method1": answer("method1", arg1=3, arg2="foo"),
                "method2": FakeMethod(
                    lambda args, ctx, ids: [
                        ("method2", {"isBlah": True}),
                        ("anotherResponseFromMethod2", {"data": 10, "yetmoredata": "Hello"}),
                    ]
                ),
            }
        )
        req = request(
            ("method1", {"arg1": "arg1data", "arg2": "arg2data"}, "c1"),
            ("method2", {"arg1": "arg1data"}, "c2"),
            ("method3", {}, "c3"),
        )
        response = self.processed(dispatcher, req)
        self.assertEqual(
            response["methodResponses"],
            [
                ["method1", {"arg1": 3, "arg2": "foo"}, "c1"],
                ["method2", {"isBlah": True}, "c2"],
                ["anotherResponseFromMethod2", {"data": 10, "yetmoredata": "Hello"}, "c2"],
                ["error", {"type": "unknownMethod", "description": "no method named 'method3'"}, "c3"],
            ],
        )
        self.assertEqual(response["sessionState"], "75128aab4b1b")
        self.assertNotIn("createdIds", response)

    def test_echo(self) -> None:
        """
        The Core/echo example of RFC 8620 4 round-trips its arguments.
        """
        response = self.processed(
            Dispatcher({"Core/echo": echo()}),
            request(("Core/echo", {"hello": True, "high": 5}, "b3ff")),
        )
        self.assertEqual(response["methodResponses"], [["Core/echo", {"hello": True, "high": 5}, "b3ff"]])

    def test_noCalls(self) -> None:
        """
        A request with no calls has no responses, and still a sessionState.
        """
        self.assertEqual(
            self.processed(Dispatcher({}), request()),
            {"methodResponses": [], "sessionState": "75128aab4b1b"},
        )

    def test_sequential(self) -> None:
        """
        RFC 8620 3.3: calls are processed sequentially.  The second call
        does not start until the first call's Deferred fires, and the
        session state is read only after the last call.
        """
        first: Deferred = Deferred()
        log: list[str] = []

        def one(args, ctx, ids):
            log.append("one")
            return first

        def two(args, ctx, ids):
            log.append("two")
            return [("Two", {})]

        context = FakeContext()
        d = Dispatcher({"One": FakeMethod(one), "Two": FakeMethod(two)}).process(
            request(("One", {}, "a"), ("Two", {}, "b")), context
        )
        self.assertNoResult(d)
        self.assertEqual(log, ["one"])
        self.assertEqual(context.state_calls, 0)
        first.callback([("One", {})])
        self.assertEqual(log, ["one", "two"])
        self.assertEqual(
            self.successResultOf(d)["methodResponses"], [["One", {}, "a"], ["Two", {}, "b"]]
        )
        self.assertEqual(context.state_calls, 1)

    def test_sameMethodTwice(self) -> None:
        """
        The same method may be called several times; each call gets its own
        arguments and its own call id on its response.
        """
        method = echo()
        response = self.processed(
            Dispatcher({"Core/echo": method}),
            request(("Core/echo", {"n": 1}, "x"), ("Core/echo", {"n": 2}, "x")),
        )
        self.assertEqual(method.calls, [{"n": 1}, {"n": 2}])
        self.assertEqual(
            response["methodResponses"], [["Core/echo", {"n": 1}, "x"], ["Core/echo", {"n": 2}, "x"]]
        )

    def test_contextPassed(self) -> None:
        """
        Methods receive the request's context object.
        """
        context = FakeContext()
        seen = []
        method = FakeMethod(lambda args, ctx, ids: seen.append(ctx) or [("M", {})])
        self.processed(Dispatcher({"M": method}), request(("M", {}, "c")), context)
        self.assertEqual(seen, [context])


class MethodErrorTests(SynchronousTestCase):
    """
    Method-level errors (RFC 8620 3.6.2): one failing call gives one
    C{"error"} response and the following calls run as normal.
    """

    def processed(self, method: FakeMethod, using=(CORE, MAIL)) -> list:
        after = echo()
        response = self.successResultOf(
            Dispatcher({"Bad/call": method, "Core/echo": after}).process(
                request(("Bad/call", {}, "c1"), ("Core/echo", {"ok": 1}, "c2"), using=using),
                FakeContext(),
            )
        )
        self.assertEqual(after.calls, [{"ok": 1}])
        self.assertEqual(response["methodResponses"][1], ["Core/echo", {"ok": 1}, "c2"])
        self.assertEqual(len(response["methodResponses"]), 2)
        return response["methodResponses"][0]

    def test_unknownMethod(self) -> None:
        """
        A name no method has gives unknownMethod.
        """
        response = self.successResultOf(
            Dispatcher({}).process(request(("Nope/get", {}, "c1")), FakeContext())
        )
        self.assertEqual(response["methodResponses"][0][0], "error")
        self.assertEqual(response["methodResponses"][0][1]["type"], "unknownMethod")
        self.assertEqual(response["methodResponses"][0][2], "c1")

    def test_capabilityNotUsed(self) -> None:
        """
        A method whose capability is not in the request's C{using} is
        unknownMethod (RFC 8620 3.6.2), and is not called.
        """
        method = answer("Mailbox/get", list=[])
        method.capability = MAIL
        name, arguments, call_id = self.processed(method, using=(CORE,))
        self.assertEqual((name, arguments["type"], call_id), ("error", "unknownMethod", "c1"))
        self.assertIn(MAIL, arguments["description"])
        self.assertEqual(method.calls, [])

    def test_raisesMethodError(self) -> None:
        """
        A method raising L{MethodError} gives its error object.
        """

        def raises(args, ctx, ids):
            raise MethodError("accountNotFound", "no account A9")

        self.assertEqual(
            self.processed(FakeMethod(raises)),
            ["error", {"type": "accountNotFound", "description": "no account A9"}, "c1"],
        )

    def test_failsWithMethodError(self) -> None:
        """
        A method whose Deferred fails with L{MethodError} gives its error
        object, extra properties included.
        """
        method = FakeMethod(lambda args, ctx, ids: fail(MethodError("stateMismatch", extra=1)))
        self.assertEqual(self.processed(method), ["error", {"type": "stateMismatch", "extra": 1}, "c1"])

    def test_raisesUnexpected(self) -> None:
        """
        Any other exception is logged and gives serverFail with a
        description (RFC 8620 3.6.2).
        """

        def raises(args, ctx, ids):
            raise ZeroDivisionError("boom")

        name, arguments, call_id = self.processed(FakeMethod(raises))
        self.assertEqual((name, arguments["type"], call_id), ("error", "serverFail", "c1"))
        self.assertIn("ZeroDivisionError", arguments["description"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failsUnexpected(self) -> None:
        """
        A Deferred failing with another exception is also a logged
        serverFail.
        """
        name, arguments, call_id = self.processed(FakeMethod(lambda a, c, i: fail(KeyError("x"))))
        self.assertEqual(arguments["type"], "serverFail")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_badReturnValue(self) -> None:
        """
        A method returning something other than a non-empty list of
        C{(name, arguments)} pairs is a bug: logged, serverFail.
        """
        for bad in [None, [], [("only-name",)], [("Foo/get", [])], [(1, {})], "Foo/get"]:
            method = FakeMethod(lambda a, c, i, bad=bad: bad)
            self.assertEqual(self.processed(method)[1]["type"], "serverFail")
        self.assertEqual(len(self.flushLoggedErrors()), 6)


def _ref(result_of: str, name: str, path: str) -> dict:
    return {"resultOf": result_of, "name": name, "path": path}


class ResultReferenceTests(SynchronousTestCase):
    """
    Result references resolved by the dispatcher (RFC 8620 3.7).
    """

    def test_rfcMailExample(self) -> None:
        """
        The RFC 8620 3.7 example end to end: Email/query, then Email/get of
        its C{/ids}, Thread/get of C{/list/*/threadId}, and Email/get of the
        flattened C{/list/*/emailIds}.
        """
        threads = {"trd194": ["msg1020", "msg1021", "msg1023"], "trd114": ["msg201", "msg223"]}
        thread_of = {m: t for t, ms in threads.items() for m in ms}

        def email_query(args, ctx, ids):
            return [
                (
                    "Email/query",
                    {
                        "accountId": "A1",
                        "queryState": "abcdefg",
                        "canCalculateChanges": True,
                        "position": 0,
                        "total": 101,
                        "ids": ["msg1023", "msg223"],
                    },
                )
            ]

        def email_get(args, ctx, ids):
            props = args.get("properties")
            listed = [
                {"id": m, **({"threadId": thread_of[m]} if "threadId" in props else {"subject": m})}
                for m in args["ids"]
            ]
            return succeed([("Email/get", {"accountId": "A1", "state": "123456", "list": listed, "notFound": []})])

        def thread_get(args, ctx, ids):
            listed = [{"id": t, "emailIds": threads[t]} for t in args["ids"]]
            return [("Thread/get", {"accountId": "A1", "state": "123456", "list": listed, "notFound": []})]

        methods = {
            "Email/query": FakeMethod(email_query, MAIL),
            "Email/get": FakeMethod(email_get, MAIL),
            "Thread/get": FakeMethod(thread_get, MAIL),
        }
        req = request(
            ("Email/query", {"accountId": "A1", "filter": {"inMailbox": "id_of_inbox"}, "limit": 10}, "t0"),
            (
                "Email/get",
                {"accountId": "A1", "#ids": _ref("t0", "Email/query", "/ids"), "properties": ["threadId"]},
                "t1",
            ),
            ("Thread/get", {"accountId": "A1", "#ids": _ref("t1", "Email/get", "/list/*/threadId")}, "t2"),
            (
                "Email/get",
                {
                    "accountId": "A1",
                    "#ids": _ref("t2", "Thread/get", "/list/*/emailIds"),
                    "properties": ["from", "receivedAt", "subject"],
                },
                "t3",
            ),
        )
        response = self.successResultOf(Dispatcher(methods).process(req, FakeContext()))
        self.assertEqual(
            methods["Email/get"].calls,
            [
                {"accountId": "A1", "ids": ["msg1023", "msg223"], "properties": ["threadId"]},
                {
                    "accountId": "A1",
                    "ids": ["msg1020", "msg1021", "msg1023", "msg201", "msg223"],
                    "properties": ["from", "receivedAt", "subject"],
                },
            ],
        )
        self.assertEqual(methods["Thread/get"].calls, [{"accountId": "A1", "ids": ["trd194", "trd114"]}])
        self.assertEqual([r[2] for r in response["methodResponses"]], ["t0", "t1", "t2", "t3"])
        self.assertEqual(len(response["methodResponses"][3][1]["list"]), 5)

    def test_invalidResultReference(self) -> None:
        """
        A reference that fails to resolve rejects the call with
        invalidResultReference without calling the method; later calls run.
        """
        target = echo()
        after = echo()
        req = request(
            ("Core/echo", {"ids": ["a"]}, "c1"),
            ("Target", {"#ids": _ref("c1", "Core/echo", "/missing")}, "c2"),
            ("After", {"#ids": _ref("c1", "Core/echo", "/ids")}, "c3"),
        )
        response = self.successResultOf(
            Dispatcher({"Core/echo": echo(), "Target": target, "After": after}).process(req, FakeContext())
        )
        name, arguments, call_id = response["methodResponses"][1]
        self.assertEqual((name, arguments["type"], call_id), ("error", "invalidResultReference", "c2"))
        self.assertEqual(target.calls, [])
        self.assertEqual(after.calls, [{"ids": ["a"]}])

    def test_referenceToLaterCall(self) -> None:
        """
        A reference may only use calls already processed: a forward
        reference fails.
        """
        req = request(
            ("Core/echo", {"#x": _ref("c2", "Core/echo", "/x")}, "c1"),
            ("Core/echo", {"x": 1}, "c2"),
        )
        response = self.successResultOf(Dispatcher({"Core/echo": echo()}).process(req, FakeContext()))
        self.assertEqual(response["methodResponses"][0][1]["type"], "invalidResultReference")

    def test_referenceToError(self) -> None:
        """
        A reference to a call that failed does not resolve, since its
        response is named C{error}.
        """
        req = request(
            ("Nope", {}, "c1"),
            ("Core/echo", {"#x": _ref("c1", "Nope", "/type")}, "c2"),
        )
        response = self.successResultOf(Dispatcher({"Core/echo": echo()}).process(req, FakeContext()))
        self.assertEqual(response["methodResponses"][1][1]["type"], "invalidResultReference")

    def test_bothForms(self) -> None:
        """
        C{x} and C{#x} together give invalidArguments (RFC 8620 3.7).
        """
        req = request(
            ("Core/echo", {"x": 1}, "c1"),
            ("Core/echo", {"x": 2, "#x": _ref("c1", "Core/echo", "/x")}, "c2"),
        )
        response = self.successResultOf(Dispatcher({"Core/echo": echo()}).process(req, FakeContext()))
        self.assertEqual(response["methodResponses"][1][1]["type"], "invalidArguments")

    def test_capabilityCheckedBeforeReferences(self) -> None:
        """
        A method the client may not use is unknownMethod even if its
        reference would also fail: the method check comes first.
        """
        method = echo()
        method.capability = "urn:other"
        req = request(("Other", {"#x": _ref("nope", "X", "/x")}, "c1"))
        response = self.successResultOf(Dispatcher({"Other": method}).process(req, FakeContext()))
        self.assertEqual(response["methodResponses"][0][1]["type"], "unknownMethod")


class CreatedIdsTests(SynchronousTestCase):
    """
    The creation id map of a request (RFC 8620 3.3, 3.4, 5.3).
    """

    def creator(self, creation_id: str, record_id: str) -> FakeMethod:
        def create(args, ctx, ids):
            ids[creation_id] = record_id
            return [("Foo/set", {"created": {creation_id: {"id": record_id}}})]

        return FakeMethod(create)

    def test_echoed(self) -> None:
        """
        When the request has createdIds, the response has them, with the
        initial entries and those added by methods (RFC 8620 3.4).
        """
        req = request(("Foo/set", {}, "c1"), created_ids={"k0": "F0"})
        response = self.successResultOf(
            Dispatcher({"Foo/set": self.creator("k1", "F1")}).process(req, FakeContext())
        )
        self.assertEqual(response["createdIds"], {"k0": "F0", "k1": "F1"})

    def test_emptyEchoed(self) -> None:
        """
        An empty createdIds in the request gives createdIds in the response.
        """
        response = self.successResultOf(
            Dispatcher({}).process(request(created_ids={}), FakeContext())
        )
        self.assertEqual(response["createdIds"], {})

    def test_notEchoedWhenAbsent(self) -> None:
        """
        Without createdIds in the request, the response has none, even if
        records were created (RFC 8620 3.4: "only returned if given").
        """
        response = self.successResultOf(
            Dispatcher({"Foo/set": self.creator("k1", "F1")}).process(
                request(("Foo/set", {}, "c1")), FakeContext()
            )
        )
        self.assertNotIn("createdIds", response)

    def test_sharedAcrossCalls(self) -> None:
        """
        Ids created by one call are visible to the next ones, starting from
        the request's initial map; a reused creation id maps to the most
        recent record (RFC 8620 5.3).
        """
        seen = []
        reader = FakeMethod(lambda args, ctx, ids: seen.append(dict(ids)) or [("Read", {})])
        req = request(
            ("Read", {}, "c0"),
            ("Create1", {}, "c1"),
            ("Read", {}, "c2"),
            ("Create2", {}, "c3"),
            created_ids={"k0": "F0"},
        )
        dispatcher = Dispatcher(
            {"Read": reader, "Create1": self.creator("k1", "F1"), "Create2": self.creator("k1", "F2")}
        )
        response = self.successResultOf(dispatcher.process(req, FakeContext()))
        self.assertEqual(seen, [{"k0": "F0"}, {"k0": "F0", "k1": "F1"}])
        self.assertEqual(response["createdIds"], {"k0": "F0", "k1": "F2"})

    def test_requestUnchanged(self) -> None:
        """
        The Request's own createdIds map is not modified.
        """
        initial = {"k0": "F0"}
        req = request(("Foo/set", {}, "c1"), created_ids=initial)
        self.successResultOf(Dispatcher({"Foo/set": self.creator("k1", "F1")}).process(req, FakeContext()))
        self.assertEqual(initial, {"k0": "F0"})
