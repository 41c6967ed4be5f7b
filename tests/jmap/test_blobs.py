# -*- test-case-name: tests.jmap.test_blobs -*-
"""
Tests for blobs: the upload and download endpoints (RFC 8620 6.1, 6.2)
and Blob/copy (6.3), on a whole node run in-process
(L{tests.jmap.harness}).
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from stalwart.auth.authenticate import Principal
from stalwart.store.blobs import blob_id_for
from tests.jmap.harness import LiveNode, basic

PASSWORD = "correct horse"


class _BlobTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = LiveNode(self, max_size_upload=1000)
        self.alice = self.live.create_account("alice", PASSWORD, quota=2500)
        self.auth = basic("alice", PASSWORD)

    def upload(self, data: bytes, content_type: str = "text/plain", account: str = None):
        return self.live.request(
            "POST", f"/jmap/upload/{account or self.alice['id']}/", data,
            {"Content-Type": content_type}, self.auth,
        )

    def used_bytes(self, name: str = "alice") -> int:
        accounts = self.live.admin("GET", "/accounts").json()["accounts"]
        return {a["name"]: a["usedBytes"] for a in accounts}[name]


class UploadTests(_BlobTestCase):
    def test_upload(self):
        """
        POST to the upload URL answers 201 with the accountId, blobId, type
        and size of the blob (RFC 8620 6.1), and charges the quota.
        """
        reply = self.upload(b"hello blob", "text/plain")
        self.assertEqual(reply.status, 201)
        self.assertTrue(reply.header("content-type").startswith("application/json"))
        self.assertEqual(reply.json(), {
            "accountId": self.alice["id"], "blobId": blob_id_for(b"hello blob"),
            "type": "text/plain", "size": 10,
        })
        self.assertEqual(self.used_bytes(), 10)

    def test_same_bytes_twice(self):
        """
        The same bytes uploaded twice get the same blobId, and the quota is
        charged once (RFC 8620 6: blob ids are derived from content here).
        """
        first = self.upload(b"x" * 100).json()
        second = self.upload(b"x" * 100, "application/octet-stream").json()
        self.assertEqual(first["blobId"], second["blobId"])
        self.assertEqual(self.used_bytes(), 100)

    def test_too_large(self):
        """
        An upload over maxSizeUpload is refused with 413 and a limit
        problem naming maxSizeUpload (RFC 8620 6.1, 3.6.1).
        """
        data = b"y" * 1001
        reply = self.upload(data)
        self.assertEqual(reply.status, 413)
        self.assertTrue(reply.header("content-type").startswith("application/problem+json"))
        problem = reply.json()
        self.assertEqual((problem["type"], problem["limit"]), ("urn:ietf:params:jmap:error:limit", "maxSizeUpload"))
        self.assertFalse(self.live.node.blobs.exists(blob_id_for(data)))
        self.assertEqual(self.upload(b"y" * 1000).status, 201)

    def test_over_quota(self):
        """
        An upload that would take the account over its quota is refused
        and stores nothing: no blob for the account, no file, no charge.
        """
        self.assertEqual(self.upload(b"a" * 1000).status, 201)
        self.assertEqual(self.upload(b"b" * 1000).status, 201)
        data = b"c" * 1000
        reply = self.upload(data)
        self.assertEqual(reply.status, 403)
        self.assertEqual(reply.json()["type"], "urn:ietf:params:jmap:error:overQuota")
        self.assertEqual(self.used_bytes(), 2000)
        self.assertFalse(self.live.node.blobs.exists(blob_id_for(data)))
        blob = blob_id_for(data)
        download = self.live.request("GET", f"/jmap/download/{self.alice['id']}/{blob}/c.txt", authorization=self.auth)
        self.assertEqual(download.status, 404)

    def test_wrong_account(self):
        """Uploading to an account the user does not own: 404 accountNotFound."""
        self.live.create_account("bob", PASSWORD)
        for account in ("A2", "nobody"):
            reply = self.upload(b"data", account=account)
            self.assertEqual(reply.status, 404)
            self.assertEqual(reply.json()["type"], "urn:ietf:params:jmap:error:accountNotFound")

    def test_needs_authentication(self):
        """An upload without credentials is 401 (RFC 8620 6.1 needs an authenticated user)."""
        reply = self.live.request("POST", f"/jmap/upload/{self.alice['id']}/", b"data")
        self.assertEqual(reply.status, 401)


class DownloadTests(TestCase):
    """
    Downloads (RFC 8620 6.2).  twisted.web sends a file through the global
    cooperator, so these tests are asynchronous: each yields to the global
    reactor between pumps of the in-memory connection (no sockets, no
    sleeps).
    """

    upload = _BlobTestCase.upload

    def setUp(self) -> None:
        _BlobTestCase.setUp(self)
        self.data = bytes(range(256))
        self.blob_id = self.upload(self.data, "application/x-thing").json()["blobId"]

    def download(self, path: str, headers=None):
        return self.live.request_pumped("GET", f"/jmap/download/{path}", headers=headers, authorization=self.auth)

    @inlineCallbacks
    def test_download(self):
        """
        GET on the download URL returns the bytes, with the accept type as
        Content-Type and the name in Content-Disposition (RFC 8620 6.2).
        """
        reply = yield self.download(f"{self.alice['id']}/{self.blob_id}/r%C3%A9sum%C3%A9.bin?accept=image/png")
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.body, self.data)
        self.assertEqual(reply.header("content-type"), "image/png")
        self.assertEqual(
            reply.header("content-disposition"),
            "attachment; filename=\"r_sum_.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9.bin",
        )

    @inlineCallbacks
    def test_download_default_type(self):
        """Without accept, the type given at upload is used (RFC 8620 6.2)."""
        reply = yield self.download(f"{self.alice['id']}/{self.blob_id}/thing")
        self.assertEqual((reply.status, reply.header("content-type")), (200, "application/x-thing"))

    @inlineCallbacks
    def test_range(self):
        """A Range request gets 206 with just that slice (RFC 7233 4.1)."""
        reply = yield self.download(f"{self.alice['id']}/{self.blob_id}/thing", {"Range": "bytes=10-19"})
        self.assertEqual(reply.status, 206)
        self.assertEqual(reply.body, self.data[10:20])
        self.assertEqual(reply.header("content-range"), "bytes 10-19/256")

    @inlineCallbacks
    def test_wrong_account(self):
        """A blob asked for under another account is 404, even if that account has it."""
        bob = self.live.create_account("bob", PASSWORD)
        self.live.request("POST", f"/jmap/upload/{bob['id']}/", self.data, {}, basic("bob", PASSWORD))
        reply = yield self.download(f"{bob['id']}/{self.blob_id}/thing")
        self.assertEqual(reply.status, 404)

    @inlineCallbacks
    def test_unknown_blob(self):
        """An unknown or malformed blob id is 404 (RFC 8620 6.2)."""
        for blob in (blob_id_for(b"never uploaded"), "Gnot-a-blob", "x"):
            reply = yield self.download(f"{self.alice['id']}/{blob}/thing")
            self.assertEqual(reply.status, 404)

    @inlineCallbacks
    def test_other_users_blob(self):
        """A blob only another account uploaded is 404 for this account."""
        bob = self.live.create_account("bob", PASSWORD)
        bob_blob = self.live.request(
            "POST", f"/jmap/upload/{bob['id']}/", b"bob's", {}, basic("bob", PASSWORD)
        ).json()["blobId"]
        reply = yield self.download(f"{self.alice['id']}/{bob_blob}/thing")
        self.assertEqual(reply.status, 404)

    @inlineCallbacks
    def test_bad_accept(self):
        """An accept that is not a media type is refused with 400."""
        reply = yield self.download(f"{self.alice['id']}/{self.blob_id}/thing?accept=nonsense")
        self.assertEqual(reply.status, 400)


class BlobCopyTests(_BlobTestCase):
    def test_not_found(self):
        """
        Blob/copy of blobs the source account does not have: notCopied with
        notFound for each (RFC 8620 6.3).
        """
        account = self.alice["id"]
        unknown = blob_id_for(b"unknown")
        reply = self.live.api([["Blob/copy", {"fromAccountId": account, "accountId": account,
                                              "blobIds": [unknown, "junk"]}, "0"]], self.auth)
        ((name, response, call_id),) = reply.json()["methodResponses"]
        self.assertEqual(name, "Blob/copy")
        self.assertIsNone(response["copied"])
        self.assertEqual({k: v["type"] for k, v in response["notCopied"].items()},
                         {unknown: "notFound", "junk": "notFound"})

    def test_from_other_account(self):
        """A user with one account cannot copy from another: fromAccountNotFound (RFC 8620 6.3)."""
        reply = self.live.api([["Blob/copy", {"fromAccountId": "A99", "accountId": self.alice["id"],
                                              "blobIds": []}, "0"]], self.auth)
        ((name, response, call_id),) = reply.json()["methodResponses"]
        self.assertEqual((name, response["type"]), ("error", "fromAccountNotFound"))

    def test_copy_between_accounts(self):
        """
        Applied for another account (as a multi-account user would), the
        copy gives it the blob and charges its quota, with the same id
        (RFC 8620 6.3).
        """
        blob = self.upload(b"shared bytes").json()["blobId"]
        bob = self.live.create_account("bob", PASSWORD, quota=5)
        carol = self.live.create_account("carol", PASSWORD)
        context = self.successResultOf(self.live.node.request_context(Principal(carol["id"], "carol")))
        ((name, response),) = self.successResultOf(
            context.write("Blob/copy", carol["id"], {"fromAccountId": self.alice["id"], "blobIds": [blob]}, {})
        )
        self.assertEqual(response["copied"], {blob: blob})
        self.assertEqual(self.used_bytes("carol"), 12)
        ((name, response),) = self.successResultOf(
            context.write("Blob/copy", bob["id"], {"fromAccountId": self.alice["id"], "blobIds": [blob]}, {})
        )
        self.assertEqual(response["notCopied"][blob]["type"], "overQuota")
        self.assertEqual(self.used_bytes("bob"), 0)
