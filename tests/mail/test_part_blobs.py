# -*- test-case-name: tests.mail.test_part_blobs -*-
"""
Tests for part blobs (RFC 8621 4.1.4 blobId of an EmailBodyPart): Email/get
names them, the download endpoint serves their decoded content, and
Email/import, Email/parse and Email/set create accept them
(L{stalwart.mail.partblobs}).
"""

from __future__ import annotations

from typing import Dict

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE, MAIL
from stalwart.mail.blobids import part_blob_id
from stalwart.mail.extension import mail_extension
from stalwart.mail.partblobs import NESTING_MAX, stored_blob_id
from stalwart.store.blobs import blob_id_for
from tests.jmap.harness import LiveNode, basic
from tests.mail.messages import FORWARDED, JPEG, MIXED_ATTACHMENTS, PDF

USING = [CORE, MAIL]
PASSWORD = "correct horse battery staple"


class StoredBlobIdTests(SynchronousTestCase):
    def test_chain(self) -> None:
        """A part id leads to the message blob at the bottom of its chain; anything else to None."""
        root = blob_id_for(b"message")
        self.assertEqual(stored_blob_id(root), root)
        self.assertEqual(stored_blob_id(part_blob_id(root, "2.1")), root)
        self.assertEqual(stored_blob_id(part_blob_id(part_blob_id(root, "2"), "1")), root)
        for bad in (None, 42, "", "nonsense", root + "_", "X" + root[1:] + "_1", root.upper() + "_1"):
            self.assertIsNone(stored_blob_id(bad), bad)
        deep = root
        for _ in range(NESTING_MAX + 1):
            deep = part_blob_id(deep, "1")
        self.assertIsNone(stored_blob_id(deep))


class _PartBlobCase(SynchronousTestCase):
    """A node with the mail extension and two users who can log in."""

    def setUp(self) -> None:
        self.live = LiveNode(self, extensions=[mail_extension()])
        self.alice = self.live.create_account("alice", PASSWORD)["id"]
        self.auth = basic("alice", PASSWORD)
        self.bob = self.live.create_account("bob", PASSWORD)["id"]
        boxes = self.call("Mailbox/get", {"ids": None})["list"]
        self.inbox = {m["role"]: m["id"] for m in boxes}["inbox"]

    def call(self, name: str, arguments: Dict, account: str = None) -> Dict:
        account = account or self.alice
        reply = self.live.api([[name, {"accountId": account, **arguments}, "c0"]],
                              basic("alice" if account == self.alice else "bob", PASSWORD), using=USING)
        assert reply.status == 200, reply
        ((got, result, _),) = reply.json()["methodResponses"]
        assert got == name, (got, result)
        return result

    def upload(self, data: bytes, user: str = "alice") -> str:
        account = self.alice if user == "alice" else self.bob
        reply = self.live.request("POST", f"/jmap/upload/{account}/", data, {"Content-Type": "message/rfc822"},
                                  basic(user, PASSWORD))
        assert reply.status == 201, reply
        return reply.json()["blobId"]

    def import_(self, blob_id: str) -> Dict:
        result = self.call("Email/import", {"emails": {"k": {"blobId": blob_id, "mailboxIds": {self.inbox: True}}}})
        return result["created"]["k"] if result["created"] else result["notCreated"]["k"]

    def attachments(self, email_id: str):
        result = self.call("Email/get", {"ids": [email_id], "properties": ["attachments", "blobId"]})
        return result["list"][0]["attachments"]

    def download(self, blob_id: str, name: str = "file", query: str = "", user: str = "alice", account: str = None):
        return self.live.request("GET", f"/jmap/download/{account or self.alice}/{blob_id}/{name}{query}",
                                 authorization=basic(user, PASSWORD))


