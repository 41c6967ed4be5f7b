# -*- test-case-name: tests.jmap.test_patch -*-
"""
Tests for L{stalwart.jmap.patch}: the PatchObject of RFC 8620 5.3.
"""

import copy

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.patch import PatchError, apply_patch

MAILBOX = {
    "id": "M1",
    "name": "Inbox",
    "sortOrder": 1,
    "myRights": {"mayReadItems": True, "mayDelete": False},
    "keywords": {"$seen": True},
    "alerts": [{"offset": 5}, {"offset": 10}],
    "a/b": {"~c": 1},
}


class ApplyPatchTests(SynchronousTestCase):
    """
    Valid patches (RFC 8620 5.3).
    """

    def test_setTopLevel(self) -> None:
        """
        A key without C{"/"} replaces or adds a top-level property.
        """
        result = apply_patch(MAILBOX, {"name": "Archive", "role": "archive"})
        self.assertEqual(result["name"], "Archive")
        self.assertEqual(result["role"], "archive")
        self.assertEqual(result["sortOrder"], 1)

    def test_removeWithNull(self) -> None:
        """
        C{null} removes the property; removing an absent property is a
        no-op (RFC 8620 5.3).
        """
        result = apply_patch(MAILBOX, {"sortOrder": None, "absent": None})
        self.assertNotIn("sortOrder", result)
        self.assertNotIn("absent", result)

    def test_nestedPaths(self) -> None:
        """
        Keys are JSON Pointers with an implicit leading C{"/"}: C{"a/b"}
        sets C{b} inside the existing object C{a}, leaving its siblings.
        """
        result = apply_patch(
            MAILBOX, {"myRights/mayDelete": True, "keywords/$flagged": True, "keywords/$seen": None}
        )
        self.assertEqual(result["myRights"], {"mayReadItems": True, "mayDelete": True})
        self.assertEqual(result["keywords"], {"$flagged": True})

    def test_deeperPath(self) -> None:
        """
        A path may be several levels deep, as long as every parent exists.
        """
        obj = {"a": {"b": {"c": {"d": 1}}}}
        self.assertEqual(apply_patch(obj, {"a/b/c/e": 2}), {"a": {"b": {"c": {"d": 1, "e": 2}}}})

    def test_escapes(self) -> None:
        """
        C{"~1"} stands for C{"/"} and C{"~0"} for C{"~"} (RFC 6901).
        """
        result = apply_patch(MAILBOX, {"a~1b/~0c": 2, "x~0y": 3})
        self.assertEqual(result["a/b"], {"~c": 2})
        self.assertEqual(result["x~y"], 3)

    def test_wholeObjectIsAPatch(self) -> None:
        """
        RFC 8620 5.3: an entire object is also a valid PatchObject, and
        applying it yields that object.  (This holds only for property names
        without C{"/"} or C{"~"}, which a patch must escape.)
        """
        record = {key: value for key, value in MAILBOX.items() if key != "a/b"}
        other = copy.deepcopy(record)
        other["name"] = "Other"
        other["myRights"] = {"mayReadItems": False}
        self.assertEqual(apply_patch(record, other), other)

    def test_replaceArrayWhole(self) -> None:
        """
        An array is replaced in its entirety.
        """
        self.assertEqual(apply_patch(MAILBOX, {"alerts": []})["alerts"], [])

    def test_emptyPatch(self) -> None:
        """
        An empty patch returns an equal, distinct object.
        """
        result = apply_patch(MAILBOX, {})
        self.assertEqual(result, MAILBOX)
        self.assertIsNot(result, MAILBOX)

    def test_originalUnchanged(self) -> None:
        """
        The patched object is new: the original and its nested objects are
        not modified, and later changes to the patch's values do not leak
        into the result.
        """
        original = copy.deepcopy(MAILBOX)
        value = {"deep": [1]}
        result = apply_patch(original, {"myRights/mayDelete": True, "keywords/$seen": None, "new": value})
        self.assertEqual(original, MAILBOX)
        value["deep"].append(2)
        self.assertEqual(result["new"], {"deep": [1]})
        self.assertIs(result["alerts"], original["alerts"])

    def test_siblingsInOnePatch(self) -> None:
        """
        Two paths under the same parent are both applied (neither is a
        prefix of the other), whatever their order.
        """
        obj = {"a": {"x": 1, "y": 2, "z": 3}}
        self.assertEqual(apply_patch(obj, {"a/x": 10, "a/y": None}), {"a": {"x": 10, "z": 3}})
        self.assertEqual(apply_patch(obj, {"a/y": None, "a/x": 10}), {"a": {"x": 10, "z": 3}})

    def test_samePrefixStringIsNotPathPrefix(self) -> None:
        """
        C{"alert"} is not a path prefix of C{"alerts/..."}: only whole
        tokens count.
        """
        obj = {"alert": 1, "alerts": {"x": 1}}
        self.assertEqual(apply_patch(obj, {"alert": 2, "alerts/x": 2}), {"alert": 2, "alerts": {"x": 2}})


