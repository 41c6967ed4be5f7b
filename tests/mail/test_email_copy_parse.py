# -*- test-case-name: tests.mail.test_email_copy_parse -*-
"""
Tests for Email/copy (RFC 8621 4.7) and Email/parse (4.9) in
L{stalwart.mail.email_methods}, on an in-process node.
"""

from __future__ import annotations

from typing import Dict, List

from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.authenticate import Principal
from stalwart.mail.extension import mail_extension
from stalwart.service.config import ServerConfig
from stalwart.store.blobs import blob_id_for
from tests.mail.messages import FORWARDED, MIXED_ATTACHMENTS, PDF
from tests.mail.test_email_methods import USING, MailNode, message


class LimitedMailNode(MailNode):
    """A L{MailNode} whose mail extension has the limits of C{config} (ServerConfig keywords)."""

    def __init__(self, case: SynchronousTestCase, **config) -> None:
        from tests.jmap.harness import LiveNode

        self.case = case
        self.live = LiveNode(case, extensions=[mail_extension(ServerConfig(**config))], **config)
        self.account = self.live.quick_account("bob@example.org")
        mailboxes = self.call("Mailbox/get", {"ids": None})[1]["list"]
        self.mailbox = {m["role"]: m["id"] for m in mailboxes}


class _TwoAccounts(SynchronousTestCase):
    """Alice's account with mail (a L{MailNode}) and Bob's on the same node."""

    def setUp(self) -> None:
        self.mail = MailNode(self)
        self.alice = self.mail.account
        self.bob = self.mail.live.quick_account("robert@example.org")
        boxes = self.call_as(self.bob, "Mailbox/get", {"ids": None})[1]["list"]
        self.bob_mailbox = {m["role"]: m["id"] for m in boxes}

    def call_as(self, account: str, name: str, arguments: Dict):
        responses = self.mail.live.process(account, [[name, {"accountId": account, **arguments}, "c0"]],
                                           using=USING)["methodResponses"]
        return responses[0][0], responses[0][1]

    def copy(self, arguments: Dict, created_ids: Dict = None) -> List:
        """
        Email/copy from Alice to Bob through the log, as a user who may use
        both accounts would (one login owns one account here).
        """
        context = self.successResultOf(self.mail.live.node.request_context(Principal(account_id=self.bob, name="bob")))
        args = {"fromAccountId": self.alice, "ifFromInState": None, "ifInState": None,
                "onSuccessDestroyOriginal": False, "destroyFromIfInState": None, **arguments}
        return self.successResultOf(context.write("Email/copy", self.bob, args,
                                                  created_ids if created_ids is not None else {}))


