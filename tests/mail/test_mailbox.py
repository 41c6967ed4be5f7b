# -*- test-case-name: tests.mail.test_mailbox -*-
"""
Tests for L{stalwart.mail.mailbox} and L{stalwart.mail.extension}:
Mailboxes (RFC 8621 section 2) on a whole node run in-process
(L{tests.jmap.harness}) with the mail extension.  Emails are rows put
straight into the email tables, as Email/set would leave them.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.authenticate import Principal
from stalwart.jmap.capabilities import CORE, MAIL, SUBMISSION, VACATION
from stalwart.mail.emails import CountChange
from stalwart.mail.extension import mail_extension
from stalwart.mail.mailbox import OWNER_RIGHTS, Mailbox
from stalwart.store.changes import CREATED, changes_since, record_change, state_of
from stalwart.store.commands import Command
from stalwart.store.schema import connect
from tests.jmap.harness import LiveNode

USING = [CORE, MAIL, SUBMISSION, VACATION]


class MailTestCase(SynchronousTestCase):
    """A node with the mail extension and one account, C{self.account}."""

    mailbox = None  # a Mailbox type with other limits

    def setUp(self) -> None:
        self.live = LiveNode(self, extensions=[mail_extension(mailbox=self.mailbox)])
        self.account = self.new_account("alice")

    def new_account(self, name: str, emails=()) -> str:
        result = self.successResultOf(self.live.node.propose(Command(kind="account.create", args={
            "name": name, "password": "not-a-hash", "emails": list(emails), "quota": None, "now": self.live.node.now(),
        })))
        return result["id"]

    def call(self, name: str, arguments: dict, account: str = None):
        return self.live.call(account or self.account, name, arguments, using=USING)

    def process(self, calls: list, account: str = None) -> list:
        return self.live.process(account or self.account, calls, using=USING)["methodResponses"]

    def assertError(self, response, error_type: str) -> dict:
        name, arguments = response
        self.assertEqual((name, arguments.get("type")), ("error", error_type), arguments)
        return arguments

    def db(self):
        """A connection to the node's state.db, for rows no method writes yet."""
        conn = connect(os.path.join(self.live.config.data_dir, "state.db"))
        self.addCleanup(conn.close)
        return conn


