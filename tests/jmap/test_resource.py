# -*- test-case-name: tests.jmap.test_resource -*-
"""
Tests for L{stalwart.jmap.resource}: the session and API endpoints over
HTTP (RFC 8620 sections 2, 3), authentication (RFC 7617, RFC 6750) and
its rate limit, on a whole node run in-process (L{tests.jmap.harness}).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE
from tests.jmap.harness import JMAP_URL, LiveNode, basic
from tests.jmap.notes import NOTES

PASSWORD = "correct horse"
PREFIX = "urn:ietf:params:jmap:error:"


class _HttpTestCase(SynchronousTestCase):
    config: dict = {}

    def setUp(self) -> None:
        self.live = LiveNode(self, **self.config)
        self.alice = self.live.create_account("alice@example.com", PASSWORD)
        self.auth = basic("alice@example.com", PASSWORD)

    def post(self, body: bytes, authorization: bytes = None):
        return self.live.request(
            "POST", "/jmap/api", body, {"Content-Type": "application/json"}, authorization or self.auth
        )

    def assertProblem(self, reply, status: int, type_: str) -> dict:
        self.assertEqual(reply.status, status, reply.body)
        self.assertTrue(reply.header("content-type").startswith("application/problem+json"), reply.header("content-type"))
        problem = reply.json()
        self.assertEqual((problem["type"], problem["status"]), (type_, status))
        return problem


class SessionTests(_HttpTestCase):
    def test_both_urls(self):
        """
        The Session object is served at /.well-known/jmap and at
        /jmap/session, with the URLs built from jmap-url, the user's
        account and the capabilities (RFC 8620 2, 2.2).
        """
        replies = [self.live.request("GET", path, authorization=self.auth)
                   for path in ("/.well-known/jmap", "/jmap/session")]
        self.assertEqual([r.status for r in replies], [200, 200])
        self.assertEqual(replies[0].json(), replies[1].json())
        session = replies[0].json()
        self.assertEqual(session["apiUrl"], JMAP_URL + "/jmap/api")
        self.assertEqual(session["uploadUrl"], JMAP_URL + "/jmap/upload/{accountId}/")
        self.assertEqual(session["downloadUrl"], JMAP_URL + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}")
        self.assertTrue(session["eventSourceUrl"].startswith(JMAP_URL + "/jmap/eventsource?"))
        self.assertEqual(session["username"], "alice@example.com")
        self.assertEqual(list(session["accounts"]), [self.alice["id"]])
        self.assertEqual(session["accounts"][self.alice["id"]]["name"], "alice@example.com")
        self.assertTrue(session["accounts"][self.alice["id"]]["isPersonal"])
        self.assertEqual(set(session["capabilities"]), {CORE, NOTES, "urn:ietf:params:jmap:websocket"})
        self.assertEqual(session["capabilities"][CORE]["maxCallsInRequest"], self.live.config.max_calls_in_request)
        self.assertEqual(session["primaryAccounts"].get(NOTES), self.alice["id"])
        self.assertIsInstance(session["state"], str)

    def test_unknown_path(self):
        """A path the server does not serve is 404."""
        self.assertEqual(self.live.request("GET", "/nothing/here", authorization=self.auth).status, 404)


class AuthenticationTests(_HttpTestCase):
    def test_no_credentials(self):
        """
        Without credentials the answer is 401 with a WWW-Authenticate
        challenge (RFC 8620 2: the session needs authentication; RFC 7235 3.1).
        """
        for method, path in (("GET", "/jmap/session"), ("POST", "/jmap/api")):
            reply = self.live.request(method, path, b"{}" if method == "POST" else b"")
            self.assertEqual(reply.status, 401)
            self.assertIn("Basic", reply.header("www-authenticate"))

    def test_wrong_credentials(self):
        """A wrong password, an unknown user or a malformed header: 401 (RFC 7235 3.1)."""
        for authorization in (basic("alice@example.com", "wrong"), basic("nobody", PASSWORD), b"Basic !!!", b"Bearer nope"):
            reply = self.live.request("GET", "/jmap/session", authorization=authorization)
            self.assertEqual(reply.status, 401, authorization)
            self.assertIsNotNone(reply.header("www-authenticate"))

    def test_login_by_name_or_address(self):
        """The account name and each of its addresses log in (RFC 7617)."""
        self.live.admin("POST", "/accounts/alice@example.com/emails", {"email": "al@example.org"})
        for user in ("alice@example.com", "al@example.org"):
            self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic(user, PASSWORD)).status, 200)

    def test_too_many_failures(self):
        """
        After repeated failures from one address, even the right password
        gets 429 with Retry-After (RFC 6585 4) until the window ends; then
        it works again.
        """
        for _ in range(10):
            self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice@example.com", "guess")).status, 401)
        reply = self.live.request("GET", "/jmap/session", authorization=self.auth)
        self.assertEqual(reply.status, 429)
        retry_after = int(reply.header("retry-after"))
        self.assertTrue(0 < retry_after <= 60, retry_after)
        self.live.advance(retry_after - 1)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=self.auth).status, 429)
        self.live.advance(1)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=self.auth).status, 200)

    def test_bearer_token(self):
        """
        A token issued by the admin API authenticates as Bearer (RFC 6750
        2.1), and stops working once the password is changed.
        """
        token = self.live.admin("POST", "/accounts/alice@example.com/tokens").json()["token"]
        bearer = b"Bearer " + token.encode()
        reply = self.live.request("GET", "/jmap/session", authorization=bearer)
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.json()["username"], "alice@example.com")
        self.assertEqual(self.live.admin("PUT", "/accounts/alice@example.com/password", {"password": "new one"}).status, 204)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=bearer).status, 401)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=self.auth).status, 401)
        self.assertEqual(
            self.live.request("GET", "/jmap/session", authorization=basic("alice@example.com", "new one")).status, 200
        )


class ApiTests(_HttpTestCase):
    config = {"max_calls_in_request": 3, "max_size_request": 2000}

    def test_echo_and_session_state(self):
        """
        A request runs and its response carries sessionState, the state of
        the current Session object (RFC 8620 3.4, 4).
        """
        reply = self.live.api([["Core/echo", {"hello": True}, "c1"]], self.auth)
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.header("content-type").startswith("application/json"))
        response = reply.json()
        self.assertEqual(response["methodResponses"], [["Core/echo", {"hello": True}, "c1"]])
        session = self.live.request("GET", "/jmap/session", authorization=self.auth).json()
        self.assertEqual(response["sessionState"], session["state"])

    def test_not_json(self):
        """A body that is not JSON: 400 notJSON as problem+json (RFC 8620 3.6.1)."""
        self.assertProblem(self.post(b"{not json"), 400, PREFIX + "notJSON")

    def test_not_request(self):
        """JSON that is not a Request object: 400 notRequest (RFC 8620 3.6.1)."""
        self.assertProblem(self.post(b'{"using": []}'), 400, PREFIX + "notRequest")
        self.assertProblem(self.post(b"[]"), 400, PREFIX + "notRequest")

    def test_unknown_capability(self):
        """A capability in using the server lacks: 400 unknownCapability (RFC 8620 3.6.1)."""
        body = json.dumps({"using": [CORE, "urn:example:nope"], "methodCalls": []}).encode()
        self.assertProblem(self.post(body), 400, PREFIX + "unknownCapability")

    def test_max_calls(self):
        """More calls than maxCallsInRequest: 400 limit naming it (RFC 8620 3.6.1)."""
        reply = self.live.api([["Core/echo", {}, str(i)] for i in range(4)], self.auth)
        self.assertEqual(self.assertProblem(reply, 400, PREFIX + "limit")["limit"], "maxCallsInRequest")

    def test_max_size(self):
        """A body over maxSizeRequest: 400 limit naming it (RFC 8620 3.6.1)."""
        reply = self.live.api([["Core/echo", {"pad": "x" * 2000}, "0"]], self.auth)
        self.assertEqual(self.assertProblem(reply, 400, PREFIX + "limit")["limit"], "maxSizeRequest")

    def test_unknown_method(self):
        """
        An unknown method, or one whose capability is not in using, is an
        unknownMethod error response; the other calls still run (RFC 8620 3.6.2).
        """
        reply = self.live.api([["Nope/get", {}, "a"], ["Note/get", {"accountId": self.alice["id"]}, "b"],
                               ["Core/echo", {}, "c"]], self.auth, using=[CORE])
        self.assertEqual(reply.status, 200)
        responses = reply.json()["methodResponses"]
        self.assertEqual([(r[0], r[1].get("type"), r[2]) for r in responses],
                         [("error", "unknownMethod", "a"), ("error", "unknownMethod", "b"), ("Core/echo", None, "c")])

    def test_note_methods_over_http(self):
        """
        A write and a read of the standard methods go end to end: the
        created ids come back in createdIds (RFC 8620 3.3, 5.3).
        """
        account = self.alice["id"]
        reply = self.live.api([
            ["Note/set", {"accountId": account, "create": {"n": {"title": "hi"}}}, "0"],
            ["Note/get", {"accountId": account, "ids": ["#n"], "properties": ["title"]}, "1"],
        ], self.auth, createdIds={})
        response = reply.json()
        new_id = response["createdIds"]["n"]
        self.assertEqual(response["methodResponses"][1][1]["list"], [{"id": new_id, "title": "hi"}])
