# -*- test-case-name: tests.admin.test_api -*-
"""
Tests for L{stalwart.admin.api}: the admin HTTP API under /admin, on a
whole node run in-process (L{tests.jmap.harness}).  Every change goes
through the Raft log like any other write.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.jmap.harness import LiveNode, basic


class AuthorisationTests(SynchronousTestCase):
    def test_disabled_without_secret(self):
        """Without an admin-secret configured the API answers 403 to everyone."""
        live = LiveNode(self, admin_secret=None)
        reply = live.admin("GET", "/accounts", secret="anything")
        self.assertEqual(reply.status, 403)
        self.assertTrue(reply.header("content-type").startswith("application/problem+json"))

    def test_wrong_secret(self):
        """A wrong or missing secret is 401 with a Bearer challenge (RFC 6750 3)."""
        live = LiveNode(self)
        for secret in ("wrong", None):
            reply = live.admin("GET", "/accounts", secret=secret)
            self.assertEqual(reply.status, 401)
            self.assertIn("Bearer", reply.header("www-authenticate"))


class AccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = LiveNode(self)

    def accounts(self) -> list:
        reply = self.live.admin("GET", "/accounts")
        self.assertEqual(reply.status, 200)
        return reply.json()["accounts"]

    def test_create_and_list(self):
        """
        POST /accounts creates an account (201, its JSON with id, name,
        emails, quota, usedBytes); addresses are lower-cased; a name that is an address is also an
        address; GET /accounts lists them by name.
        """
        reply = self.live.admin("POST", "/accounts", {"name": "bob@example.com", "password": "pw", "quota": 1000,
                                                      "emails": ["Bob.Smith@Example.COM"]})
        self.assertEqual(reply.status, 201)
        bob = reply.json()["account"]
        self.assertEqual(bob["name"], "bob@example.com")
        self.assertEqual(sorted(bob["emails"]), ["bob.smith@example.com", "bob@example.com"])
        self.assertEqual((bob["quota"], bob["usedBytes"]), (1000, 0))
        self.live.create_account("alice")
        self.assertEqual([a["name"] for a in self.accounts()], ["alice", "bob@example.com"])
        self.assertEqual(self.accounts()[1], bob)

    def test_duplicate(self):
        """Creating an account whose name exists is 409, and nothing changes."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts", {"name": "alice", "password": "other"})
        self.assertEqual(reply.status, 409)
        self.assertEqual(len(self.accounts()), 1)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "other")).status, 401)

    def test_address_taken(self):
        """
        An address that belongs to another account is 409, on create and
        on add-email.
        """
        self.live.create_account("alice", emails=["a@example.com"])
        self.live.create_account("bob")
        reply = self.live.admin("POST", "/accounts", {"name": "carol", "password": "pw", "emails": ["A@example.com"]})
        self.assertEqual(reply.status, 409)
        reply = self.live.admin("POST", "/accounts/bob/emails", {"email": "a@example.com"})
        self.assertEqual(reply.status, 409)
        self.assertEqual([a["name"] for a in self.accounts()], ["alice", "bob"])

    def test_add_and_remove_email(self):
        """Addresses are added and removed; removing one the account lacks is 404."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts/alice/emails", {"email": "alice@example.com"})
        self.assertEqual((reply.status, reply.json()["account"]["emails"]), (200, ["alice@example.com"]))
        reply = self.live.admin("DELETE", "/accounts/alice/emails/alice@example.com")
        self.assertEqual((reply.status, reply.json()["account"]["emails"]), (200, []))
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice/emails/alice@example.com").status, 404)
        self.assertEqual(self.live.admin("POST", "/accounts/alice/emails", {"email": "not an address"}).status, 400)

    def test_delete(self):
        """DELETE removes the account (204); a second DELETE is 404, and it cannot log in."""
        self.live.create_account("alice", password="pw")
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice").status, 204)
        self.assertEqual(self.accounts(), [])
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice").status, 404)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "pw")).status, 401)

    def test_password(self):
        """PUT .../password sets a new password (204); the old one stops working."""
        self.live.create_account("alice", password="old")
        reply = self.live.admin("PUT", "/accounts/alice/password", {"password": "new"})
        self.assertEqual(reply.status, 204)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "old")).status, 401)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "new")).status, 200)
        self.assertEqual(self.live.admin("PUT", "/accounts/nobody/password", {"password": "x"}).status, 404)
        self.assertEqual(self.live.admin("PUT", "/accounts/alice/password", {"password": ""}).status, 400)

    def test_token(self):
        """POST .../tokens issues a bearer token (201) for the account; unknown account is 404."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts/alice/tokens")
        self.assertEqual(reply.status, 201)
        token = reply.json()["token"]
        session = self.live.request("GET", "/jmap/session", authorization=b"Bearer " + token.encode())
        self.assertEqual((session.status, session.json()["username"]), (200, "alice"))
        self.assertEqual(self.live.admin("POST", "/accounts/nobody/tokens").status, 404)

    def test_bad_json(self):
        """A body that is not a JSON object is 400."""
        for body in (b"{nope", b"[1, 2]"):
            reply = self.live.admin("POST", "/accounts", body)
            self.assertEqual(reply.status, 400, body)
            self.assertTrue(reply.header("content-type").startswith("application/problem+json"))
        self.assertEqual(self.accounts(), [])

    def test_bad_values(self):
        """A missing password or an unusable name is 400."""
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "alice"}).status, 400)
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "has space", "password": "pw"}).status, 400)
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "q", "password": "pw", "quota": -1}).status, 400)

    def test_unknown_operation(self):
        """An operation the API does not have is 404."""
        self.assertEqual(self.live.admin("PATCH", "/accounts").status, 404)
        self.assertEqual(self.live.admin("GET", "/nothing").status, 404)