class _MailboxTestCase(MailTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.roles = {m["role"]: m["id"] for m in self.get()}

    def get(self, ids=None, **extra) -> list:
        name, response = self.call("Mailbox/get", {"ids": ids, **extra})
        self.assertEqual(name, "Mailbox/get", response)
        return response["list"]

    def one(self, mailbox_id: str) -> dict:
        (found,) = self.get([mailbox_id])
        return found

    def set(self, **arguments) -> dict:
        name, response = self.call("Mailbox/set", arguments)
        self.assertEqual(name, "Mailbox/set", response)
        return response

    def create(self, name: str, parent: str = None, **extra) -> str:
        response = self.set(create={"k": {"name": name, "parentId": parent, **extra}})
        self.assertIsNone(response["notCreated"], response)
        return response["created"]["k"]["id"]

    def refused(self, response: dict, key: str, kind: str = "notCreated") -> dict:
        errors = response[kind]
        self.assertIsNotNone(errors, response)
        return errors[key]

    def state(self) -> str:
        return self.call("Mailbox/get", {"ids": []})[1]["state"]

    def add_email(self, email_id: str, thread_id: str, mailboxes, keywords=()) -> None:
        conn = self.db()
        # As the writes of stalwart.mail.emails do, the Mailbox counts are kept.
        counting = CountChange(conn, self.account, [thread_id])
        conn.execute(
            "INSERT INTO emails (account_id, id, blob_id, thread_id, size, received_at)"
            " VALUES (?, ?, ?, ?, 100, '2024-01-01T00:00:00Z')",
            (self.account, email_id, "B" + email_id, thread_id),
        )
        conn.executemany("INSERT INTO email_mailboxes VALUES (?, ?, ?)", [(self.account, m, email_id) for m in mailboxes])
        conn.executemany("INSERT INTO email_keywords VALUES (?, ?, ?)", [(self.account, email_id, k) for k in keywords])
        counting.done()
        # As Email/set would: the creations are in the changes log.
        record_change(conn, self.account, "Email", email_id, CREATED)
        if conn.execute("SELECT COUNT(*) FROM emails WHERE thread_id = ?", (thread_id,)).fetchone()[0] == 1:
            record_change(conn, self.account, "Thread", thread_id, CREATED)


class NewAccountTests(_MailboxTestCase):
    """What a new account gets (the mail extension's account hook)."""

    def test_six_mailboxes_with_roles(self):
        """
        A new account has Inbox, Drafts, Sent, Trash, Junk and Archive with
        their roles, at the top level, subscribed, empty, with every right.
        """
        listed = self.get()
        self.assertEqual([(m["name"], m["role"]) for m in listed], [
            ("Inbox", "inbox"), ("Drafts", "drafts"), ("Sent", "sent"),
            ("Trash", "trash"), ("Junk", "junk"), ("Archive", "archive"),
        ])
        for mailbox in listed:
            self.assertIsNone(mailbox["parentId"])
            self.assertTrue(mailbox["isSubscribed"])
            self.assertEqual([mailbox[k] for k in ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")], [0] * 4)
            self.assertEqual(mailbox["myRights"], OWNER_RIGHTS)
            self.assertEqual(set(OWNER_RIGHTS), {
                "mayReadItems", "mayAddItems", "mayRemoveItems", "maySetSeen", "maySetKeywords",
                "mayCreateChild", "mayRename", "mayDelete", "maySubmit"})
        orders = [m["sortOrder"] for m in listed]
        self.assertEqual(orders, sorted(orders))

    def test_created_through_set(self):
        """
        The six are created like Mailbox/set creates: Mailbox/changes from
        state "0" lists them as created, with a null updatedProperties
        (RFC 8621 2.2).
        """
        name, response = self.call("Mailbox/changes", {"sinceState": "0"})
        self.assertEqual(sorted(response["created"]), sorted(self.roles.values()))
        self.assertEqual((response["updated"], response["destroyed"]), ([], []))
        self.assertIn("updatedProperties", response)
        self.assertIsNone(response["updatedProperties"])

    def test_each_account_its_own(self):
        """Another account gets its own six Mailboxes; neither sees the other's."""
        bob = self.new_account("bob")
        theirs = self.call("Mailbox/get", {"ids": None}, account=bob)[1]["list"]
        self.assertEqual([m["role"] for m in theirs], list(self.roles))
        self.call("Mailbox/set", {"create": {"k": {"name": "Bob's"}}}, account=bob)
        self.assertEqual(len(self.get()), 6)

    def test_session_capabilities(self):
        """
        The session announces the mail, submission and vacationresponse
        capabilities, with the account's limits for each (RFC 8621 1.3).
        """
        node = self.live.node
        session = self.successResultOf(node.session_for(Principal(account_id=self.account, name="alice")))
        for uri in (MAIL, SUBMISSION, VACATION):
            self.assertEqual(session["capabilities"][uri], {})
        account = session["accounts"][self.account]["accountCapabilities"]
        mail = account[MAIL]
        self.assertEqual(mail["maxMailboxDepth"], 10)
        self.assertEqual(mail["maxSizeMailboxName"], 255)
        self.assertIsNone(mail["maxMailboxesPerEmail"])
        self.assertTrue(mail["mayCreateTopLevelMailbox"])
        self.assertIn("receivedAt", mail["emailQuerySortOptions"])
        self.assertEqual(mail["maxSizeAttachmentsPerEmail"], 50_000_000)
        self.assertEqual(account[SUBMISSION], {"maxDelayedSend": 0, "submissionExtensions": {}})
        self.assertEqual(account[VACATION], {})

    def test_only_the_rfc_methods(self):
        """Mailbox has no /copy (RFC 8621 2 lists get, changes, query, queryChanges, set)."""
        self.assertError(self.call("Mailbox/copy", {"fromAccountId": "x", "create": {}}), "unknownMethod")


class CreateTests(_MailboxTestCase):
    """Mailbox/set create (RFC 8621 2.5)."""

    def test_create_child(self):
        """
        A child of an existing Mailbox; the response holds the defaults and
        every server-set property (RFC 8620 5.3).
        """
        response = self.set(create={"k": {"name": "Lists", "parentId": self.roles["inbox"]}})
        created = response["created"]["k"]
        self.assertEqual(created["role"], None)
        self.assertEqual((created["sortOrder"], created["isSubscribed"], created["totalEmails"]), (0, True, 0))
        self.assertEqual(created["myRights"], OWNER_RIGHTS)
        self.assertEqual(self.one(created["id"])["parentId"], self.roles["inbox"])

    def test_parent_by_creation_id(self):
        """
        parentId may name a Mailbox created in the same call, even one
        listed after it: creates are ordered parent first (RFC 8620 5.3).
        """
        response = self.set(create={
            "child": {"name": "Child", "parentId": "#parent"},
            "parent": {"name": "Parent"},
            "grandchild": {"name": "Grandchild", "parentId": "#child"},
        })
        self.assertIsNone(response["notCreated"])
        ids = {k: v["id"] for k, v in response["created"].items()}
        self.assertEqual(self.one(ids["child"])["parentId"], ids["parent"])
        self.assertEqual(self.one(ids["grandchild"])["parentId"], ids["child"])

    def test_parent_must_exist(self):
        """A parentId that is no Mailbox: invalidProperties parentId."""
        error = self.refused(self.set(create={"k": {"name": "x", "parentId": "M999"}}), "k")
        self.assertEqual((error["type"], error["properties"]), ("invalidProperties", ["parentId"]))

    def test_name_rules(self):
        """
        A name has at least one character, at most maxSizeMailboxName
        octets of UTF-8 (255 by default) and no control characters.
        """
        response = self.set(create={
            "empty": {"name": ""},
            "long": {"name": "é" * 128},
            "control": {"name": "a\x07b"},
            "missing": {},
            "fits": {"name": "é" * 127 + "a"},
        })
        for key in ("empty", "long", "control", "missing"):
            self.assertEqual(response["notCreated"][key]["properties"], ["name"], key)
        self.assertIn("fits", response["created"])

    def test_siblings_have_distinct_names(self):
        """
        Two siblings may not share a name (RFC 8621 2); the same name under
        another parent, or differing in case, is allowed.
        """
        self.create("Work")
        error = self.refused(self.set(create={"k": {"name": "Work"}}), "k")
        self.assertEqual((error["type"], error["properties"]), ("invalidProperties", ["name"]))
        self.create("Work", self.roles["inbox"])
        self.create("work")
        error = self.refused(self.set(create={"k": {"name": "Inbox"}}), "k")
        self.assertEqual(error["properties"], ["name"])

    def test_roles(self):
        """
        A role is one of the IANA attribute names in lower case, at most
        one Mailbox per role in an account (RFC 8621 2).
        """
        response = self.set(create={
            "taken": {"name": "Second inbox", "role": "inbox"},
            "unknown": {"name": "Odd", "role": "bogus"},
            "upper": {"name": "Upper", "role": "Flagged"},
            "fine": {"name": "Important", "role": "important"},
            "twice": {"name": "Important 2", "role": "important"},
        })
        for key in ("taken", "unknown", "upper", "twice"):
            self.assertEqual(response["notCreated"][key]["properties"], ["role"], key)
        self.assertEqual(list(response["created"]), ["fine"])

    def test_role_free_after_destroy(self):
        """Once the Mailbox with a role is gone, another may take the role."""
        self.set(destroy=[self.roles["junk"]])
        self.create("Spam", role="junk")

    def test_property_types(self):
        """
        sortOrder is below 2^31; counts and myRights are server-set; an
        unknown property is invalid (RFC 8620 5.3).
        """
        response = self.set(create={
            "order": {"name": "a", "sortOrder": 2**31},
            "negative": {"name": "b", "sortOrder": -1},
            "counts": {"name": "c", "totalEmails": 0},
            "rights": {"name": "d", "myRights": OWNER_RIGHTS},
            "unknown": {"name": "e", "colour": "red"},
            "subscribed": {"name": "f", "isSubscribed": "yes"},
        })
        self.assertEqual({k: v["properties"] for k, v in response["notCreated"].items()}, {
            "order": ["sortOrder"], "negative": ["sortOrder"], "counts": ["totalEmails"],
            "rights": ["myRights"], "unknown": ["colour"], "subscribed": ["isSubscribed"],
        })
        self.assertIsNotNone(self.set(create={"k": {"name": "g", "sortOrder": 2**31 - 1}})["created"])


class LimitTests(_MailboxTestCase):
    """The depth and count limits announced in the mail capability."""

    mailbox = Mailbox(depth_max=3, mailboxes_max=10)

    def test_depth(self):
        """
        A Mailbox has at most maxMailboxDepth - 1 ancestors, and a moved
        subtree must fit too.
        """
        a = self.create("a")
        b = self.create("b", a)
        c = self.create("c", b)
        error = self.refused(self.set(create={"k": {"name": "d", "parentId": c}}), "k")
        self.assertEqual(error["properties"], ["parentId"])
        error = self.refused(self.set(update={a: {"parentId": self.roles["inbox"]}}), a, "notUpdated")
        self.assertEqual(error["properties"], ["parentId"])
        self.assertIsNone(self.one(a)["parentId"])

    def test_count(self):
        """At most mailboxes_max Mailboxes per account: then overQuota."""
        self.create("7")
        self.create("8")
        self.create("9")
        self.create("10")
        self.assertEqual(self.refused(self.set(create={"k": {"name": "11"}}), "k")["type"], "overQuota")

    def test_announced(self):
        """The limits of the Mailbox type are those announced."""
        session = self.successResultOf(self.live.node.session_for(Principal(account_id=self.account, name="alice")))
        self.assertEqual(session["accounts"][self.account]["accountCapabilities"][MAIL]["maxMailboxDepth"], 3)


class UpdateTests(_MailboxTestCase):
    """Mailbox/set update (RFC 8621 2.5)."""

    def test_rename_and_move(self):
        """A Mailbox can be renamed, moved under another and back to the top level."""
        work = self.create("Work")
        self.assertEqual(self.set(update={work: {"name": "Job", "parentId": self.roles["archive"]}})["updated"], {work: None})
        self.assertEqual((self.one(work)["name"], self.one(work)["parentId"]), ("Job", self.roles["archive"]))
        self.set(update={work: {"parentId": None}})
        self.assertIsNone(self.one(work)["parentId"])

    def test_no_cycles(self):
        """
        A Mailbox cannot become its own parent or the child of one of its
        descendants (RFC 8621 2: "There MUST NOT be a loop").
        """
        a = self.create("a")
        b = self.create("b", a)
        c = self.create("c", b)
        response = self.set(update={a: {"parentId": c}, b: {"parentId": b}})
        for object_id in (a, b):
            error = response["notUpdated"][object_id]
            self.assertEqual((error["type"], error["properties"]), ("invalidProperties", ["parentId"]))
        self.assertEqual([self.one(i)["parentId"] for i in (a, b, c)], [None, a, b])

    def test_move_by_creation_id(self):
        """An update may name as parent a Mailbox created earlier in the call."""
        a = self.create("a")
        response = self.set(create={"new": {"name": "New"}}, update={a: {"parentId": "#new"}})
        self.assertEqual(self.one(a)["parentId"], response["created"]["new"]["id"])

    def test_sibling_clash(self):
        """Renaming or moving onto a sibling's name is refused; keeping one's own name is not."""
        work = self.create("Work")
        other = self.create("Inbox", self.roles["archive"])
        response = self.set(update={work: {"name": "Inbox"}, other: {"parentId": None}})
        self.assertEqual(set(response["notUpdated"]), {work, other})
        self.assertEqual(self.set(update={work: {"name": "Work", "sortOrder": 5}})["updated"], {work: None})

    def test_role_changes(self):
        """A role can be set, kept, or removed, but not taken from another Mailbox."""
        work = self.create("Work")
        self.assertEqual(self.refused(self.set(update={work: {"role": "trash"}}), work, "notUpdated")["properties"], ["role"])
        self.assertEqual(self.set(update={work: {"role": "flagged"}})["updated"], {work: None})
        self.assertEqual(self.set(update={work: {"role": "flagged", "name": "Flagged"}})["updated"], {work: None})
        self.set(update={self.roles["trash"]: {"role": None}})
        self.assertEqual(self.set(update={work: {"role": "trash"}})["updated"], {work: None})

    def test_null_resets_to_default(self):
        """
        A patch's null resets a property to its default (RFC 8620 5.3);
        name has none, so null is invalid.
        """
        work = self.create("Work", self.roles["inbox"], sortOrder=3, isSubscribed=False)
        self.set(update={work: {"sortOrder": None, "isSubscribed": None, "parentId": None}})
        found = self.one(work)
        self.assertEqual((found["sortOrder"], found["isSubscribed"], found["parentId"]), (0, True, None))
        self.assertEqual(self.call("Mailbox/query", {"filter": {"isSubscribed": True, "name": "Work"}})[1]["ids"], [work])
        error = self.refused(self.set(update={work: {"name": None}}), work, "notUpdated")
        self.assertEqual(error["properties"], ["name"])

    def test_server_set_in_update(self):
        """Counts are server-set: an update may not set them."""
        error = self.refused(self.set(update={self.roles["inbox"]: {"totalEmails": 5}}), self.roles["inbox"], "notUpdated")
        self.assertEqual(error["properties"], ["totalEmails"])

    def test_rfc_example_rename(self):
        """RFC 8621 2.6's example: a rename with ifInState succeeds."""
        important = self.create("Important mail")
        old = self.state()
        response = self.set(ifInState=old, update={important: {"name": "Maybe important mail"}})
        self.assertEqual((response["oldState"], response["updated"]), (old, {important: None}))
        self.assertNotEqual(response["newState"], old)


class DestroyTests(_MailboxTestCase):
    """Mailbox/set destroy (RFC 8621 2.5)."""

    def test_has_child(self):
        """A Mailbox with a child cannot be destroyed: mailboxHasChild."""
        self.create("child", self.roles["inbox"])
        error = self.refused(self.set(destroy=[self.roles["inbox"]]), self.roles["inbox"], "notDestroyed")
        self.assertEqual(error["type"], "mailboxHasChild")

    def test_parent_and_child_together(self):
        """Destroying a parent and its child in one call works in either order."""
        parent = self.create("parent")
        child = self.create("child", parent)
        grandchild = self.create("grandchild", child)
        response = self.set(destroy=[parent, grandchild, child])
        self.assertIsNone(response["notDestroyed"])
        self.assertEqual(sorted(response["destroyed"]), sorted([parent, child, grandchild]))

    def test_has_email(self):
        """
        A Mailbox holding an Email cannot be destroyed unless
        onDestroyRemoveEmails is true: mailboxHasEmail.
        """
        self.add_email("E1", "T1", [self.roles["inbox"]])
        response = self.set(destroy=[self.roles["inbox"]], onDestroyRemoveEmails=False)
        self.assertEqual(response["notDestroyed"][self.roles["inbox"]]["type"], "mailboxHasEmail")
        self.assertEqual(len(self.get()), 6)

    def test_remove_emails(self):
        """
        With onDestroyRemoveEmails, Emails only in the Mailbox are destroyed
        and the others just leave it; the Email, Thread and Mailbox changes
        are recorded (RFC 8621 2.5).
        """
        inbox, archive = self.roles["inbox"], self.roles["archive"]
        self.add_email("E1", "T1", [inbox])
        self.add_email("E2", "T2", [inbox, archive])
        self.add_email("E3", "T2", [archive])
        conn = self.db()
        before = {t: state_of(conn, self.account, t) for t in ("Email", "Thread", "Mailbox")}
        response = self.set(destroy=[inbox], onDestroyRemoveEmails=True)
        self.assertEqual(response["destroyed"], [inbox])
        self.assertEqual(sorted(r[0] for r in conn.execute("SELECT id FROM emails")), ["E2", "E3"])
        self.assertEqual(list(conn.execute("SELECT mailbox_id, email_id FROM email_mailboxes ORDER BY email_id")),
                         [(archive, "E2"), (archive, "E3")])
        emails = changes_since(conn, self.account, "Email", before["Email"], 100)
        self.assertEqual((emails.destroyed, emails.updated), (["E1"], ["E2"]))
        threads = changes_since(conn, self.account, "Thread", before["Thread"], 100)
        self.assertEqual(threads.destroyed, ["T1"])
        mailboxes = changes_since(conn, self.account, "Mailbox", before["Mailbox"], 100)
        self.assertEqual(mailboxes.destroyed, [inbox])
        self.assertEqual(self.one(archive)["totalEmails"], 2)

    def test_remove_emails_updates_other_counts(self):
        """
        Destroying an unread Email changes unreadThreads of a Mailbox holding
        another Email of its Thread: that Mailbox is recorded as changed.
        """
        inbox, archive = self.roles["inbox"], self.roles["archive"]
        self.add_email("E1", "T1", [inbox])
        self.add_email("E2", "T1", [archive], ["$seen"])
        self.assertEqual(self.one(archive)["unreadThreads"], 1)
        old = self.state()
        self.set(destroy=[inbox], onDestroyRemoveEmails=True)
        self.assertEqual(self.call("Mailbox/changes", {"sinceState": old})[1]["updated"], [archive])
        self.assertEqual(self.one(archive)["unreadThreads"], 0)


class CountTests(_MailboxTestCase):
    """totalEmails, unreadEmails, totalThreads and unreadThreads (RFC 8621 2)."""

    def counts(self, mailbox_id: str) -> tuple:
        m = self.one(mailbox_id)
        return (m["totalEmails"], m["unreadEmails"], m["totalThreads"], m["unreadThreads"])

    def test_counts(self):
        """
        Unread means neither $seen nor $draft; threads count once however
        many of their Emails the Mailbox holds.
        """
        inbox = self.roles["inbox"]
        self.add_email("E1", "T1", [inbox])
        self.add_email("E2", "T1", [inbox], ["$seen"])
        self.add_email("E3", "T2", [inbox], ["$draft"])
        self.add_email("E4", "T3", [inbox], ["$flagged"])
        self.add_email("E5", "T4", [self.roles["archive"]])
        self.assertEqual(self.counts(inbox), (4, 2, 3, 2))
        self.assertEqual(self.counts(self.roles["archive"]), (1, 1, 1, 1))
        self.assertEqual(self.counts(self.roles["sent"]), (0, 0, 0, 0))

    def test_unread_elsewhere_in_thread(self):
        """
        A Thread is unread in a Mailbox holding one of its read Emails when
        another of its Emails, in another Mailbox, is unread.
        """
        self.add_email("E1", "T1", [self.roles["inbox"]], ["$seen"])
        self.add_email("E2", "T1", [self.roles["sent"]])
        self.assertEqual(self.counts(self.roles["inbox"]), (1, 0, 1, 1))

    def test_rfc_trash_example(self):
        """
        RFC 8621 2: a Thread of an unread Email in the trash and a read one
        in the inbox counts 1 unread Thread for the trash and 0 for the inbox.
        """
        self.add_email("E1", "T1", [self.roles["trash"]])
        self.add_email("E2", "T1", [self.roles["inbox"]], ["$seen"])
        self.assertEqual(self.counts(self.roles["trash"])[3], 1)
        self.assertEqual(self.counts(self.roles["inbox"])[3], 0)

    def test_trash_ignores_emails_outside(self):
        """An unread Email outside the trash does not count for the trash's unreadThreads."""
        self.add_email("E1", "T1", [self.roles["inbox"]])
        self.add_email("E2", "T1", [self.roles["trash"]], ["$seen"])
        self.assertEqual(self.counts(self.roles["trash"])[3], 0)
        self.assertEqual(self.counts(self.roles["inbox"])[3], 1)

    def test_in_trash_and_elsewhere(self):
        """An unread Email in the trash and another Mailbox counts for both."""
        self.add_email("E1", "T1", [self.roles["inbox"], self.roles["trash"]])
        self.add_email("E2", "T1", [self.roles["archive"]], ["$seen"])
        self.assertEqual([self.counts(self.roles[r])[3] for r in ("inbox", "trash", "archive")], [1, 1, 1])

    def test_counts_only_property(self):
        """RFC 8621 2.2's example: /get can ask for just the counts."""
        self.add_email("E1", "T1", [self.roles["inbox"]])
        (found,) = self.get([self.roles["inbox"]], properties=["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"])
        self.assertEqual(found, {"id": self.roles["inbox"], "totalEmails": 1, "unreadEmails": 1, "totalThreads": 1, "unreadThreads": 1})

    def test_changes_example(self):
        """
        RFC 8621 2.2's example request: changes, then /get of created and
        of updated with properties from updatedProperties (null: all).
        """
        old = self.state()
        work = self.create("Work")
        self.set(update={self.roles["inbox"]: {"sortOrder": 1}})
        responses = self.process([
            ["Mailbox/changes", {"accountId": self.account, "sinceState": old}, "0"],
            ["Mailbox/get", {"accountId": self.account,
                             "#ids": {"resultOf": "0", "name": "Mailbox/changes", "path": "/created"}}, "1"],
            ["Mailbox/get", {"accountId": self.account,
                             "#ids": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updated"},
                             "#properties": {"resultOf": "0", "name": "Mailbox/changes", "path": "/updatedProperties"}}, "2"],
        ])
        self.assertEqual([r[0] for r in responses], ["Mailbox/changes", "Mailbox/get", "Mailbox/get"])
        self.assertEqual([m["id"] for m in responses[1][1]["list"]], [work])
        (inbox,) = responses[2][1]["list"]
        self.assertEqual((inbox["id"], inbox["sortOrder"], inbox["name"]), (self.roles["inbox"], 1, "Inbox"))


class QueryTests(_MailboxTestCase):
    """Mailbox/query and /queryChanges (RFC 8621 2.3, 2.4)."""

    def setUp(self) -> None:
        super().setUp()
        r = self.roles
        # Inbox(10) > Lists(2) > Python(0); Inbox > Family(1); Archive(60) > 2023(0) > Lists(0)
        self.lists = self.create("Lists", r["inbox"], sortOrder=2)
        self.python = self.create("Python", self.lists, isSubscribed=False)
        self.family = self.create("Family", r["inbox"], sortOrder=1)
        self.year = self.create("2023", r["archive"])
        self.old_lists = self.create("Lists", self.year)

    def query(self, **arguments) -> list:
        name, response = self.call("Mailbox/query", arguments)
        self.assertEqual(name, "Mailbox/query", response)
        return response["ids"]

    def test_filters(self):
        """Each FilterCondition property of RFC 8621 2.3."""
        r = self.roles
        self.assertEqual(set(self.query(filter={"parentId": None})), set(r.values()))
        self.assertEqual(self.query(filter={"parentId": r["inbox"]}), [self.lists, self.family])
        self.assertEqual(self.query(filter={"name": "LIS"}), [self.lists, self.old_lists])
        self.assertEqual(self.query(filter={"role": "trash"}), [r["trash"]])
        self.assertEqual(len(self.query(filter={"role": None})), 5)
        self.assertEqual(set(self.query(filter={"hasAnyRole": True})), set(r.values()))
        self.assertEqual(len(self.query(filter={"hasAnyRole": False})), 5)
        self.assertEqual(self.query(filter={"isSubscribed": False}), [self.python])
        self.assertEqual(self.query(filter={"operator": "NOT", "conditions": [{"hasAnyRole": True}, {"name": "s"}]}),
                         [self.python, self.family, self.year])

    def test_bad_filter(self):
        """An unknown filter property is unsupportedFilter; a bad value invalidArguments."""
        self.assertError(self.call("Mailbox/query", {"filter": {"totalEmails": 0}}), "unsupportedFilter")
        self.assertError(self.call("Mailbox/query", {"filter": {"hasAnyRole": "yes"}}), "invalidArguments")

    def test_sorts(self):
        """sortOrder and name are sortable; counts are not (unsupportedSort)."""
        ids = self.query(sort=[{"property": "sortOrder"}, {"property": "name"}])
        self.assertEqual(ids[:4], [self.year, self.old_lists, self.python, self.family])
        self.assertEqual(ids[-1], self.roles["archive"])
        by_name = self.query(sort=[{"property": "name", "isAscending": False}])
        self.assertEqual(by_name[0], self.roles["trash"])
        self.assertError(self.call("Mailbox/query", {"sort": [{"property": "totalEmails"}]}), "unsupportedSort")

    def test_sort_as_tree(self):
        """
        sortAsTree: every Mailbox after its ancestors, siblings by the
        comparators, cousins by their nearest sibling ancestors (RFC 8621 2.3).
        """
        r = self.roles
        ids = self.query(sort=[{"property": "sortOrder"}, {"property": "name"}], sortAsTree=True)
        self.assertEqual(ids, [
            r["inbox"], self.family, self.lists, self.python,
            r["drafts"], r["sent"], r["trash"], r["junk"],
            r["archive"], self.year, self.old_lists,
        ])
        by_name = self.query(sort=[{"property": "name"}], sortAsTree=True)
        self.assertEqual(by_name, [
            r["archive"], self.year, self.old_lists, r["drafts"],
            r["inbox"], self.family, self.lists, self.python,
            r["junk"], r["sent"], r["trash"],
        ])

    def test_filter_as_tree(self):
        """
        filterAsTree: a Mailbox is in the results only if all its ancestors
        match the filter too (RFC 8621 2.3).
        """
        self.set(update={self.year: {"isSubscribed": False}})
        subscribed = {"isSubscribed": True}
        plain = self.query(filter=subscribed)
        self.assertIn(self.old_lists, plain)
        tree = self.query(filter=subscribed, filterAsTree=True)
        self.assertNotIn(self.old_lists, tree)
        self.assertNotIn(self.python, tree)
        self.assertIn(self.lists, tree)
        self.assertEqual(self.query(filter={"name": "Lists"}, filterAsTree=True), [])
        both = self.query(filter=subscribed, filterAsTree=True, sortAsTree=True, sort=[{"property": "sortOrder"}])
        self.assertEqual(both[:3], [self.roles["inbox"], self.family, self.lists])

    def test_bad_tree_option(self):
        """sortAsTree and filterAsTree are Booleans."""
        self.assertError(self.call("Mailbox/query", {"sortAsTree": "yes"}), "invalidArguments")

    def test_query_changes(self):
        """Mailbox/queryChanges reports a new Mailbox where it now sorts, with sortAsTree."""
        arguments = {"sort": [{"property": "name"}], "sortAsTree": True}
        state = self.call("Mailbox/query", arguments)[1]["queryState"]
        new = self.create("Aaa", self.roles["inbox"])
        name, response = self.call("Mailbox/queryChanges", {**arguments, "sinceQueryState": state})
        self.assertEqual(name, "Mailbox/queryChanges", response)
        self.assertEqual(response["added"], [{"id": new, "index": 5}])
