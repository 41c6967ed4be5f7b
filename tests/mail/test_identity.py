# -*- test-case-name: tests.mail.test_identity -*-
"""
Tests for L{stalwart.mail.identity}: Identities (RFC 8621 section 6) on
a whole node run in-process with the mail extension.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.identity import is_email_addresses
from tests.mail.test_mailbox import MailTestCase


class _IdentityTestCase(MailTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.joe = self.new_account("joe", ["joe@example.com", "Joe.Bloggs@Example.com"])

    def set(self, **arguments) -> dict:
        name, response = self.call("Identity/set", arguments, account=self.joe)
        self.assertEqual(name, "Identity/set", response)
        return response

    def get(self, ids=None) -> list:
        name, response = self.call("Identity/get", {"ids": ids}, account=self.joe)
        self.assertEqual(name, "Identity/get", response)
        return response["list"]


class NewAccountTests(_IdentityTestCase):
    """What a new account gets."""

    def test_one_identity_per_address(self):
        """Each address of a new account has an Identity with the defaults."""
        listed = self.get()
        self.assertEqual(sorted(i["email"] for i in listed), ["joe.bloggs@example.com", "joe@example.com"])
        for identity in listed:
            self.assertEqual({k: v for k, v in identity.items() if k not in ("id", "email")}, {
                "name": "", "replyTo": None, "bcc": None, "textSignature": "", "htmlSignature": "", "mayDelete": True,
            })

    def test_no_address_no_identity(self):
        """An account without addresses has no Identity (and its state is "0")."""
        name, response = self.call("Identity/get", {"ids": None})
        self.assertEqual((response["list"], response["state"]), ([], "0"))

    def test_changes(self):
        """Identity/changes lists the Identities created with the account (RFC 8621 6.2)."""
        name, response = self.call("Identity/changes", {"sinceState": "0"}, account=self.joe)
        self.assertEqual(sorted(response["created"]), sorted(i["id"] for i in self.get()))


class SetTests(_IdentityTestCase):
    """Identity/set (RFC 8621 6.3)."""

    def test_create_rfc_example(self):
        """
        RFC 8621 6.4's example Identity can be created for one of the
        account's addresses (compared without case); mayDelete is server-set.
        """
        response = self.set(create={"k": {
            "name": "Joe Bloggs", "email": "JOE@example.com", "bcc": [{"name": None, "email": "joe+archive@example.com"}],
            "textSignature": "-- \nJoe Bloggs\nMaster of Email",
            "htmlSignature": "<div><b>Joe Bloggs</b></div><div>Master of Email</div>",
        }})
        created = response["created"]["k"]
        self.assertEqual({k: v for k, v in created.items() if k != "id"}, {"replyTo": None, "mayDelete": True})
        (found,) = self.get([created["id"]])
        self.assertEqual((found["email"], found["bcc"], found["mayDelete"]),
                         ("JOE@example.com", [{"name": None, "email": "joe+archive@example.com"}], True))

    def test_forbidden_from(self):
        """An address that is not the account's: forbiddenFrom (RFC 8621 6.3)."""
        response = self.set(create={
            "other": {"email": "someone@example.com"},
            "wildcard": {"email": "*@example.com"},
        })
        self.assertIsNone(response["created"])
        self.assertEqual({k: v["type"] for k, v in response["notCreated"].items()},
                         {"other": "forbiddenFrom", "wildcard": "forbiddenFrom"})

    def test_other_accounts_address(self):
        """Another account's address is forbiddenFrom too."""
        name, response = self.call("Identity/set", {"create": {"k": {"email": "joe@example.com"}}})
        self.assertEqual(response["notCreated"]["k"]["type"], "forbiddenFrom")

    def test_several_per_address(self):
        """Several Identities may share an address (RFC 8621 6)."""
        response = self.set(create={"a": {"email": "joe@example.com", "name": "Joe"},
                                    "b": {"email": "joe@example.com", "name": "Joe B"}})
        self.assertEqual(sorted(response["created"]), ["a", "b"])
        self.assertEqual(len(self.get()), 4)

    def test_properties(self):
        """
        email is required and immutable; replyTo and bcc are EmailAddress
        arrays or null; mayDelete and id are server-set.
        """
        response = self.set(create={
            "missing": {"name": "x"},
            "replyTo": {"email": "joe@example.com", "replyTo": [{"email": 5}]},
            "bcc": {"email": "joe@example.com", "bcc": "joe@example.com"},
            "mayDelete": {"email": "joe@example.com", "mayDelete": False},
        })
        self.assertEqual({k: v["properties"] for k, v in response["notCreated"].items()}, {
            "missing": ["email"], "replyTo": ["replyTo"], "bcc": ["bcc"], "mayDelete": ["mayDelete"],
        })
        identity = next(i["id"] for i in self.get() if i["email"] == "joe@example.com")
        response = self.set(update={identity: {"email": "joe.bloggs@example.com"}})
        self.assertEqual(response["notUpdated"][identity]["properties"], ["email"])
        response = self.set(update={identity: {"email": None}})
        self.assertEqual(response["notUpdated"][identity]["properties"], ["email"])

    def test_update_and_destroy(self):
        """Names, signatures and Reply-To change; an Identity can be destroyed (mayDelete)."""
        first, second = (i["id"] for i in self.get())
        response = self.set(update={first: {"name": "Joe", "replyTo": [{"name": "Joe", "email": "r@example.net"}],
                                            "textSignature": "--\nJoe"}},
                            destroy=[second])
        self.assertEqual((response["updated"], response["destroyed"]), ({first: None}, [second]))
        (found,) = self.get()
        self.assertEqual((found["name"], found["replyTo"][0]["email"], found["textSignature"]), ("Joe", "r@example.net", "--\nJoe"))

    def test_no_query(self):
        """Identity has get, changes and set only (RFC 8621 6)."""
        self.assertError(self.call("Identity/query", {}), "unknownMethod")


class EmailAddressesTests(SynchronousTestCase):
    """L{is_email_addresses}: the EmailAddress[] type (RFC 8621 4.1.2.3)."""

    def test_values(self):
        """Objects with an email String and an optional name String or null."""
        for value, expected in [
            ([], True),
            ([{"email": "a@b.c"}], True),
            ([{"name": None, "email": "a@b.c"}, {"name": "A", "email": "a@b.c"}], True),
            ([{"name": "A"}], False),
            ([{"email": "a@b.c", "extra": 1}], False),
            ([{"email": "a@b.c", "name": 3}], False),
            ({"email": "a@b.c"}, False),
            (None, False),
        ]:
            self.assertEqual(is_email_addresses(value), expected, value)
