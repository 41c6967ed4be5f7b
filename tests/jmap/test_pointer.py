# -*- test-case-name: tests.jmap.test_pointer -*-
"""
Tests for L{stalwart.jmap.pointer}: JSON Pointer (RFC 6901) with the JMAP
C{"*"} extension, and result references (RFC 8620 3.7).
"""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.errors import MethodError
from stalwart.jmap.pointer import PointerError, evaluate, parse_pointer, resolve_references
from stalwart.jmap.request import Invocation

# The example document of RFC 6901 section 5.
RFC6901_DOCUMENT = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


class EvaluateTests(SynchronousTestCase):
    """
    L{evaluate} follows RFC 6901 section 4.
    """

    def test_rfc6901Examples(self) -> None:
        """
        Every pointer of the RFC 6901 section 5 example, escapes included,
        evaluates to the value the RFC gives.
        """
        table = [
            ("", RFC6901_DOCUMENT),
            ("/foo", ["bar", "baz"]),
            ("/foo/0", "bar"),
            ("/", 0),
            ("/a~1b", 1),
            ("/c%d", 2),
            ("/e^f", 3),
            ("/g|h", 4),
            ("/i\\j", 5),
            ('/k"l', 6),
            ("/ ", 7),
            ("/m~0n", 8),
        ]
        for pointer, expected in table:
            self.assertEqual(evaluate(pointer, RFC6901_DOCUMENT), expected, pointer)

    def test_escapeOrder(self) -> None:
        """
        C{"~01"} is C{"~1"}, not C{"/"}: C{~1} is decoded before C{~0}
        (RFC 6901 section 4).
        """
        self.assertEqual(evaluate("/~01", {"~1": "right", "/": "wrong"}), "right")
        self.assertEqual(parse_pointer("/a~1b/~0~1"), ["a/b", "~/"])

    def test_badEscape(self) -> None:
        """
        C{"~"} followed by anything but C{0} or C{1} is an error.
        """
        for pointer in ["/~", "/~2", "/a~", "/~a"]:
            self.assertRaises(PointerError, evaluate, pointer, {"~": 1, "~2": 2, "a~": 3, "~a": 4})

    def test_notAPointer(self) -> None:
        """
        A non-empty pointer must start with C{"/"}, and must be a string.
        """
        self.assertRaises(PointerError, evaluate, "foo", {"foo": 1})
        self.assertRaises(PointerError, evaluate, None, {"foo": 1})

    def test_missing(self) -> None:
        """
        A missing member, an index past the end, C{"-"}, indices with
        leading zeros or signs, and lookups into scalars all raise
        L{PointerError}.
        """
        document = {"a": [10, 20], "s": "text", "n": None}
        for pointer in ["/b", "/a/2", "/a/-", "/a/01", "/a/-1", "/a/+1", "/a/x", "/a/", "/s/0", "/n/x", "/a/0/x", "/a/١"]:
            self.assertRaises(PointerError, evaluate, pointer, document)

    def test_nullValue(self) -> None:
        """
        A member whose value is null is present: it evaluates to C{None}.
        """
        self.assertIsNone(evaluate("/n", {"n": None}))

    def test_star(self) -> None:
        """
        On an array, C{"*"} applies the rest of the pointer to every item
        and returns the results in order (RFC 8620 3.7).
        """
        document = {"list": [{"id": "a", "threadId": "t1"}, {"id": "b", "threadId": "t2"}]}
        self.assertEqual(evaluate("/list/*/threadId", document), ["t1", "t2"])
        self.assertEqual(evaluate("/list/*", document), document["list"])

    def test_starFlattens(self) -> None:
        """
        When the rest of the pointer yields arrays, their contents are
        concatenated instead of nested (RFC 8620 3.7); items yielding
        non-arrays are kept as they are.
        """
        document = {"list": [{"e": ["m1", "m2"]}, {"e": "m3"}, {"e": []}, {"e": ["m4"]}]}
        self.assertEqual(evaluate("/list/*/e", document), ["m1", "m2", "m3", "m4"])

    def test_starFlattensOneLevel(self) -> None:
        """
        Flattening removes only the level the C{"*"} created: arrays inside
        the items' arrays stay.
        """
        self.assertEqual(evaluate("/*", [[1, [2]], [3]]), [1, [2], 3])

    def test_nestedStars(self) -> None:
        """
        Two C{"*"} in one pointer map over nested arrays and flatten both.
        """
        document = {"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}
        self.assertEqual(evaluate("/a/*/b/*/c", document), [1, 2, 3])

    def test_starEmpty(self) -> None:
        """
        C{"*"} over an empty array is an empty array.
        """
        self.assertEqual(evaluate("/list/*/id", {"list": []}), [])

    def test_starMissingInOneItem(self) -> None:
        """
        If the rest of the pointer fails on any item, the whole pointer
        fails.
        """
        self.assertRaises(PointerError, evaluate, "/list/*/id", {"list": [{"id": 1}, {}]})

    def test_starOnObjectIsAKey(self) -> None:
        """
        On an object, C{"*"} is an ordinary member name (RFC 6901).
        """
        self.assertEqual(evaluate("/*", {"*": 5}), 5)
        self.assertRaises(PointerError, evaluate, "/*", {"a": 5})


def _previous() -> list[Invocation]:
    return [
        Invocation(
            "Foo/changes",
            {
                "accountId": "A1",
                "oldState": "abcdef",
                "newState": "123456",
                "hasMoreChanges": False,
                "created": ["f1", "f4"],
                "updated": [],
                "destroyed": [],
            },
            "t0",
        ),
        Invocation("Foo/copy", {"created": {"k1": {"id": "f9"}}}, "t1"),
        Invocation("Foo/set", {"destroyed": ["f8"]}, "t1"),
        Invocation("error", {"type": "forbidden"}, "t2"),
    ]


def _ref(result_of: str, name: str, path: str) -> dict:
    return {"resultOf": result_of, "name": name, "path": path}


class ResolveReferencesTests(SynchronousTestCase):
    """
    L{resolve_references} follows RFC 8620 3.7.
    """

    def test_simpleExample(self) -> None:
        """
        The first example of RFC 8620 3.7: C{#ids} referring to C{/created}
        of a Foo/changes response becomes C{ids: ["f1", "f4"]}.
        """
        arguments = {"accountId": "A1", "#ids": _ref("t0", "Foo/changes", "/created")}
        self.assertEqual(
            resolve_references(arguments, _previous()), {"accountId": "A1", "ids": ["f1", "f4"]}
        )

    def test_noReferences(self) -> None:
        """
        Arguments without C{"#"} keys are returned unchanged.
        """
        arguments = {"accountId": "A1"}
        self.assertIs(resolve_references(arguments, _previous()), arguments)

    def test_inputUnchanged(self) -> None:
        """
        The arguments passed in keep their C{"#"} key.
        """
        arguments = {"#ids": _ref("t0", "Foo/changes", "/created")}
        resolve_references(arguments, _previous())
        self.assertIn("#ids", arguments)

    def test_resolvedValueIsACopy(self) -> None:
        """
        Changing a resolved value does not change the earlier response.
        """
        previous = _previous()
        resolved = resolve_references({"#ids": _ref("t0", "Foo/changes", "/created")}, previous)
        resolved["ids"].append("zzz")
        self.assertEqual(previous[0].arguments["created"], ["f1", "f4"])

    def test_severalReferences(self) -> None:
        """
        Every C{"#"} argument is resolved.
        """
        arguments = {
            "#a": _ref("t0", "Foo/changes", "/newState"),
            "#b": _ref("t0", "Foo/changes", "/hasMoreChanges"),
        }
        self.assertEqual(resolve_references(arguments, _previous()), {"a": "123456", "b": False})

    def test_secondResponseOfACall(self) -> None:
        """
        A call that emitted several responses (here Foo/copy, then an
        implicit Foo/set) can be referred to by the name of any of them.
        """
        arguments = {"#ids": _ref("t1", "Foo/set", "/destroyed")}
        self.assertEqual(resolve_references(arguments, _previous()), {"ids": ["f8"]})
        arguments = {"#id": _ref("t1", "Foo/copy", "/created/k1/id")}
        self.assertEqual(resolve_references(arguments, _previous()), {"id": "f9"})

    def test_firstMatchingResponse(self) -> None:
        """
        If several responses share the call id and name, the first is used
        (RFC 8620 3.7 step 1).
        """
        previous = [Invocation("X/get", {"v": 1}, "c"), Invocation("X/get", {"v": 2}, "c")]
        self.assertEqual(resolve_references({"#v": _ref("c", "X/get", "/v")}, previous), {"v": 1})

    def test_bothForms(self) -> None:
        """
        C{foo} and C{#foo} together are invalidArguments (RFC 8620 3.7).
        """
        arguments = {"ids": [], "#ids": _ref("t0", "Foo/changes", "/created")}
        error = self.assertRaises(MethodError, resolve_references, arguments, _previous())
        self.assertEqual(error.type, "invalidArguments")

    def assertInvalidReference(self, reference: object, previous: list | None = None) -> MethodError:
        """
        Assert that C{#ids: reference} fails with invalidResultReference.
        """
        error = self.assertRaises(
            MethodError,
            resolve_references,
            {"#ids": reference},
            _previous() if previous is None else previous,
        )
        self.assertEqual(error.type, "invalidResultReference")
        self.assertIn("#ids", error.description)
        return error

    def test_unknownCallId(self) -> None:
        """
        No earlier response with that method call id: the reference fails
        (RFC 8620 3.7 step 1), including when there are no responses yet.
        """
        self.assertInvalidReference(_ref("t9", "Foo/changes", "/created"))
        self.assertInvalidReference(_ref("t0", "Foo/changes", "/created"), previous=[])

    def test_wrongName(self) -> None:
        """
        A response with that id but another name: the reference fails
        (RFC 8620 3.7 step 2).
        """
        self.assertInvalidReference(_ref("t0", "Foo/get", "/created"))

    def test_errorResponse(self) -> None:
        """
        A reference to a call that failed (its response is named C{error})
        fails.
        """
        self.assertInvalidReference(_ref("t2", "Foo/get", "/list"))

    def test_badPath(self) -> None:
        """
        A path that does not evaluate, or is not a JSON Pointer, fails
        (RFC 8620 3.7 step 3).
        """
        self.assertInvalidReference(_ref("t0", "Foo/changes", "/nope"))
        self.assertInvalidReference(_ref("t0", "Foo/changes", "created"))
        self.assertInvalidReference(_ref("t0", "Foo/changes", "/created/*/x"))

    def test_malformedReference(self) -> None:
        """
        A ResultReference that is not an object, or lacks a string
        C{resultOf}, C{name} or C{path}, fails.
        """
        for reference in [
            "t0",
            None,
            ["t0", "Foo/changes", "/created"],
            {"name": "Foo/changes", "path": "/created"},
            {"resultOf": "t0", "path": "/created"},
            {"resultOf": "t0", "name": "Foo/changes"},
            {"resultOf": 0, "name": "Foo/changes", "path": "/created"},
            {"resultOf": "t0", "name": "Foo/changes", "path": None},
        ]:
            self.assertInvalidReference(reference)