class InvalidPatchTests(SynchronousTestCase):
    """
    Patches RFC 8620 5.3 rejects with C{invalidPatch}.
    """

    def assertInvalid(self, patch: object, offending: str | None) -> PatchError:
        """
        Assert that applying C{patch} to L{MAILBOX} raises L{PatchError}
        naming C{offending}, and changes nothing.
        """
        original = copy.deepcopy(MAILBOX)
        error = self.assertRaises(PatchError, apply_patch, original, patch)
        self.assertEqual(error.property, offending)
        self.assertEqual(original, MAILBOX)
        return error

    def test_prefixConflict(self) -> None:
        """
        The RFC's example: C{"alerts/1/offset"} and C{"alerts"} in one patch
        conflict.  So do C{"myRights"} and C{"myRights/mayDelete"}.
        """
        self.assertInvalid({"alerts": [], "alerts/1/offset": 3}, "alerts/1/offset")
        self.assertInvalid({"myRights/mayDelete": True, "myRights": None}, "myRights/mayDelete")

    def test_prefixConflictDeep(self) -> None:
        """
        A conflict is found among other, unrelated keys.
        """
        patch = {"a": 1, "keywords/$x": True, "z": 2, "keywords": {}, "keywordsX": 1}
        self.assertInvalid(patch, "keywords/$x")

    def test_insideArray(self) -> None:
        """
        A pointer may not reach inside an array.
        """
        error = self.assertInvalid({"alerts/1/offset": 3}, "alerts/1/offset")
        self.assertIn("array", error.reason)
        self.assertInvalid({"alerts/0": {}}, "alerts/0")

    def test_parentMissing(self) -> None:
        """
        Every part before the last must already exist (as an object).
        """
        self.assertInvalid({"nothere/x": 1}, "nothere/x")
        self.assertInvalid({"myRights/nothere/x": 1}, "myRights/nothere/x")

    def test_parentNotObject(self) -> None:
        """
        A parent that is a scalar or null cannot hold a property.
        """
        self.assertInvalid({"name/x": 1}, "name/x")
        obj = {"a": None}
        self.assertRaises(PatchError, apply_patch, obj, {"a/b": 1})

    def test_badEscape(self) -> None:
        """
        A C{"~"} not followed by C{0} or C{1} is not a valid pointer.
        """
        self.assertInvalid({"a~2b": 1}, "a~2b")
        self.assertInvalid({"name~": 1}, "name~")

    def test_notAnObject(self) -> None:
        """
        A PatchObject must be an object.
        """
        self.assertInvalid(["name"], None)
        self.assertInvalid(None, None)

    def test_checkedBeforeApplying(self) -> None:
        """
        A patch with one bad key applies none of its keys.
        """
        original = copy.deepcopy(MAILBOX)
        self.assertRaises(PatchError, apply_patch, original, {"name": "X", "nothere/y": 1})
        self.assertEqual(original, MAILBOX)

    def test_message(self) -> None:
        """
        The error's text names the key and the reason.
        """
        error = self.assertInvalid({"nothere/x": 1}, "nothere/x")
        self.assertIn("nothere/x", str(error))
        self.assertIn("not an object", str(error))
