"""
Tests for L{stalwart.mail.email_methods} and L{stalwart.mail.emails}: the
Email, Thread and SearchSnippet methods of RFC 8621 on an in-process node.
"""

from __future__ import annotations

from typing import Dict, List

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE, MAIL
from stalwart.jmap.methods.blob import UPLOAD_COMMAND
from stalwart.mail.emails import base_subject
from stalwart.mail.extension import mail_extension
from stalwart.store.commands import Command
from tests.jmap.harness import LiveNode

USING = [CORE, MAIL]


def message(subject: str, body: str = "Hello there.", message_id: str = "", in_reply_to: str = "",
            sender: str = "Alice <alice@example.org>", to: str = "Bob <bob@example.org>",
            date: str = "Tue, 24 Nov 2026 10:00:00 +0100", extra: str = "") -> bytes:
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
        headers.append(f"References: <{in_reply_to}>")
    if extra:
        headers.append(extra)
    return ("\r\n".join(headers) + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()


class MailNode:
    """A node with the mail extension and one account."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.case = case
        self.live = LiveNode(case, extensions=[mail_extension()])
        self.account = self.live.quick_account("bob@example.org")
        mailboxes = self.call("Mailbox/get", {"ids": None})[1]["list"]
        self.mailbox = {m["role"]: m["id"] for m in mailboxes}

    def call(self, name: str, arguments: Dict):
        arguments = {"accountId": self.account, **arguments}
        responses = self.live.process(self.account, [[name, arguments, "c0"]], using=USING)["methodResponses"]
        assert len(responses) == 1, responses
        return responses[0][0], responses[0][1]

    def upload(self, raw: bytes) -> str:
        result = self.case.successResultOf(self.live.node.propose(Command(
            kind=UPLOAD_COMMAND, args={"account": self.account, "type": "message/rfc822", "now": self.live.node.now()},
            body=raw)))
        return result["blobId"]

    def deliver(self, raw: bytes, role: str = "inbox", keywords=None, received_at: str = "2026-11-24T09:00:00Z") -> Dict:
        blob_id = self.upload(raw)
        name, result = self.call("Email/import", {"emails": {"k": {
            "blobId": blob_id, "mailboxIds": {self.mailbox[role]: True}, "keywords": keywords or {},
            "receivedAt": received_at}}})
        self.case.assertEqual(name, "Email/import", result)
        self.case.assertIsNone(result["notCreated"], result)
        return result["created"]["k"]

    def query(self, **arguments) -> List[str]:
        name, result = self.call("Email/query", arguments)
        self.case.assertEqual(name, "Email/query", result)
        return result["ids"]


class BaseSubjectTests(SynchronousTestCase):
    def test_prefixes(self) -> None:
        """Re:, Fwd:, list tags and (fwd) are not part of the base subject (RFC 5256 2.1)."""
        for subject in ("Lunch", "Re: Lunch", "RE: re: Fwd: lunch", "[team] Re: Lunch", "Lunch (fwd)", "  Lunch  "):
            self.assertEqual(base_subject(subject), "lunch", subject)


class EmailImportGetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mail = MailNode(self)

    def test_import_then_get(self) -> None:
        """An imported message is an Email with its metadata and parsed properties (RFC 8621 4.2, 4.8)."""
        created = self.mail.deliver(message("Lunch?", "Shall we meet at noon?", "m1@example.org"), keywords={"$Seen": True})
        name, result = self.mail.call("Email/get", {"ids": [created["id"]], "fetchTextBodyValues": True})
        (email,) = result["list"]
        self.assertEqual(email["subject"], "Lunch?")
        self.assertEqual(email["from"], [{"name": "Alice", "email": "alice@example.org"}])
        self.assertEqual(email["messageId"], ["m1@example.org"])
        self.assertEqual(email["keywords"], {"$seen": True})
        self.assertEqual(email["mailboxIds"], {self.mail.mailbox["inbox"]: True})
        self.assertEqual(email["threadId"], created["threadId"])
        part = email["textBody"][0]["partId"]
        self.assertEqual(email["bodyValues"][part]["value"].strip(), "Shall we meet at noon?")
        self.assertEqual(email["preview"].strip(), "Shall we meet at noon?")
        self.assertEqual(email["receivedAt"], "2026-11-24T09:00:00Z")

    def test_get_properties_and_not_found(self) -> None:
        """Only the requested properties (and id) come back; unknown ids are notFound; bad properties are invalidArguments."""
        created = self.mail.deliver(message("One"))
        _, result = self.mail.call("Email/get", {"ids": [created["id"], "Mnope"], "properties": ["subject", "size"]})
        self.assertEqual(result["list"], [{"id": created["id"], "subject": "One", "size": created["size"]}])
        self.assertEqual(result["notFound"], ["Mnope"])
        name, result = self.mail.call("Email/get", {"ids": [created["id"]], "properties": ["nonsense"]})
        self.assertEqual((name, result["type"]), ("error", "invalidArguments"))

    def test_import_errors(self) -> None:
        """An unknown blob is blobNotFound; no mailbox is invalidProperties; nothing is created (RFC 8621 4.8)."""
        blob_id = self.mail.upload(message("x"))
        _, result = self.mail.call("Email/import", {"emails": {
            "a": {"blobId": "G" + "0" * 64, "mailboxIds": {self.mail.mailbox["inbox"]: True}},
            "b": {"blobId": blob_id, "mailboxIds": {}},
            "c": {"blobId": blob_id, "mailboxIds": {"Mnosuch": True}},
        }})
        self.assertEqual(result["notCreated"]["a"]["type"], "blobNotFound")
        self.assertEqual(result["notCreated"]["b"]["type"], "invalidProperties")
        self.assertEqual(result["notCreated"]["c"]["type"], "invalidProperties")
        self.assertIsNone(result["created"])
        self.assertEqual(self.mail.query(), [])


class ThreadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mail = MailNode(self)

    def test_reply_joins_thread(self) -> None:
        """A reply naming the original in In-Reply-To/References joins its Thread (RFC 8621 3)."""
        first = self.mail.deliver(message("Plans", message_id="a@x"))
        reply = self.mail.deliver(message("Re: Plans", message_id="b@x", in_reply_to="a@x"), received_at="2026-11-24T10:00:00Z")
        other = self.mail.deliver(message("Other", message_id="c@x"))
        self.assertEqual(first["threadId"], reply["threadId"])
        self.assertNotEqual(first["threadId"], other["threadId"])
        _, result = self.mail.call("Thread/get", {"ids": [first["threadId"], "Tnope"]})
        self.assertEqual(result["list"], [{"id": first["threadId"], "emailIds": [first["id"], reply["id"]]}])
        self.assertEqual(result["notFound"], ["Tnope"])

    def test_same_id_different_subject_separate(self) -> None:
        """A reference with an unrelated subject does not join the thread."""
        first = self.mail.deliver(message("Plans", message_id="a@x"))
        unrelated = self.mail.deliver(message("Invoice 42", message_id="b@x", in_reply_to="a@x"))
        self.assertNotEqual(first["threadId"], unrelated["threadId"])

    def test_merge(self) -> None:
        """
        A message linking two threads merges them into the older one; the
        moved Emails get new ids since threadId is immutable (RFC 8621 3).
        """
        a = self.mail.deliver(message("Plans", message_id="a@x"))
        b = self.mail.deliver(message("Plans", message_id="b@x"))
        self.assertNotEqual(a["threadId"], b["threadId"])
        _, before = self.mail.call("Email/get", {"ids": None, "properties": ["id"]})
        state = before["state"]
        c = self.mail.deliver(message("Re: Plans", message_id="c@x",
                                      extra="References: <a@x> <b@x>"))
        self.assertEqual(c["threadId"], a["threadId"])
        _, result = self.mail.call("Thread/get", {"ids": [a["threadId"], b["threadId"]]})
        (thread,) = result["list"]
        self.assertEqual(result["notFound"], [b["threadId"]])
        self.assertEqual(len(thread["emailIds"]), 3)
        self.assertNotIn(b["id"], thread["emailIds"])
        _, changes = self.mail.call("Email/changes", {"sinceState": state})
        self.assertIn(b["id"], changes["destroyed"])
        self.assertEqual(len(changes["created"]), 2)


class EmailSetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mail = MailNode(self)

    def test_keywords_and_mailboxes(self) -> None:
        """Patching keywords and mailboxIds changes them and the Mailbox counts (RFC 8621 4.6, 2.1)."""
        created = self.mail.deliver(message("Hi"))
        inbox, archive = self.mail.mailbox["inbox"], self.mail.mailbox["archive"]
        _, result = self.mail.call("Email/set", {"update": {created["id"]: {
            "keywords/$seen": True, f"mailboxIds/{inbox}": None, f"mailboxIds/{archive}": True}}})
        self.assertEqual(result["updated"], {created["id"]: None})
        _, got = self.mail.call("Email/get", {"ids": [created["id"]], "properties": ["keywords", "mailboxIds"]})
        self.assertEqual(got["list"][0]["keywords"], {"$seen": True})
        self.assertEqual(got["list"][0]["mailboxIds"], {archive: True})
        _, boxes = self.mail.call("Mailbox/get", {"ids": [inbox, archive]})
        counts = {m["id"]: (m["totalEmails"], m["unreadEmails"]) for m in boxes["list"]}
        self.assertEqual(counts, {inbox: (0, 0), archive: (1, 0)})

    def test_update_errors(self) -> None:
        """Only keywords and mailboxIds may change; an Email must stay in a mailbox; unknown ids are notFound."""
        created = self.mail.deliver(message("Hi"))
        inbox = self.mail.mailbox["inbox"]
        _, result = self.mail.call("Email/set", {"update": {
            created["id"]: {"subject": "changed"}, "Mnope": {"keywords/$seen": True}}})
        self.assertEqual(result["notUpdated"][created["id"]]["type"], "invalidProperties")
        self.assertEqual(result["notUpdated"]["Mnope"]["type"], "notFound")
        _, result = self.mail.call("Email/set", {"update": {created["id"]: {f"mailboxIds/{inbox}": None}}})
        self.assertEqual(result["notUpdated"][created["id"]]["type"], "invalidProperties")
        _, result = self.mail.call("Email/set", {"update": {created["id"]: {"keywords/bad(word": True}}})
        self.assertEqual(result["notUpdated"][created["id"]]["type"], "invalidProperties")

    def test_destroy_removes_thread(self) -> None:
        """Destroying the last Email of a Thread destroys the Thread (RFC 8621 3.2)."""
        created = self.mail.deliver(message("Bye"))
        _, before = self.mail.call("Thread/get", {"ids": [created["threadId"]]})
        _, result = self.mail.call("Email/set", {"destroy": [created["id"], "Mnope"]})
        self.assertEqual(result["destroyed"], [created["id"]])
        self.assertEqual(result["notDestroyed"]["Mnope"]["type"], "notFound")
        _, changes = self.mail.call("Thread/changes", {"sinceState": before["state"]})
        self.assertEqual(changes["destroyed"], [created["threadId"]])
        self.assertEqual(self.mail.query(), [])

    def test_create_from_properties(self) -> None:
        """Email/set create builds a message from JMAP properties and stores it (RFC 8621 4.6)."""
        drafts = self.mail.mailbox["drafts"]
        _, result = self.mail.call("Email/set", {"create": {"d1": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
            "from": [{"name": "Bob", "email": "bob@example.org"}], "to": [{"email": "alice@example.org"}],
            "subject": "Réunion demain", "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": "À demain, 10 h."}},
        }}})
        created = result["created"]["d1"]
        _, got = self.mail.call("Email/get", {"ids": [created["id"]], "fetchTextBodyValues": True})
        email = got["list"][0]
        self.assertEqual(email["subject"], "Réunion demain")
        self.assertEqual(email["to"], [{"name": None, "email": "alice@example.org"}])
        part = email["textBody"][0]["partId"]
        self.assertEqual(email["bodyValues"][part]["value"].rstrip("\r\n"), "À demain, 10 h.")
        self.assertEqual(email["keywords"], {"$draft": True})

    def test_create_errors(self) -> None:
        """A create without mailboxes, or naming a missing attachment blob, is refused with the RFC's SetError."""
        drafts = self.mail.mailbox["drafts"]
        _, result = self.mail.call("Email/set", {"create": {
            "a": {"subject": "x"},
            "b": {"mailboxIds": {drafts: True}, "attachments": [{"blobId": "G" + "1" * 64, "type": "image/png"}]},
        }})
        self.assertEqual(result["notCreated"]["a"]["type"], "invalidProperties")
        self.assertEqual(result["notCreated"]["b"]["type"], "blobNotFound")
        self.assertEqual(result["notCreated"]["b"]["notFound"], ["G" + "1" * 64])

    def test_state_mismatch(self) -> None:
        """ifInState that is not the current state refuses the whole call (RFC 8620 5.3)."""
        name, result = self.mail.call("Email/set", {"ifInState": "999", "destroy": []})
        self.assertEqual((name, result["type"]), ("error", "stateMismatch"))


class EmailQueryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mail = MailNode(self)
        m = self.mail
        self.a = m.deliver(message("Budget 2027", "Numbers attached for the budget.", "a@x", sender="Carol <carol@example.org>"),
                           received_at="2026-11-20T08:00:00Z", keywords={"$seen": True})
        self.b = m.deliver(message("Re: Budget 2027", "Looks fine to me.", "b@x", in_reply_to="a@x"),
                           received_at="2026-11-21T08:00:00Z")
        self.c = m.deliver(message("Party", "Cake at five, bring friends.", "c@x", sender="Dave <dave@example.org>"),
                           role="archive", received_at="2026-11-22T08:00:00Z", keywords={"$flagged": True})

    def test_default_sort_newest_first(self) -> None:
        """Without a sort, newest received first; with one, as asked (RFC 8621 4.4.2)."""
        self.assertEqual(self.mail.query(), [self.c["id"], self.b["id"], self.a["id"]])
        self.assertEqual(self.mail.query(sort=[{"property": "receivedAt"}]), [self.a["id"], self.b["id"], self.c["id"]])
        self.assertEqual(self.mail.query(sort=[{"property": "from"}, {"property": "receivedAt"}]),
                         [self.b["id"], self.a["id"], self.c["id"]])

    def test_filters(self) -> None:
        """inMailbox, keywords, dates, text, from and operators select as RFC 8621 4.4.1 says."""
        inbox = self.mail.mailbox["inbox"]
        q = self.mail.query
        self.assertEqual(set(q(filter={"inMailbox": inbox})), {self.a["id"], self.b["id"]})
        self.assertEqual(q(filter={"hasKeyword": "$flagged"}), [self.c["id"]])
        self.assertEqual(set(q(filter={"notKeyword": "$seen"})), {self.b["id"], self.c["id"]})
        self.assertEqual(q(filter={"after": "2026-11-22T00:00:00Z"}), [self.c["id"]])
        self.assertEqual(q(filter={"before": "2026-11-21T00:00:00Z"}), [self.a["id"]])
        self.assertEqual(q(filter={"text": "cake"}), [self.c["id"]])
        self.assertEqual(q(filter={"body": '"looks fine"'}), [self.b["id"]])
        self.assertEqual(q(filter={"from": "carol"}), [self.a["id"]])
        self.assertEqual(set(q(filter={"subject": "budget"})), {self.a["id"], self.b["id"]})
        self.assertEqual(q(filter={"operator": "NOT", "conditions": [{"inMailbox": inbox}]}), [self.c["id"]])
        self.assertEqual(set(q(filter={"operator": "OR", "conditions": [{"text": "cake"}, {"hasKeyword": "$seen"}]})),
                         {self.a["id"], self.c["id"]})
        self.assertEqual(q(filter={"someInThreadHaveKeyword": "$seen", "notKeyword": "$seen"}), [self.b["id"]])
        self.assertEqual(q(filter={"header": ["Subject", "party"]}), [self.c["id"]])

    def test_hostile_text_is_not_fts_syntax(self) -> None:
        """FTS5 operators in search text are searched for, never run (no error, no injection)."""
        for text in ('NEAR(cake five)', 'cake OR "', '*', 'subject:cake', '") OR (1', "'"):
            name, result = self.mail.call("Email/query", {"filter": {"text": text}})
            self.assertEqual(name, "Email/query", (text, result))

    def test_collapse_threads(self) -> None:
        """collapseThreads keeps the first Email of each Thread in the sorted list (RFC 8621 4.4.3)."""
        self.assertEqual(self.mail.query(collapseThreads=True), [self.c["id"], self.b["id"]])

    def test_bad_arguments(self) -> None:
        """Unknown filter conditions and sorts get their own errors."""
        name, result = self.mail.call("Email/query", {"filter": {"colour": "red"}})
        self.assertEqual(result["type"], "unsupportedFilter")
        name, result = self.mail.call("Email/query", {"sort": [{"property": "colour"}]})
        self.assertEqual(result["type"], "unsupportedSort")
        name, result = self.mail.call("Email/query", {"filter": {"before": "yesterday"}})
        self.assertEqual(result["type"], "invalidArguments")

    def test_query_changes(self) -> None:
        """Email/queryChanges reports removed and added ids since a query state (RFC 8620 5.6)."""
        inbox = self.mail.mailbox["inbox"]
        _, first = self.mail.call("Email/query", {"filter": {"inMailbox": inbox}})
        d = self.mail.deliver(message("New one"), received_at="2026-11-23T08:00:00Z")
        self.mail.call("Email/set", {"destroy": [self.a["id"]]})
        _, result = self.mail.call("Email/queryChanges", {"filter": {"inMailbox": inbox},
                                                          "sinceQueryState": first["queryState"]})
        self.assertIn(self.a["id"], result["removed"])
        self.assertEqual(result["added"], [{"id": d["id"], "index": 0}])

    def test_search_snippets(self) -> None:
        """SearchSnippet/get marks the matched words, HTML-escaped (RFC 8621 5)."""
        _, result = self.mail.call("SearchSnippet/get", {"filter": {"text": "budget"},
                                                         "emailIds": [self.a["id"], "Mnope"]})
        (snippet,) = result["list"]
        self.assertEqual(snippet["subject"], "<mark>Budget</mark> 2027")
        self.assertIn("<mark>budget</mark>", snippet["preview"])
        self.assertEqual(result["notFound"], ["Mnope"])


class EmailListTests(SynchronousTestCase):
    def test_list_properties_need_no_parsing(self) -> None:
        """
        A message list (from, subject, sentAt...) is answered from the row:
        it is the same as parsing, and works without reading the message.
        """
        mail = MailNode(self)
        created = mail.deliver(message("Café ☕", message_id="m@x", sender="Zoë <zoe@example.org>"))
        listed = ["from", "to", "subject", "sentAt", "messageId", "references", "replyTo"]
        _, parsed = mail.call("Email/get", {"ids": [created["id"]], "properties": listed + ["textBody"]})
        blob_path = mail.live.node.blobs.path(created["blobId"])
        import os

        os.remove(blob_path)
        _, from_row = mail.call("Email/get", {"ids": [created["id"]], "properties": listed})
        expected = {k: v for k, v in parsed["list"][0].items() if k != "textBody"}
        self.assertEqual(from_row["list"][0], expected)
        self.assertEqual(from_row["list"][0]["subject"], "Café ☕")


class QueryTotalTests(SynchronousTestCase):
    def test_total_of_a_mailbox(self) -> None:
        """calculateTotal for a lone inMailbox equals the Mailbox's totalEmails and a counted total (RFC 8621 4.4)."""
        mail = MailNode(self)
        for n in range(5):
            mail.deliver(message(f"m{n}"), role="inbox" if n % 2 else "archive")
        for role in ("inbox", "archive", "trash"):
            mailbox = mail.mailbox[role]
            _, fast = mail.call("Email/query", {"filter": {"inMailbox": mailbox}, "calculateTotal": True, "limit": 1})
            _, counted = mail.call("Email/query", {"filter": {"operator": "AND", "conditions": [{"inMailbox": mailbox}]},
                                                   "calculateTotal": True, "limit": 1})
            _, box = mail.call("Mailbox/get", {"ids": [mailbox]})
            self.assertEqual(fast["total"], counted["total"])
            self.assertEqual(fast["total"], box["list"][0]["totalEmails"])
        self.assertEqual(fast["total"], 0)
