"""Tests for L{stalwart.store.accounts} through the state machine's transaction."""

import os

from twisted.trial.unittest import SynchronousTestCase

from stalwart.store import accounts
from stalwart.store.refusal import Refused
from stalwart.store.schema import connect, create_schema

NOW = "2026-11-26T00:00:00Z"


class AccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.conn = connect(os.path.join(directory, "state.db"))
        create_schema(self.conn)
        self.addCleanup(self.conn.close)

    def create(self, name, **extra):
        return accounts.create_account(self.conn, {"name": name, "password": "hash", "now": NOW, **extra})

    def test_create_assigns_counter_ids(self) -> None:
        """Account ids come from a counter in the state (deterministic on every node)."""
        self.assertEqual([self.create(n)["id"] for n in ("alice@example.org", "bob")], ["A1", "A2"])

    def test_name_is_first_address(self) -> None:
        """An account named like an address gets that address, lower-cased; addresses list sorted."""
        account = self.create("Alice@Example.ORG", emails=["a2@example.org"])
        self.assertEqual(account["emails"], ["a2@example.org", "alice@example.org"])

    def test_refusals(self) -> None:
        """Duplicates, taken addresses, bad names, bad addresses and bad quotas are refused with their own codes."""
        self.create("alice@example.org")
        cases = [
            ({"name": "alice@example.org"}, "exists"),
            ({"name": "bob", "emails": ["ALICE@example.org"]}, "addressTaken"),
            ({"name": "two words"}, "invalidName"),
            ({"name": "bob", "emails": ["not-an-address"]}, "invalidAddress"),
            ({"name": "bob", "quota": -1}, "invalidQuota"),
        ]
        for args, code in cases:
            with self.assertRaises(Refused) as caught:
                self.create(**args)
            self.assertEqual(caught.exception.code, code, args)

    def test_login_by_address_and_delete(self) -> None:
        """A login works by name or any address; deleting removes addresses and tokens too."""
        account = self.create("alice", emails=["alice@example.org"])
        accounts.create_token(self.conn, {"name": "alice", "hash": "h1", "now": NOW})
        self.assertEqual(accounts.find_login(self.conn, "ALICE@EXAMPLE.ORG".lower())[0], account["id"])
        self.assertEqual(accounts.find_by_token(self.conn, "h1"), (account["id"], "alice"))
        accounts.delete_account(self.conn, {"name": "alice"})
        self.assertIsNone(accounts.find_login(self.conn, "alice@example.org"))
        self.assertIsNone(accounts.find_by_token(self.conn, "h1"))
        with self.assertRaises(Refused):
            accounts.delete_account(self.conn, {"name": "alice"})

    def test_password_change_revokes_tokens(self) -> None:
        """Setting a new password ends the sessions (tokens) issued before."""
        self.create("alice")
        accounts.create_token(self.conn, {"name": "alice", "hash": "h1", "now": NOW})
        accounts.set_password(self.conn, {"name": "alice", "password": "new"})
        self.assertIsNone(accounts.find_by_token(self.conn, "h1"))
        self.assertEqual(accounts.find_login(self.conn, "alice")[2], "new")

    def test_addresses(self) -> None:
        """Addresses can be added and removed; one owned by another account cannot be taken."""
        self.create("alice")
        self.create("bob", emails=["bob@example.org"])
        self.assertEqual(accounts.add_address(self.conn, {"name": "alice", "email": "al@example.org"})["emails"], ["al@example.org"])
        with self.assertRaises(Refused):
            accounts.add_address(self.conn, {"name": "alice", "email": "bob@example.org"})
        self.assertEqual(accounts.remove_address(self.conn, {"name": "alice", "email": "al@example.org"})["emails"], [])
        with self.assertRaises(Refused):
            accounts.remove_address(self.conn, {"name": "alice", "email": "al@example.org"})