class EmailCopyTests(_TwoAccounts):
    def test_copy(self) -> None:
        """
        A copy is a new Email in the target account with the mailboxIds,
        keywords and receivedAt given (the rest from the original), the
        same message blob, which the target account is given; created
        holds id, blobId, threadId and size (RFC 8621 4.7).
        """
        original = self.mail.deliver(message("Plans", "Meet at noon.", "p@x"), keywords={"$seen": True})
        inbox = self.bob_mailbox["inbox"]
        created_ids = {}
        ((name, result),) = self.copy({"create": {
            "c1": {"id": original["id"], "mailboxIds": {inbox: True}},
            "c2": {"id": original["id"], "mailboxIds": {inbox: True}, "keywords": {"$flagged": True},
                   "receivedAt": "2027-01-01T00:00:00Z"},
        }}, created_ids)
        self.assertEqual(name, "Email/copy")
        self.assertEqual((result["fromAccountId"], result["accountId"]), (self.alice, self.bob))
        self.assertIsNone(result["notCreated"])
        c1, c2 = result["created"]["c1"], result["created"]["c2"]
        self.assertEqual(set(c1), {"id", "blobId", "threadId", "size"})
        self.assertEqual((c1["blobId"], c1["size"]), (original["blobId"], original["size"]))
        self.assertEqual(created_ids, {"c1": c1["id"], "c2": c2["id"]})
        _, got = self.call_as(self.bob, "Email/get", {"ids": [c1["id"], c2["id"]], "properties": [
            "subject", "keywords", "mailboxIds", "receivedAt"]})
        first, second = got["list"]
        self.assertEqual((first["subject"], first["keywords"], first["mailboxIds"]), ("Plans", {"$seen": True}, {inbox: True}))
        self.assertEqual(first["receivedAt"], "2026-11-24T09:00:00Z")
        self.assertEqual((second["keywords"], second["receivedAt"]), ({"$flagged": True}, "2027-01-01T00:00:00Z"))
        self.assertEqual(c1["threadId"], c2["threadId"])  # same Message-ID in Bob's account
        # The blob is Bob's now: his Email/parse may read it.
        _, parsed = self.call_as(self.bob, "Email/parse", {"blobIds": [c1["blobId"]], "properties": ["subject"]})
        self.assertEqual(parsed["parsed"], {c1["blobId"]: {"subject": "Plans"}})
        # The original is untouched.
        _, mine = self.mail.call("Email/get", {"ids": [original["id"]], "properties": ["keywords"]})
        self.assertEqual(mine["list"][0]["keywords"], {"$seen": True})

    def test_copy_errors(self) -> None:
        """
        notFound for a missing original; invalidProperties for a property
        other than mailboxIds, keywords and receivedAt, for no mailboxIds
        (the original's name the other account's Mailboxes) and for a
        Mailbox the target lacks.
        """
        original = self.mail.deliver(message("Plans"))
        inbox = self.bob_mailbox["inbox"]
        ((_, result),) = self.copy({"create": {
            "missing": {"id": "Mnope", "mailboxIds": {inbox: True}},
            "subject": {"id": original["id"], "mailboxIds": {inbox: True}, "subject": "changed"},
            "noboxes": {"id": original["id"]},
            "alices": {"id": original["id"], "mailboxIds": {"Mzz9": True}},
            "badkw": {"id": original["id"], "mailboxIds": {inbox: True}, "keywords": {"a b": True}},
        }})
        errors = {k: v["type"] for k, v in result["notCreated"].items()}
        self.assertEqual(errors, {"missing": "notFound", "subject": "invalidProperties", "noboxes": "invalidProperties",
                                  "alices": "invalidProperties", "badkw": "invalidProperties"})
        self.assertEqual(result["notCreated"]["subject"]["properties"], ["subject"])
        self.assertIsNone(result["created"])
        self.assertEqual(result["oldState"], result["newState"])

    def test_destroy_original(self) -> None:
        """
        onSuccessDestroyOriginal: the copied originals are destroyed by an
        implicit Email/set in the source account, whose response follows;
        an original that failed to copy stays (RFC 8620 5.4).
        """
        moved = self.mail.deliver(message("Move me", message_id="m@x"))
        kept = self.mail.deliver(message("Keep me", message_id="k@x"))
        responses = self.copy({"onSuccessDestroyOriginal": True, "create": {
            "ok": {"id": moved["id"], "mailboxIds": {self.bob_mailbox["inbox"]: True}},
            "bad": {"id": kept["id"]},
        }})
        self.assertEqual([name for name, _ in responses], ["Email/copy", "Email/set"])
        copied, destroyed = responses[0][1], responses[1][1]
        self.assertEqual(set(copied["created"]), {"ok"})
        self.assertEqual((destroyed["accountId"], destroyed["destroyed"]), (self.alice, [moved["id"]]))
        self.assertEqual(self.mail.query(), [kept["id"]])
        _, bobs = self.call_as(self.bob, "Email/query", {})
        self.assertEqual(bobs["ids"], [copied["created"]["ok"]["id"]])

    def test_destroy_original_state_mismatch(self) -> None:
        """A destroyFromIfInState that does not match: the copy stands, the Email/set is a stateMismatch error."""
        moved = self.mail.deliver(message("Move me"))
        responses = self.copy({"onSuccessDestroyOriginal": True, "destroyFromIfInState": "0", "create": {
            "ok": {"id": moved["id"], "mailboxIds": {self.bob_mailbox["inbox"]: True}}}})
        self.assertEqual([name for name, _ in responses], ["Email/copy", "error"])
        self.assertEqual(responses[1][1]["type"], "stateMismatch")
        self.assertEqual(self.mail.query(), [moved["id"]])

    def test_state_mismatch(self) -> None:
        """ifFromInState or ifInState that do not match: stateMismatch, nothing copied (RFC 8620 5.4)."""
        original = self.mail.deliver(message("Plans"))
        context = self.successResultOf(self.mail.live.node.request_context(Principal(account_id=self.bob, name="bob")))
        for arguments in ({"ifFromInState": "0"}, {"ifInState": "999"}):
            failure = self.failureResultOf(context.write("Email/copy", self.bob, {
                    "fromAccountId": self.alice, "ifFromInState": None, "ifInState": None,
                    "onSuccessDestroyOriginal": False, "destroyFromIfInState": None,
                    "create": {"c": {"id": original["id"], "mailboxIds": {self.bob_mailbox["inbox"]: True}}},
                    **arguments}, {}))
            self.assertEqual(failure.value.to_json()["type"], "stateMismatch")
        self.assertEqual(self.call_as(self.bob, "Email/query", {})[1]["ids"], [])

    def test_over_quota(self) -> None:
        """A target account without room for the message blob: overQuota."""
        poor = self.mail.live.quick_account("poor@example.org", quota=10)
        inbox = {m["role"]: m["id"] for m in self.call_as(poor, "Mailbox/get", {"ids": None})[1]["list"]}["inbox"]
        original = self.mail.deliver(message("Big enough"))
        context = self.successResultOf(self.mail.live.node.request_context(Principal(account_id=poor, name="poor")))
        ((_, result),) = self.successResultOf(context.write("Email/copy", poor, {
            "fromAccountId": self.alice, "ifFromInState": None, "ifInState": None, "onSuccessDestroyOriginal": False,
            "destroyFromIfInState": None, "create": {"c": {"id": original["id"], "mailboxIds": {inbox: True}}}}, {}))
        self.assertEqual(result["notCreated"]["c"]["type"], "overQuota")

    def test_through_the_api(self) -> None:
        """
        Through a request, a user who owns one account gets
        fromAccountNotFound for another account and invalidArguments for
        copying within the same one (RFC 8620 5.4).
        """
        name, result = self.mail.call("Email/copy", {"fromAccountId": self.bob, "create": {"c": {"id": "M1"}}})
        self.assertEqual((name, result["type"]), ("error", "fromAccountNotFound"))
        name, result = self.mail.call("Email/copy", {"fromAccountId": self.alice, "create": {"c": {"id": "M1"}}})
        self.assertEqual((name, result["type"]), ("error", "invalidArguments"))


class EmailParseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mail = MailNode(self)

    def parse(self, **arguments):
        return self.mail.call("Email/parse", arguments)

    def test_parse_upload(self) -> None:
        """
        An uploaded message parses to an Email with the default properties
        of RFC 8621 4.9; nothing is stored.
        """
        blob_id = self.mail.upload(MIXED_ATTACHMENTS)
        name, result = self.parse(blobIds=[blob_id])
        self.assertEqual(name, "Email/parse")
        email = result["parsed"][blob_id]
        self.assertEqual(set(email), {"messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
                                      "replyTo", "subject", "sentAt", "hasAttachment", "preview", "bodyValues",
                                      "textBody", "htmlBody", "attachments"})
        self.assertEqual(email["subject"], "Invoice 2014-117")
        self.assertEqual(email["messageId"], ["invoice-117@vendor.example"])
        self.assertTrue(email["hasAttachment"])
        self.assertEqual([a["name"] for a in email["attachments"]], ["invoice-117.pdf", "Lieferung vor der Tür.jpg"])
        self.assertEqual(email["bodyValues"], {})
        self.assertIsNone(result["notParsable"])
        self.assertIsNone(result["notFound"])
        self.assertEqual(self.mail.query(), [])

    def test_metadata_and_body_values(self) -> None:
        """
        id, mailboxIds, keywords, receivedAt and threadId are null; blobId
        and size are the blob's; bodyValues follow the fetch arguments and
        maxBodyValueBytes (RFC 8621 4.9).
        """
        blob_id = self.mail.upload(message("Hello", "A fairly long body of text."))
        _, result = self.parse(blobIds=[blob_id], properties=[
            "id", "blobId", "threadId", "mailboxIds", "keywords", "receivedAt", "size", "bodyValues", "header:Subject"],
            fetchTextBodyValues=True, maxBodyValueBytes=8)
        email = result["parsed"][blob_id]
        self.assertEqual({k: email[k] for k in ("id", "threadId", "mailboxIds", "keywords", "receivedAt")},
                         dict.fromkeys(("id", "threadId", "mailboxIds", "keywords", "receivedAt")))
        self.assertEqual((email["blobId"], email["size"]), (blob_id, len(message("Hello", "A fairly long body of text."))))
        self.assertEqual(email["header:Subject"], " Hello")
        (value,) = email["bodyValues"].values()
        self.assertEqual((value["value"], value["isTruncated"]), ("A fairly", True))

    def test_attached_message(self) -> None:
        """An attached message is parsed from its part blobId, without importing it (RFC 8621 4.9)."""
        created = self.mail.deliver(FORWARDED)
        _, got = self.mail.call("Email/get", {"ids": [created["id"]], "properties": ["attachments"]})
        (attached,) = got["list"][0]["attachments"]
        _, result = self.parse(blobIds=[attached["blobId"]], properties=["subject", "from", "attachments"],
                               bodyProperties=["blobId", "size", "type"])
        email = result["parsed"][attached["blobId"]]
        self.assertEqual(email["subject"], "Invoice 2014-117")
        self.assertEqual(email["attachments"][0]["size"], len(PDF))
        self.assertTrue(email["attachments"][0]["blobId"].startswith(attached["blobId"] + "_"))

    def test_not_found_and_not_parsable(self) -> None:
        """
        A blob the account lacks (or a malformed id, or a part that does
        not exist) is notFound; a blob that is no message at all (no header
        fields: an image, plain text, nothing) is notParsable.
        """
        text = self.mail.upload(b"just some words\r\n")
        empty = self.mail.upload(b"")
        pdf = self.mail.upload(PDF)
        good = self.mail.upload(message("Fine"))
        missing = blob_id_for(b"never uploaded")
        _, result = self.parse(blobIds=[text, empty, pdf, good, missing, "nonsense", good + "_9", good])
        self.assertEqual(list(result["parsed"]), [good])
        self.assertEqual(result["notParsable"], [text, empty, pdf])
        self.assertEqual(result["notFound"], [missing, "nonsense", good + "_9"])

    def test_bad_arguments(self) -> None:
        """Unknown properties, forbidden header forms and non-string ids are invalidArguments."""
        blob_id = self.mail.upload(message("x"))
        for arguments in ({"properties": ["nonsense"]}, {"properties": ["header:From:asDate"]},
                          {"bodyProperties": ["colour"]}, {"blobIds": [1]}, {"blobIds": "x"}):
            name, result = self.parse(**{"blobIds": [blob_id], **arguments})
            self.assertEqual((name, result["type"]), ("error", "invalidArguments"), arguments)


