# -*- test-case-name: tests.jmap.test_errors -*-
"""
Tests for L{stalwart.jmap.errors}: the error objects of RFC 8620 3.6 and 5.3.
"""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.errors import MethodError, RequestError, SetError


class RequestErrorTests(SynchronousTestCase):
    """
    Request-level errors (RFC 8620 3.6.1) as RFC 7807 problem details.
    """

    def test_helpers(self) -> None:
        """
        Each helper builds its RFC 8620 3.6.1 problem type URI with status 400.
        """
        for helper, name in [
            (RequestError.notJSON, "notJSON"),
            (RequestError.notRequest, "notRequest"),
            (RequestError.unknownCapability, "unknownCapability"),
        ]:
            error = helper("why")
            self.assertEqual(
                error.to_json(),
                {"type": "urn:ietf:params:jmap:error:" + name, "status": 400, "detail": "why"},
            )

    def test_limit(self) -> None:
        """
        A limit error carries the name of the limit (RFC 8620 3.6.1 second
        example); the instance attribute C{limit} is that name.
        """
        error = RequestError.limit(
            "maxSizeRequest", "The request is larger than the server is willing to process."
        )
        self.assertEqual(
            error.to_json(),
            {
                "type": "urn:ietf:params:jmap:error:limit",
                "limit": "maxSizeRequest",
                "status": 400,
                "detail": "The request is larger than the server is willing to process.",
            },
        )
        self.assertEqual(error.limit, "maxSizeRequest")
        self.assertEqual(error.status, 400)

    def test_limitNeedsName(self) -> None:
        """
        RFC 8620 3.6.1: a limit problem MUST name its limit, so building one
        without is a bug.
        """
        self.assertRaises(
            ValueError, RequestError, "urn:ietf:params:jmap:error:limit", 400, "too big"
        )

    def test_isException(self) -> None:
        """
        A RequestError can be raised and its message names type and detail.
        """
        error = RequestError.notJSON("bad bytes")
        self.assertIsInstance(error, Exception)
        self.assertIn("notJSON", str(error))
        self.assertIn("bad bytes", str(error))


class MethodErrorTests(SynchronousTestCase):
    """
    Method-level errors (RFC 8620 3.6.2).
    """

    def test_typeOnly(self) -> None:
        """
        An error without description is just C{{"type": ...}}, like the
        C{unknownMethod} example of RFC 8620 3.6.2.
        """
        self.assertEqual(MethodError("unknownMethod").to_json(), {"type": "unknownMethod"})

    def test_descriptionAndExtra(self) -> None:
        """
        The description and any extra properties are included.
        """
        error = MethodError("invalidArguments", "ids must be an array", arguments=["ids"])
        self.assertEqual(
            error.to_json(),
            {"type": "invalidArguments", "description": "ids must be an array", "arguments": ["ids"]},
        )
        self.assertEqual(str(error), "invalidArguments: ids must be an array")

    def test_badType(self) -> None:
        """
        The type must be a non-empty string.
        """
        self.assertRaises(ValueError, MethodError, "")
        self.assertRaises(ValueError, MethodError, None)


class SetErrorTests(SynchronousTestCase):
    """
    SetError objects (RFC 8620 5.3).
    """

    def test_toJSON(self) -> None:
        """
        A SetError carries its type, its description if any and its extra
        properties, such as C{properties} for C{invalidProperties}.
        """
        self.assertEqual(SetError("notFound").to_json(), {"type": "notFound"})
        self.assertEqual(
            SetError("invalidProperties", "bad", properties=["name"]).to_json(),
            {"type": "invalidProperties", "description": "bad", "properties": ["name"]},
        )
        self.assertEqual(
            SetError("alreadyExists", existingId="M1").to_json(),
            {"type": "alreadyExists", "existingId": "M1"},
        )

    def test_frozenAndEqual(self) -> None:
        """
        SetErrors compare by value and cannot be changed.
        """
        error = SetError("forbidden", "no")
        self.assertEqual(error, SetError("forbidden", "no"))
        self.assertNotEqual(error, SetError("forbidden"))
        self.assertRaises(AttributeError, setattr, error, "type", "x")

    def test_badType(self) -> None:
        """
        The type must be a non-empty string.
        """
        self.assertRaises(ValueError, SetError, "")
        self.assertRaises(ValueError, SetError, None)
