# -*- test-case-name: tests.mail.test_vacation -*-
"""
Tests for L{stalwart.mail.vacation}: the VacationResponse singleton
(RFC 8621 section 8) on a whole node run in-process with the mail
extension.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.vacation import is_utc_date
from tests.mail.test_mailbox import MailTestCase

DEFAULTS = {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
            "subject": None, "textBody": None, "htmlBody": None}


class VacationResponseTests(MailTestCase):
    """VacationResponse/get and /set (RFC 8621 8.1, 8.2)."""

    def get(self, **arguments) -> dict:
        name, response = self.call("VacationResponse/get", {"ids": None, **arguments})
        self.assertEqual(name, "VacationResponse/get", response)
        return response

    def set(self, **arguments) -> dict:
        name, response = self.call("VacationResponse/set", arguments)
        self.assertEqual(name, "VacationResponse/set", response)
        return response

    def test_get_defaults(self):
        """A new account has exactly one VacationResponse, "singleton", disabled."""
        self.assertEqual(self.get()["list"], [DEFAULTS])
        response = self.get(ids=["singleton", "other"])
        self.assertEqual((response["list"], response["notFound"]), ([DEFAULTS], ["other"]))
        self.assertEqual(self.get(ids=["singleton"], properties=["isEnabled"])["list"],
                         [{"id": "singleton", "isEnabled": False}])

    def test_get_never_stored(self):
        """An account whose singleton was never stored still sees it, with defaults."""
        self.db().execute("DELETE FROM objects WHERE type = 'VacationResponse'")
        self.assertEqual(self.get()["list"], [DEFAULTS])
        self.assertEqual(self.get(ids=["singleton"])["notFound"], [])
        self.assertEqual(self.get(ids=[])["list"], [])

    def test_update(self):
        """The singleton's properties change with an update; the state moves."""
        old = self.get()["state"]
        response = self.set(update={"singleton": {
            "isEnabled": True, "fromDate": "2024-07-01T00:00:00Z", "toDate": "2024-07-15T12:30:00.5Z",
            "subject": "Away", "textBody": "Back soon.", "htmlBody": "<p>Back soon.</p>",
        }})
        self.assertEqual((response["oldState"], response["updated"]), (old, {"singleton": None}))
        got = self.get()
        self.assertNotEqual(got["state"], old)
        self.assertEqual(got["list"][0]["subject"], "Away")
        self.assertEqual(got["list"][0]["toDate"], "2024-07-15T12:30:00.5Z")
        self.set(update={"singleton": {"subject": None, "isEnabled": False}})
        self.assertEqual(self.get()["list"][0]["subject"], None)

    def test_update_never_stored(self):
        """The first update of a never-stored singleton stores it."""
        self.db().execute("DELETE FROM objects WHERE type = 'VacationResponse'")
        self.assertEqual(self.set(update={"singleton": {"isEnabled": True}})["updated"], {"singleton": None})
        self.assertTrue(self.get()["list"][0]["isEnabled"])

    def test_bad_values(self):
        """Dates are UTCDates; isEnabled a Boolean; no other property."""
        response = self.set(update={"singleton": {"fromDate": "2024-07-01 00:00:00"}})
        self.assertEqual(response["notUpdated"]["singleton"]["properties"], ["fromDate"])
        for patch, prop in [({"toDate": "2024-13-01T00:00:00Z"}, "toDate"), ({"isEnabled": None}, None),
                            ({"isEnabled": "yes"}, "isEnabled"), ({"reason": "x"}, "reason")]:
            response = self.set(update={"singleton": patch})
            if prop is None:
                self.assertEqual(response["updated"], {"singleton": None}, patch)
            else:
                self.assertEqual(response["notUpdated"]["singleton"]["properties"], [prop], patch)
        self.assertEqual(self.get()["list"], [DEFAULTS])

    def test_singleton_rules(self):
        """
        Create and destroy are the singleton SetError (RFC 8620 5.3); any
        other id is notFound.
        """
        response = self.set(create={"k": {"isEnabled": True}}, destroy=["singleton"], update={"other": {"isEnabled": True}})
        self.assertEqual(response["notCreated"]["k"]["type"], "singleton")
        self.assertEqual(response["notDestroyed"]["singleton"]["type"], "singleton")
        self.assertEqual(response["notUpdated"]["other"]["type"], "notFound")
        self.assertEqual(self.get()["list"], [DEFAULTS])

    def test_get_and_set_only(self):
        """VacationResponse has only /get and /set (RFC 8621 8)."""
        for method in ("VacationResponse/changes", "VacationResponse/query"):
            self.assertError(self.call(method, {"sinceState": "0"}), "unknownMethod")


class UTCDateTests(SynchronousTestCase):
    """L{is_utc_date} (RFC 8620 1.4)."""

    def test_values(self):
        """Z only, upper-case T, a fraction only when not zero, a real date."""
        for value, expected in [
            ("2014-10-30T06:12:00Z", True),
            ("2014-10-30T06:12:00.25Z", True),
            ("2014-10-30T06:12:00.0Z", False),
            ("2014-10-30T06:12:00+00:00", False),
            ("2014-10-30t06:12:00z", False),
            ("2014-02-30T06:12:00Z", False),
            ("2014-10-30", False),
            (20141030, False),
        ]:
            self.assertEqual(is_utc_date(value), expected, value)