class LimitTests(SynchronousTestCase):
    """The mail limits of the configuration (mail-max-size, mail-*-max-items)."""

    def setUp(self) -> None:
        self.mail = LimitedMailNode(self, mail_max_size=400, mail_import_max_items=2, mail_parse_max_items=2)

    def test_parse_items(self) -> None:
        """More blobs than mail-parse-max-items: requestTooLarge (duplicates count once)."""
        blob_id = self.mail.upload(message("x"))
        self.assertEqual(self.mail.call("Email/parse", {"blobIds": [blob_id] * 3})[0], "Email/parse")
        ids = [self.mail.upload(message(str(n))) for n in range(3)]
        name, result = self.mail.call("Email/parse", {"blobIds": ids})
        self.assertEqual((name, result["type"]), ("error", "requestTooLarge"))

    def test_import_items(self) -> None:
        """More messages than mail-import-max-items in one Email/import: requestTooLarge."""
        blob_id = self.mail.upload(message("x"))
        inbox = self.mail.mailbox["inbox"]
        name, result = self.mail.call("Email/import", {"emails": {
            str(n): {"blobId": blob_id, "mailboxIds": {inbox: True}} for n in range(3)}})
        self.assertEqual((name, result["type"]), ("error", "requestTooLarge"))

    def test_message_size(self) -> None:
        """
        A message over mail-max-size: tooLarge for Email/import and
        Email/set create, notParsable for Email/parse.
        """
        big = message("Big", "x" * 500)
        blob_id = self.mail.upload(big)
        inbox = self.mail.mailbox["inbox"]
        _, result = self.mail.call("Email/import", {"emails": {"k": {"blobId": blob_id, "mailboxIds": {inbox: True}}}})
        self.assertEqual(result["notCreated"]["k"]["type"], "tooLarge")
        _, result = self.mail.call("Email/parse", {"blobIds": [blob_id]})
        self.assertEqual(result["notParsable"], [blob_id])
        _, result = self.mail.call("Email/set", {"create": {"d": {
            "mailboxIds": {inbox: True}, "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": "y" * 500}}}}})
        self.assertEqual(result["notCreated"]["d"]["type"], "tooLarge")
        self.assertIsNotNone(self.mail.deliver(message("Small")))

    def test_mailbox_limits(self) -> None:
        """The mailbox-* keys reach the Mailbox type and the account's mail capability."""
        mail = LimitedMailNode(self, mailbox_name_max_len=120, mailbox_max_depth=3, mailbox_max_total=7)
        session = self.successResultOf(mail.live.node.session_for(Principal(account_id=mail.account, name="bob")))
        capability = session["accounts"][mail.account]["accountCapabilities"]["urn:ietf:params:jmap:mail"]
        self.assertEqual((capability["maxSizeMailboxName"], capability["maxMailboxDepth"]), (120, 3))
        _, result = mail.call("Mailbox/set", {"create": {"a": {"name": "a"}, "b": {"name": "b"}}})
        self.assertEqual(result["notCreated"]["b"]["type"], "overQuota")  # six defaults + one


