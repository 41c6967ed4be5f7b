# -*- test-case-name: tests.auth.test_header -*-
"""
Tests for L{stalwart.auth.header.parse_authorization}.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.header import BadAuthorization, Basic, Bearer, parse_authorization


def basic(credentials: bytes) -> bytes:
    """
    A Basic header value for raw C{credentials}.
    """
    return b"Basic " + base64.b64encode(credentials)


class ParseAuthorizationTests(SynchronousTestCase):
    """
    Basic (RFC 7617) and Bearer (RFC 6750 section 2.1) credentials.
    """

    def test_absent(self) -> None:
        """
        No header means no credentials.
        """
        self.assertIsNone(parse_authorization(None))

    def test_basic(self) -> None:
        """
        Basic credentials split at the first colon; the password may hold
        colons; the scheme is case-insensitive; text is UTF-8 (RFC 7617 2.1).
        """
        self.assertEqual(parse_authorization(basic(b"joe:se:cret")), Basic("joe", "se:cret"))
        self.assertEqual(
            parse_authorization(b"bAsIc  " + base64.b64encode(b"j:")), Basic("j", "")
        )
        self.assertEqual(
            parse_authorization(basic("jö@example.com:pä".encode())),
            Basic("jö@example.com", "pä"),
        )

    def test_bearer(self) -> None:
        """
        A Bearer token is token68 (RFC 6750 2.1).
        """
        self.assertEqual(parse_authorization(b"Bearer abc-._~+/9=="), Bearer("abc-._~+/9=="))
        self.assertEqual(parse_authorization(b"bearer t"), Bearer("t"))

    def test_secrets_not_in_repr(self) -> None:
        """
        The password and token do not appear in reprs (and so in logs).
        """
        self.assertNotIn("cret", repr(Basic("joe", "secret")))
        self.assertNotIn("tok", repr(Bearer("token")))

    def test_malformed(self) -> None:
        """
        Malformed headers raise L{BadAuthorization} with a message.
        """
        cases = [
            (b"", "empty Authorization header"),
            (b"   ", "empty Authorization header"),
            (b"Basic", "Authorization header has no credentials"),
            (b"Basic !!!", "credentials are not base64 or token68"),
            (b"Basic a b", "credentials are not base64 or token68"),
            (b"Basic abc", "Basic credentials are not valid base64"),
            (basic(b"nocolon"), "Basic credentials have no ':'"),
            (basic(b"\xff\xfe:pw"), "Basic credentials are not UTF-8"),
            (basic(b":pw"), "Basic user name is empty"),
            (basic(b"a\x00b:pw"), "Basic user name is empty or has control characters"),
            (b"Bearer a\xffb", "credentials are not base64 or token68"),
            (b"Digest abc", "unsupported authorization scheme"),
            (b"Bearer " + b"a" * 9000, "Authorization header too long"),
        ]
        for value, message in cases:
            error = self.assertRaises(BadAuthorization, parse_authorization, value)
            self.assertTrue(str(error).startswith(message), (value[:40], str(error)))