class DownloadTests(_PartBlobCase):
    def test_attachment_bytes(self) -> None:
        """
        Email/get gives each attachment a blobId (RFC 8621 4.1.4); its
        download is the attachment decoded, byte for byte, with the part's
        type unless accept says otherwise, and the name asked for.
        """
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf, jpeg = self.attachments(email["id"])
        self.assertEqual(pdf["blobId"], part_blob_id(email["blobId"], pdf["partId"]))
        self.assertEqual((pdf["size"], jpeg["size"]), (len(PDF), len(JPEG)))
        reply = self.download(pdf["blobId"], "invoice-117.pdf")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, PDF)
        self.assertEqual(reply.header("content-type"), "application/pdf")
        self.assertIn('filename="invoice-117.pdf"', reply.header("content-disposition"))
        reply = self.download(jpeg["blobId"], "photo.jpg", "?accept=application/octet-stream")
        self.assertEqual((reply.body, reply.header("content-type")), (JPEG, "application/octet-stream"))

    def test_part_of_attached_message(self) -> None:
        """
        Email/parse on an attached message's blobId gives its parts blob
        ids of their own, and those download too (two levels down).
        """
        email = self.import_(self.upload(FORWARDED))
        (attached,) = self.attachments(email["id"])
        self.assertEqual(attached["type"], "message/rfc822")
        self.assertEqual(self.download(attached["blobId"]).body, MIXED_ATTACHMENTS)
        parsed = self.call("Email/parse", {"blobIds": [attached["blobId"]], "properties": ["attachments"]})
        pdf = parsed["parsed"][attached["blobId"]]["attachments"][0]
        self.assertEqual(self.download(pdf["blobId"]).body, PDF)

    def test_not_found(self) -> None:
        """
        404 for a part of a message the account does not own (even when
        another account owns it), a part id the message lacks, a multipart
        container's position, and malformed ids.
        """
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf = self.attachments(email["id"])[0]
        self.assertEqual(self.download(pdf["blobId"], user="bob", account=self.bob).status, 404)
        self.assertEqual(self.download(pdf["blobId"], user="bob").status, 404)  # alice's account, bob's login
        for blob_id in (part_blob_id(email["blobId"], "9"), part_blob_id(email["blobId"], "1.1"),
                        email["blobId"] + "_x", part_blob_id(blob_id_for(b"nobody's"), "1")):
            self.assertEqual(self.download(blob_id).status, 404, blob_id)

    def test_bad_accept(self) -> None:
        """An accept that is not a media type: 400, as for whole blobs."""
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf = self.attachments(email["id"])[0]
        self.assertEqual(self.download(pdf["blobId"], query="?accept=no%0Away").status, 400)


class ReuseTests(_PartBlobCase):
    def test_import_attached_message(self) -> None:
        """
        Email/import of an attached message's part blob id stores that
        message as an Email whose blobId names its own bytes (RFC 8621 4.8:
        the blobId may differ from the one given).
        """
        email = self.import_(self.upload(FORWARDED))
        (attached,) = self.attachments(email["id"])
        created = self.import_(attached["blobId"])
        self.assertEqual(created["blobId"], blob_id_for(MIXED_ATTACHMENTS))
        got = self.call("Email/get", {"ids": [created["id"]], "properties": ["subject", "size"]})["list"][0]
        self.assertEqual((got["subject"], got["size"]), ("Invoice 2014-117", len(MIXED_ATTACHMENTS)))
        self.assertEqual(self.live.node.blobs.read(created["blobId"]), MIXED_ATTACHMENTS)

    def test_import_of_a_non_message_part(self) -> None:
        """A part that is not a message (a PDF) is invalidEmail; one that does not exist is blobNotFound."""
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf = self.attachments(email["id"])[0]
        self.assertEqual(self.import_(pdf["blobId"])["type"], "invalidEmail")
        missing = part_blob_id(email["blobId"], "7")
        self.assertEqual(self.import_(missing), {"type": "blobNotFound", "description": f"no blob {missing}",
                                                 "notFound": [missing]})

    def test_forward_attachment_with_set_create(self) -> None:
        """
        Email/set create may attach a part of a stored message by its
        blobId (forwarding an attachment): the new message carries the
        same bytes.
        """
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf = self.attachments(email["id"])[0]
        drafts = {m["role"]: m["id"] for m in self.call("Mailbox/get", {"ids": None})["list"]}["drafts"]
        result = self.call("Email/set", {"create": {"fwd": {
            "mailboxIds": {drafts: True}, "subject": "Fwd: invoice",
            "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "Here it is."}},
            "attachments": [{"blobId": pdf["blobId"], "type": "application/pdf", "name": "invoice.pdf"}],
        }}})
        created = result["created"]["fwd"]
        (attachment,) = self.attachments(created["id"])
        self.assertEqual(attachment["name"], "invoice.pdf")
        self.assertEqual(self.download(attachment["blobId"]).body, PDF)

    def test_set_create_part_of_another_account(self) -> None:
        """A part of a message the account does not own is blobNotFound in Email/set create."""
        email = self.import_(self.upload(MIXED_ATTACHMENTS))
        pdf = self.attachments(email["id"])[0]
        drafts = {m["role"]: m["id"] for m in self.call("Mailbox/get", {"ids": None}, self.bob)["list"]}["drafts"]
        result = self.call("Email/set", {"create": {"fwd": {
            "mailboxIds": {drafts: True}, "attachments": [{"blobId": pdf["blobId"], "type": "application/pdf"}],
        }}}, self.bob)
        self.assertEqual(result["notCreated"]["fwd"]["type"], "blobNotFound")
        self.assertEqual(result["notCreated"]["fwd"]["notFound"], [pdf["blobId"]])