class ErrorAndSyncTests(SynchronousTestCase):
    """The error cases of issue 3 not covered elsewhere, and a client's sync request."""

    def setUp(self) -> None:
        self.mail = MailNode(self)
        self.inbox = self.mail.mailbox["inbox"]

    def test_invalid_email(self) -> None:
        """
        Email/import of a blob that is no message at all (no header field:
        plain words, a PDF, nothing) is invalidEmail (RFC 8621 4.8); a
        damaged message with header fields is imported as it is.
        """
        blobs = {name: self.mail.upload(raw) for name, raw in (
            ("words", b"just some words\r\n"), ("pdf", PDF), ("empty", b""),
            ("damaged", b"Subject: half\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nno end"))}
        _, result = self.mail.call("Email/import", {"emails": {
            name: {"blobId": blob_id, "mailboxIds": {self.inbox: True}} for name, blob_id in blobs.items()}})
        self.assertEqual({k: v["type"] for k, v in result["notCreated"].items()},
                         {"words": "invalidEmail", "pdf": "invalidEmail", "empty": "invalidEmail"})
        self.assertEqual(list(result["created"]), ["damaged"])

    def test_anchor_not_found(self) -> None:
        """An anchor that is not in the results is anchorNotFound, with and without collapseThreads (RFC 8620 5.5)."""
        created = self.mail.deliver(message("One"))
        for collapse in (False, True):
            name, result = self.mail.call("Email/query", {"anchor": "Mnope", "collapseThreads": collapse})
            self.assertEqual((name, result["type"]), ("error", "anchorNotFound"))
            name, result = self.mail.call("Email/query", {"anchor": created["id"], "collapseThreads": collapse})
            self.assertEqual(result["ids"], [created["id"]])

    def test_too_many_changes(self) -> None:
        """Email/queryChanges with more changes than maxChanges is tooManyChanges (RFC 8620 5.6)."""
        _, first = self.mail.call("Email/query", {"filter": {"inMailbox": self.inbox}})
        for n in range(3):
            self.mail.deliver(message(f"New {n}", message_id=f"n{n}@x"))
        name, result = self.mail.call("Email/queryChanges", {"filter": {"inMailbox": self.inbox},
                                                             "sinceQueryState": first["queryState"], "maxChanges": 2})
        self.assertEqual((name, result["type"]), ("error", "tooManyChanges"))
        name, result = self.mail.call("Email/queryChanges", {"filter": {"inMailbox": self.inbox},
                                                             "sinceQueryState": first["queryState"], "maxChanges": 3})
        self.assertEqual(len(result["added"]), 3)

    def test_sync_in_one_request(self) -> None:
        """
        A client's resync in one request (RFC 8620 3.7, RFC 8621 4.3):
        Email/changes, Email/get of its created and of its updated ids by
        back-reference, and Email/queryChanges of the inbox list it shows.
        """
        kept = self.mail.deliver(message("Kept", message_id="k@x"), received_at="2026-11-20T08:00:00Z")
        gone = self.mail.deliver(message("Gone", message_id="g@x"), received_at="2026-11-21T08:00:00Z")
        _, shown = self.mail.call("Email/query", {"filter": {"inMailbox": self.inbox}})
        state = self.mail.call("Email/get", {"ids": []})[1]["state"]
        new = self.mail.deliver(message("New", message_id="n@x"), received_at="2026-11-22T08:00:00Z")
        self.mail.call("Email/set", {"update": {kept["id"]: {"keywords/$seen": True}}, "destroy": [gone["id"]]})
        account = self.mail.account
        responses = self.mail.live.process(account, [
            ["Email/changes", {"accountId": account, "sinceState": state}, "0"],
            ["Email/get", {"accountId": account, "properties": ["subject", "keywords"],
                           "#ids": {"resultOf": "0", "name": "Email/changes", "path": "/created"}}, "1"],
            ["Email/get", {"accountId": account, "properties": ["keywords"],
                           "#ids": {"resultOf": "0", "name": "Email/changes", "path": "/updated"}}, "2"],
            ["Email/queryChanges", {"accountId": account, "filter": {"inMailbox": self.inbox},
                                    "sinceQueryState": shown["queryState"], "calculateTotal": True}, "3"],
        ], using=USING)["methodResponses"]
        self.assertEqual([r[0] for r in responses], ["Email/changes", "Email/get", "Email/get", "Email/queryChanges"])
        changes, created, updated, query = (r[1] for r in responses)
        self.assertEqual((changes["created"], changes["updated"], changes["destroyed"]),
                         ([new["id"]], [kept["id"]], [gone["id"]]))
        self.assertEqual(created["list"], [{"id": new["id"], "subject": "New", "keywords": {}}])
        self.assertEqual(updated["list"], [{"id": kept["id"], "keywords": {"$seen": True}}])
        self.assertEqual(created["state"], changes["newState"])
        # An updated Email may be removed and added again (RFC 8620 5.6).
        self.assertIn({"id": new["id"], "index": 0}, query["added"])
        self.assertIn(gone["id"], query["removed"])
        self.assertEqual(query["total"], 2)
        ids = [i for i in shown["ids"] if i not in query["removed"]]
        for added in query["added"]:
            ids.insert(added["index"], added["id"])
        self.assertEqual(ids, self.mail.query(filter={"inMailbox": self.inbox}))
