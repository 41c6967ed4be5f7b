# -*- test-case-name: tests.admin.test_client -*-
"""
Tests for L{stalwart.admin.client}: request construction and answer decoding,
with a fake transport.
"""

import json
import ssl

from twisted.trial.unittest import SynchronousTestCase

from stalwart.admin.client import (
    REDIRECTS_MAX,
    AdminClient,
    AdminError,
    Request,
    Response,
    ssl_context,
)


class FakeTransport:
    """
    Records requests and answers each with the next queued response.
    """

    def __init__(self, *responses: Response) -> None:
        self.requests: list[Request] = []
        self.responses = list(responses)

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        return self.responses.pop(0)


def ok(status: int, body: object = None) -> Response:
    """
    A JSON response.
    """
    data = b"" if body is None else json.dumps(body).encode()
    return Response(status, data, "application/json")


def problem(status: int, detail: str) -> Response:
    """
    An RFC 9457 problem response.
    """
    body = {"type": "about:blank", "status": status, "detail": detail}
    return Response(status, json.dumps(body).encode(), "application/problem+json")


ACCOUNT = {"id": "a1", "name": "joe", "emails": ["joe@example.com"], "quota": None}


class RequestTests(SynchronousTestCase):
    """
    Each call sends the documented method, path, headers and body.
    """

    def call(self, response: Response, method: str, *args: object) -> tuple[Request, object]:
        """
        Call C{method} on a client whose transport answers C{response}.
        """
        transport = FakeTransport(response)
        client = AdminClient("http://127.0.0.1:8080/", "s3cret", transport)
        result = getattr(client, method)(*args)
        [request] = transport.requests
        return request, result

    def test_list(self) -> None:
        """
        C{GET /admin/accounts} with the secret as a bearer token.
        """
        request, result = self.call(ok(200, {"accounts": [ACCOUNT]}), "list_accounts")
        self.assertEqual((request.method, request.url),
                         ("GET", "http://127.0.0.1:8080/admin/accounts"))
        headers = dict(request.headers)
        self.assertEqual(headers["Authorization"], "Bearer s3cret")
        self.assertNotIn("Content-Type", headers)
        self.assertIsNone(request.body)
        self.assertEqual(result, [ACCOUNT])

    def test_create(self) -> None:
        """
        C{POST /admin/accounts} with name, password, emails and quota.
        """
        request, result = self.call(
            ok(201, {"account": ACCOUNT}), "create_account", "joe", "pw", ["joe@example.com"], 5
        )
        self.assertEqual((request.method, request.url),
                         ("POST", "http://127.0.0.1:8080/admin/accounts"))
        self.assertEqual(dict(request.headers)["Content-Type"], "application/json")
        self.assertEqual(
            json.loads(request.body),
            {"name": "joe", "password": "pw", "emails": ["joe@example.com"], "quota": 5},
        )
        self.assertEqual(result, ACCOUNT)

    def test_paths_are_encoded(self) -> None:
        """
        Names and addresses are percent-encoded path segments.
        """
        request, _ = self.call(ok(204), "delete_account", "a b/c")
        self.assertEqual(request.url, "http://127.0.0.1:8080/admin/accounts/a%20b%2Fc")
        request, _ = self.call(
            ok(200, {"account": ACCOUNT}), "remove_email", "joe", "j+x@example.com"
        )
        self.assertEqual(
            (request.method, request.url),
            ("DELETE", "http://127.0.0.1:8080/admin/accounts/joe/emails/j%2Bx%40example.com"),
        )

    def test_password_email_token(self) -> None:
        """
        Password, email and token calls use their documented routes.
        """
        request, _ = self.call(ok(204), "set_password", "joe", "new")
        self.assertEqual((request.method, request.url, json.loads(request.body)),
                         ("PUT", "http://127.0.0.1:8080/admin/accounts/joe/password",
                          {"password": "new"}))
        request, _ = self.call(ok(200, {"account": ACCOUNT}), "add_email", "joe", "j@x.org")
        self.assertEqual((request.method, request.url, json.loads(request.body)),
                         ("POST", "http://127.0.0.1:8080/admin/accounts/joe/emails",
                          {"email": "j@x.org"}))
        request, token = self.call(ok(201, {"token": "tok"}), "create_token", "joe")
        self.assertEqual((request.method, request.url, token),
                         ("POST", "http://127.0.0.1:8080/admin/accounts/joe/tokens", "tok"))

    def test_bad_url(self) -> None:
        """
        A server URL that is not http(s) is refused before any request.
        """
        error = self.assertRaises(AdminError, AdminClient, "ftp://x", "s", FakeTransport())
        self.assertEqual(str(error), "--url: 'ftp://x' is not an http:// or https:// URL")


