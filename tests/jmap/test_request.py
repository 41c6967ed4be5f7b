# -*- test-case-name: tests.jmap.test_request -*-
"""
Tests for L{stalwart.jmap.request}: the Request object of RFC 8620 3.3 and
the request-level errors of RFC 8620 3.6.1.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.errors import RequestError
from stalwart.jmap.request import Invocation, Request, parse_request

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
KNOWN = frozenset({CORE, MAIL})
PREFIX = "urn:ietf:params:jmap:error:"


def _encode(value: object) -> bytes:
    return json.dumps(value).encode("utf-8")


class ParseRequestTests(SynchronousTestCase):
    """
    Well-formed requests become L{Request} objects (RFC 8620 3.3).
    """

    def test_example(self) -> None:
        """
        The example request of RFC 8620 3.3.1 parses into its capabilities
        and three invocations, in order, with no createdIds.
        """
        body = _encode(
            {
                "using": [CORE, MAIL],
                "methodCalls": [
                    ["method1", {"arg1": "arg1data", "arg2": "arg2data"}, "c1"],
                    ["method2", {"arg1": "arg1data"}, "c2"],
                    ["method3", {}, "c3"],
                ],
            }
        )
        self.assertEqual(
            parse_request(body, KNOWN, 16),
            Request(
                using=(CORE, MAIL),
                method_calls=(
                    Invocation("method1", {"arg1": "arg1data", "arg2": "arg2data"}, "c1"),
                    Invocation("method2", {"arg1": "arg1data"}, "c2"),
                    Invocation("method3", {}, "c3"),
                ),
                created_ids=None,
            ),
        )

    def test_createdIds(self) -> None:
        """
        C{createdIds} is kept when given, even empty (RFC 8620 3.3: "This
        may be an empty object").
        """
        body = _encode({"using": [], "methodCalls": [], "createdIds": {"k1": "M1"}})
        self.assertEqual(parse_request(body, KNOWN, 16).created_ids, {"k1": "M1"})
        body = _encode({"using": [], "methodCalls": [], "createdIds": {}})
        self.assertEqual(parse_request(body, KNOWN, 16).created_ids, {})

    def test_unknownPropertiesIgnored(self) -> None:
        """
        RFC 8620 3.3: a server MUST ignore Request properties it does not
        understand.
        """
        body = _encode({"using": [CORE], "methodCalls": [], "future": {"x": 1}})
        self.assertEqual(parse_request(body, KNOWN, 16), Request((CORE,), (), None))

    def test_emptyUsingAndCalls(self) -> None:
        """
        Empty C{using} and C{methodCalls} arrays match the type signature.
        """
        self.assertEqual(
            parse_request(b'{"using": [], "methodCalls": []}', KNOWN, 0), Request((), (), None)
        )

    def test_callsAtLimit(self) -> None:
        """
        Exactly C{maxCallsInRequest} calls are accepted.
        """
        calls = [["Core/echo", {}, str(i)] for i in range(4)]
        request = parse_request(_encode({"using": [CORE], "methodCalls": calls}), KNOWN, 4)
        self.assertEqual([c.call_id for c in request.method_calls], ["0", "1", "2", "3"])

    def test_invocationToJSON(self) -> None:
        """
        An Invocation is the C{[name, arguments, callId]} triple of RFC 8620
        3.2.
        """
        self.assertEqual(Invocation("a", {"b": 1}, "c").to_json(), ["a", {"b": 1}, "c"])


class RequestErrorCaseTests(SynchronousTestCase):
    """
    Every way a request can be rejected as a whole (RFC 8620 3.6.1).
    """

    def assertRejected(self, body: bytes, kind: str, *fragments: str, calls_max: int = 16) -> RequestError:
        """
        Assert that C{body} is rejected with problem type C{kind}, status
        400, and a detail containing every fragment.
        """
        error = self.assertRaises(RequestError, parse_request, body, KNOWN, calls_max)
        self.assertEqual(error.type, PREFIX + kind)
        self.assertEqual(error.status, 400)
        for fragment in fragments:
            self.assertIn(fragment, error.detail)
        return error

    def test_notUTF8(self) -> None:
        """
        Bytes that are not UTF-8 are notJSON (I-JSON is UTF-8, RFC 7493 2.1).
        """
        self.assertRejected(b'{"using": ["\xff"], "methodCalls": []}', "notJSON", "UTF-8")

    def test_notJSON(self) -> None:
        """
        Text that does not parse as JSON is notJSON.
        """
        for body in [b"", b"{", b"{'using': []}", b'{"using": []', b"using", b'{"a":1}x']:
            self.assertRejected(body, "notJSON")

    def test_byteOrderMark(self) -> None:
        """
        A leading byte order mark is not JSON (RFC 8259 8.1).
        """
        self.assertRejected(b'\xef\xbb\xbf{"using": [], "methodCalls": []}', "notJSON")

    def test_notIJSON(self) -> None:
        """
        JSON that is not I-JSON is notJSON (RFC 8620 3.6.1): duplicate member
        names, unpaired surrogates, and the non-JSON constants and overflowing
        numbers Python would otherwise accept.
        """
        bad = {
            b'{"using": [], "using": [], "methodCalls": []}': "duplicate",
            b'{"using": ["\\ud800"], "methodCalls": []}': "surrogate",
            b'{"using": [], "methodCalls": [], "\\udc00": 1}': "surrogate",
            b'{"using": [], "methodCalls": [], "x": NaN}': "NaN",
            b'{"using": [], "methodCalls": [], "x": -Infinity}': "Infinity",
            b'{"using": [], "methodCalls": [], "x": 1e400}': "too large",
            b'{"using": [], "methodCalls": [], "x": ' + b"9" * 1000 + b"}": "too large",
        }
        for body, fragment in bad.items():
            self.assertRejected(body, "notJSON", fragment)

    def test_pairedSurrogateAccepted(self) -> None:
        """
        A correctly paired surrogate escape is an ordinary character.
        """
        body = b'{"using": [], "methodCalls": [["Core/echo", {"s": "\\ud83d\\ude00"}, "c"]]}'
        request = parse_request(body, KNOWN, 16)
        self.assertEqual(request.method_calls[0].arguments, {"s": "\U0001F600"})

    def test_tooDeep(self) -> None:
        """
        Nesting deep enough to exhaust the parser's stack is notJSON, not a
        crash.
        """
        self.assertRejected(b"[" * 100000 + b"]" * 100000, "notJSON", "nested")

    def test_notObject(self) -> None:
        """
        JSON that is not an object is notRequest, naming what it is.
        """
        for body, what in [(b"[]", "array"), (b"null", "null"), (b'"x"', "string"), (b"1", "number"), (b"true", "boolean")]:
            self.assertRejected(body, "notRequest", "must be a JSON object", what)

    def test_missingProperties(self) -> None:
        """
        A request without C{using} or C{methodCalls} is notRequest, naming
        the missing property.
        """
        self.assertRejected(b'{"methodCalls": []}', "notRequest", "'using'")
        self.assertRejected(b'{"using": []}', "notRequest", "'methodCalls'")

    def test_usingIllTyped(self) -> None:
        """
        C{using} must be an array of strings.
        """
        self.assertRejected(b'{"using": "x", "methodCalls": []}', "notRequest", "'using'", "a string")
        self.assertRejected(b'{"using": null, "methodCalls": []}', "notRequest", "'using'", "null")
        self.assertRejected(
            _encode({"using": [CORE, 7], "methodCalls": []}), "notRequest", "'using'[1]", "a number"
        )

    def test_methodCallsIllTyped(self) -> None:
        """
        C{methodCalls} must be an array.
        """
        self.assertRejected(b'{"using": [], "methodCalls": {}}', "notRequest", "'methodCalls'", "an object")

    def test_invocationShape(self) -> None:
        """
        Each invocation must be an array of exactly three elements
        (RFC 8620 3.2); the detail names the index and what was found.
        """
        for call, what in [
            ({}, "an object"),
            ("Core/echo", "a string"),
            (["Core/echo", {}], "2 elements"),
            (["Core/echo", {}, "c", "d"], "4 elements"),
        ]:
            body = _encode({"using": [], "methodCalls": [["Core/echo", {}, "c0"], call]})
            self.assertRejected(body, "notRequest", "'methodCalls'[1]", what)

    def test_invocationTypes(self) -> None:
        """
        The name must be a string, the arguments an object and the method
        call id a string (RFC 8620 3.2).
        """
        for call, fragment in [
            ([1, {}, "c"], "method name"),
            (["Core/echo", [], "c"], "arguments"),
            (["Core/echo", None, "c"], "arguments"),
            (["Core/echo", {}, 1], "method call id"),
            (["Core/echo", {}, None], "method call id"),
        ]:
            body = _encode({"using": [], "methodCalls": [call]})
            self.assertRejected(body, "notRequest", "'methodCalls'[0]", fragment)

    def test_createdIdsIllTyped(self) -> None:
        """
        C{createdIds} must be an object mapping Ids to Ids (C{Id[Id]},
        RFC 8620 3.3); C{null} does not match that type either.
        """
        for created, fragment in [
            ([], "an array"),
            (None, "null"),
            ({"k1": 5}, "'k1'"),
            ({"k1": "bad id"}, "'k1'"),
            ({"bad key": "M1"}, "'bad key'"),
        ]:
            body = _encode({"using": [], "methodCalls": [], "createdIds": created})
            self.assertRejected(body, "notRequest", "'createdIds'", fragment)

    def test_unknownCapability(self) -> None:
        """
        A capability in C{using} the server does not know is
        unknownCapability, and the detail names it (RFC 8620 3.6.1 example).
        """
        body = _encode({"using": [CORE, "https://example.com/apis/foobar"], "methodCalls": []})
        self.assertRejected(body, "unknownCapability", "'https://example.com/apis/foobar'")

    def test_tooManyCalls(self) -> None:
        """
        More than maxCallsInRequest calls is a limit error naming that limit.
        """
        calls = [["Core/echo", {}, str(i)] for i in range(5)]
        error = self.assertRejected(
            _encode({"using": [CORE], "methodCalls": calls}), "limit", "5", "4", calls_max=4
        )
        self.assertEqual(error.limit, "maxCallsInRequest")
        self.assertEqual(error.to_json()["limit"], "maxCallsInRequest")

    def test_order(self) -> None:
        """
        A malformed request is notRequest even if it also uses an unknown
        capability or has too many calls; an unknown capability is reported
        before the call limit.
        """
        self.assertRejected(
            _encode({"using": ["urn:x"], "methodCalls": [["a", {}, "c"], ["b", [], "c"]]}),
            "notRequest",
            calls_max=1,
        )
        self.assertRejected(
            _encode({"using": ["urn:x"], "methodCalls": [["a", {}, "c"], ["b", {}, "c"]]}),
            "unknownCapability",
            calls_max=1,
        )
