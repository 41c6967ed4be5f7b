"""
Tests for L{stalwart.mail.recipients}: exact addresses, subaddressing
(RFC 5233) and per-domain catch-alls stored as C{*@domain}.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.recipients import Recipient, candidates, resolve_recipient, split_address
from stalwart.store import accounts
from stalwart.store.schema import connect, create_schema

NOW = "2026-11-26T00:00:00Z"


class SplitTests(SynchronousTestCase):
    def test_split(self) -> None:
        """An address splits into user, detail (after the first '+') and domain."""
        self.assertEqual(split_address("bob@example.com"), ("bob", "", "example.com"))
        self.assertEqual(split_address("bob+lists+x@example.com"), ("bob", "lists+x", "example.com"))
        self.assertEqual(split_address("+tag@example.com"), ("+tag", "", "example.com"))
        for bad in ("bob", "@example.com", "bob@", "b ob@example.com", "x" * 400 + "@e.com"):
            self.assertIsNone(split_address(bad), bad)

    def test_candidates(self) -> None:
        """Candidates go from the most specific to the catch-all, lower case, without repeats."""
        self.assertEqual(
            candidates("Bob+Tag@Example.com"),
            ("bob+tag@example.com", "bob@example.com", "*@example.com"),
        )
        self.assertEqual(candidates("bob@example.com"), ("bob@example.com", "*@example.com"))
        self.assertEqual(candidates("bob+@example.com"), ("bob+@example.com", "bob@example.com", "*@example.com"))
        self.assertEqual(candidates("not an address"), ())


class ResolveTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.conn = connect(os.path.join(directory, "state.db"))
        create_schema(self.conn)
        self.addCleanup(self.conn.close)
        self.alice = accounts.create_account(
            self.conn, {"name": "alice", "password": "h", "now": NOW, "emails": ["alice@example.com"]})["id"]
        self.bob = accounts.create_account(
            self.conn, {"name": "bob", "password": "h", "now": NOW,
                        "emails": ["bob@example.com", "bob+special@example.com"]})["id"]
        self.postmaster = accounts.create_account(
            self.conn, {"name": "pm", "password": "h", "now": NOW, "emails": ["pm@example.org"]})["id"]

    def resolve(self, address):
        return resolve_recipient(self.conn, address)

    def test_exact(self) -> None:
        """An exact address resolves to its account, case-insensitively."""
        self.assertEqual(
            self.resolve("ALICE@example.com"),
            Recipient(address="alice@example.com", account_id=self.alice, matched="alice@example.com"),
        )

    def test_subaddress(self) -> None:
        """user+tag@domain resolves as user@domain; a stored subaddress wins over its user."""
        self.assertEqual(self.resolve("alice+news@example.com").matched, "alice@example.com")
        self.assertEqual(self.resolve("alice+news@example.com").account_id, self.alice)
        self.assertEqual(self.resolve("bob+special@example.com").matched, "bob+special@example.com")

    def test_unknown(self) -> None:
        """An address nobody has, in a domain without catch-all, is unknown."""
        self.assertIsNone(self.resolve("carol@example.com"))
        self.assertIsNone(self.resolve("not-an-address"))

    def test_catch_all(self) -> None:
        """
        A catch-all is the address *@domain, added with the ordinary
        address command: it takes unknown users of its domain only.
        """
        accounts.add_address(self.conn, {"name": "pm", "email": "*@example.com"})
        self.assertEqual(self.resolve("carol@example.com").account_id, self.postmaster)
        self.assertEqual(self.resolve("carol+x@example.com").matched, "*@example.com")
        self.assertEqual(self.resolve("alice@example.com").account_id, self.alice)
        self.assertIsNone(self.resolve("carol@other.example"))

    def test_spec(self) -> None:
        """The command carries the given address and the account; a mailbox only when chosen."""
        recipient = self.resolve("alice+x@example.com")
        self.assertEqual(recipient.spec(), {"rcpt": "alice+x@example.com", "account": self.alice})
        self.assertEqual(Recipient("a@b.c", "A1", "a@b.c", "M9").spec(), {"rcpt": "a@b.c", "account": "A1", "mailbox": "M9"})