class RedirectTests(SynchronousTestCase):
    """
    Redirects (a follower sends writes to the leader) keep method and body.
    """

    def test_follow(self) -> None:
        """
        A 302 is followed with the same method, body and secret.
        """
        transport = FakeTransport(
            Response(302, location="http://10.0.0.2:8080/admin/accounts"),
            ok(201, {"account": ACCOUNT}),
        )
        AdminClient("http://10.0.0.1:8080", "s", transport).create_account("joe", "pw", [], None)
        first, second = transport.requests
        self.assertEqual(second.url, "http://10.0.0.2:8080/admin/accounts")
        self.assertEqual((second.method, second.body, second.headers),
                         (first.method, first.body, first.headers))

    def test_too_many(self) -> None:
        """
        Redirect loops end with an error.
        """
        transport = FakeTransport(
            *[Response(307, location="/admin/accounts")] * (REDIRECTS_MAX + 1)
        )
        client = AdminClient("http://h", "s", transport)
        error = self.assertRaises(AdminError, client.list_accounts)
        self.assertIn("redirects", str(error))

    def test_not_http(self) -> None:
        """
        A redirect to another scheme is refused.
        """
        transport = FakeTransport(Response(302, location="file:///etc/passwd"))
        client = AdminClient("http://h", "s", transport)
        self.assertRaises(AdminError, client.list_accounts)


class ErrorTests(SynchronousTestCase):
    """
    Error answers become one-line L{AdminError}s.
    """

    def error(self, response: Response) -> str:
        """
        The message of the error listing accounts raises for C{response}.
        """
        client = AdminClient("http://h", "s", FakeTransport(response))
        message = str(self.assertRaises(AdminError, client.list_accounts))
        self.assertNotIn("\n", message)
        return message

    def test_problem_detail(self) -> None:
        """
        A problem document gives its detail and the status.
        """
        self.assertEqual(self.error(problem(409, "account 'joe' exists")),
                         "account 'joe' exists (HTTP 409)")

    def test_wrong_secret(self) -> None:
        """
        401 says the secret was refused.
        """
        self.assertIn("refused the admin secret", self.error(problem(401, "x")))

    def test_disabled(self) -> None:
        """
        403 says the admin API is disabled.
        """
        self.assertIn("admin API is disabled", self.error(problem(403, "x")))

    def test_not_a_problem(self) -> None:
        """
        A non-JSON error body is shown on one line.
        """
        self.assertEqual(self.error(Response(502, b"Bad\ngateway", "text/plain")),
                         "Bad gateway (HTTP 502)")

    def test_unexpected_answers(self) -> None:
        """
        A success that is not JSON, or lacks the expected field, is an error.
        """
        self.assertIn("not JSON", self.error(Response(200, b"<html>")))
        self.assertIn("no 'accounts'", self.error(ok(200, {"other": 1})))


class SSLContextTests(SynchronousTestCase):
    """
    L{ssl_context} for self-signed servers.
    """

    def test_default_verifies(self) -> None:
        """
        By default certificates and host names are checked.
        """
        context = ssl_context(None, False)
        self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
        self.assertTrue(context.check_hostname)

    def test_insecure(self) -> None:
        """
        C{--insecure} checks nothing.
        """
        context = ssl_context(None, True)
        self.assertEqual(context.verify_mode, ssl.CERT_NONE)
        self.assertFalse(context.check_hostname)

    def test_bad_cacert(self) -> None:
        """
        An unreadable CA file, or both options, is an error.
        """
        missing = self.mktemp()
        error = self.assertRaises(AdminError, ssl_context, missing, False)
        self.assertTrue(str(error).startswith(f"--cacert: cannot load {missing!r}"))
        self.assertRaises(AdminError, ssl_context, missing, True)
