# -*- test-case-name: tests.integration.test_crash -*-
"""
Crash safety of the write path on a real disk (DESIGN.md sections 1 and 4):
SIGKILL in the middle of a burst of writes, a torn segment tail, and damage
in the middle of the log.

The promise under test: a write is acknowledged only after its entry is
durable in the Raft log and applied to state.db, and an entry is applied
exactly once, so after any crash every acknowledged write is there, once.
"""

from __future__ import annotations

import os
import random
import signal
import struct

from twisted.internet.defer import DeferredList, DeferredSemaphore, inlineCallbacks
from twisted.internet.error import ProcessTerminated
from twisted.trial.unittest import TestCase

from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    decode_record_header,
    segment_file_name,
)
from stalwart.jmap.ids import encode_counter
from stalwart.store.blobs import blob_id_for
from tests.integration.server import admin_headers, http_client
from tests.integration.test_startup_errors import FailedStartMixin

ACCOUNT_WRITES = 100
"""Account creations in the burst; each costs an scrypt hash (tens of ms) before its proposal."""
BLOB_WRITES = 100
IN_FLIGHT_MAX = 32
"""Requests the load keeps open at once; about this many are cut by the kill."""

PASSWORD = "pw"


def _records(path: str) -> list[tuple[int, int, int]]:
    """(offset, payload length, index) of every record in a segment file."""
    with open(path, "rb") as f:
        data = f.read()
    found, offset = [], SEGMENT_HEADER_BYTES
    while offset + RECORD_HEADER_BYTES <= len(data):
        header = decode_record_header(data, offset)
        found.append((offset, header.length, header.index))
        offset += RECORD_HEADER_BYTES + header.length
    return found


def _segments(data_dir: str) -> list[str]:
    raft = os.path.join(data_dir, "raft")
    return [os.path.join(raft, n) for n in sorted(os.listdir(raft)) if n.endswith(".seg")]


class CrashTests(FailedStartMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def _create_owner(self, client, url, quota=100_000_000):
        _, body, _ = yield self.json_request(
            client, "POST", url + "/admin/accounts",
            {"name": "owner", "password": PASSWORD, "quota": quota}, headers=admin_headers(), expect=201)
        return body["account"]["id"]

    def _upload(self, client, url, account_id, data):
        return self.json_request(
            client, "POST", f"{url}/jmap/upload/{account_id}/", data, auth=("owner", PASSWORD),
            headers={"Content-Type": ["application/octet-stream"]})

    @inlineCallbacks
    def _download(self, client, url, account_id, blob_id):
        response = yield client.get(
            f"{url}/jmap/download/{account_id}/{blob_id}/b?accept=application/octet-stream",
            auth=("owner", PASSWORD))
        body = yield response.content()
        return response.code, body

    @inlineCallbacks
    def _accounts(self, client, url):
        _, body, _ = yield self.json_request(client, "GET", url + "/admin/accounts", headers=admin_headers(), expect=200)
        return {a["name"]: a for a in body["accounts"]}

    def assertDenseIds(self, accounts):
        """Account ids are exactly A1 .. An: no create skipped or applied twice."""
        ids = sorted(a["id"] for a in accounts.values())
        expected = sorted(encode_counter("A", n) for n in range(1, len(accounts) + 1))
        self.assertEqual(ids, expected)

    @inlineCallbacks
    def test_kill_during_write_burst(self):
        """
        SIGKILL while about 32 of 200 writes (account creations and uploads
        of distinct blobs) are in flight, once half are acknowledged.  After a
        restart: every acknowledged account exists with the id it was given;
        ids are A1..An without gap or duplicate; every acknowledged blob
        downloads with its bytes; the quota charge equals the sum of the sizes
        of the blobs present (acknowledged or not), each counted once; and the
        node takes new writes with the next id.
        """
        client = http_client()
        # Above the per-account limit on concurrent uploads, so that every
        # upload of the burst is a real write rather than a quick refusal.
        server = yield self.start_server(client=client, arguments=["--max-concurrent-requests=64"])
        owner_id = yield self._create_owner(client, server.url)

        rng = random.Random(20240611)
        blobs = [i.to_bytes(4, "big") + rng.randbytes(rng.randrange(200, 6000)) for i in range(BLOB_WRITES)]
        acknowledged_accounts, acknowledged_blobs = {}, {}
        semaphore = DeferredSemaphore(IN_FLIGHT_MAX)
        half = (ACCOUNT_WRITES + BLOB_WRITES) // 2
        killed = []

        def acknowledged(result, kind, key):
            code, body, _ = result
            if 200 <= code < 300:
                if kind == "account":
                    acknowledged_accounts[key] = body["account"]["id"]
                else:
                    acknowledged_blobs[body["blobId"]] = blobs[key]
            if not killed and len(acknowledged_accounts) + len(acknowledged_blobs) >= half:
                killed.append(True)
                server.signal(signal.SIGKILL)

        def account(name):
            body = {"name": name, "password": PASSWORD}
            return self.json_request(client, "POST", server.url + "/admin/accounts", body, headers=admin_headers())

        calls = []
        for i in range(max(ACCOUNT_WRITES, BLOB_WRITES)):
            if i < ACCOUNT_WRITES:
                name = f"c{i + 1:04d}"
                d = semaphore.run(account, name)
                calls.append(d.addCallback(acknowledged, "account", name))
            if i < BLOB_WRITES:
                d = semaphore.run(self._upload, client, server.url, owner_id, blobs[i])
                calls.append(d.addCallback(acknowledged, "blob", i))
        outcomes = yield DeferredList(calls, consumeErrors=True)
        reason = yield server.wait_exit(10)
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.signal, signal.SIGKILL, "the burst ended before the kill")
        failed = sum(1 for ok, _ in outcomes if not ok)
        self.assertTrue(failed >= 1, "no request was cut by the kill")
        self.assertTrue(acknowledged_accounts and acknowledged_blobs, (len(acknowledged_accounts), len(acknowledged_blobs)))

        again = yield self.start_server(data_dir=server.data_dir, client=client, name="restarted")
        accounts = yield self._accounts(client, again.url)
        for name, account_id in acknowledged_accounts.items():
            self.assertIn(name, accounts)
            self.assertEqual(accounts[name]["id"], account_id, name)
        self.assertDenseIds(accounts)

        downloads = yield DeferredList([
            semaphore.run(self._download, client, again.url, owner_id, blob_id_for(data)) for data in blobs
        ], fireOnOneErrback=True, consumeErrors=True)
        present_bytes = 0
        for i, (data, (_, (code, body))) in enumerate(zip(blobs, downloads)):
            if blob_id_for(data) in acknowledged_blobs:
                self.assertEqual(code, 200, f"acknowledged blob {i} is missing")
            if code == 200:
                self.assertTrue(body == data, f"blob {i} came back with other bytes")
                present_bytes += len(data)
            else:
                self.assertEqual(code, 404)
        self.assertEqual(accounts["owner"]["usedBytes"], present_bytes)

        _, created, _ = yield self.json_request(
            client, "POST", again.url + "/admin/accounts", {"name": "after", "password": PASSWORD},
            headers=admin_headers(), expect=201)
        self.assertEqual(created["account"]["id"], encode_counter("A", len(accounts) + 1))
        reason = yield again.stop()
        self.assertCleanStop(again, reason)

    @inlineCallbacks
    def _fill_and_stop(self, uploads):
        """A server with an owner and C{uploads} blobs, stopped cleanly; returns (data dir, blobs)."""
        client = http_client()
        server = yield self.start_server(client=client)
        owner_id = yield self._create_owner(client, server.url)
        blobs = [b"blob %d " % i + os.urandom(300) for i in range(uploads)]
        for data in blobs:
            yield self._upload(client, server.url, owner_id, data)
        reason = yield server.stop()
        self.assertCleanStop(server, reason)
        return server.data_dir, owner_id, blobs

    @inlineCallbacks
    def test_torn_tail_of_unacknowledged_entry(self):
        """
        A record cut short at the end of the last segment (what a crash in
        the middle of an append leaves: the entry was never acknowledged) is
        cut off at start with a warning; every acknowledged write is there and
        the node takes new writes.
        """
        data_dir, owner_id, blobs = yield self._fill_and_stop(5)
        last = _segments(data_dir)[-1]
        index = _records(last)[-1][2] + 1
        with open(last, "ab") as f:
            # A header promising 1000 payload bytes, and only 10 of them.
            f.write(struct.pack(">IIQQ", 1000, 0x12345678, 1, index) + b"x" * 10)
        client = http_client()
        server = yield self.start_server(data_dir=data_dir, client=client)
        self.assertIn("torn tail", server.log_text())
        accounts = yield self._accounts(client, server.url)
        self.assertEqual(accounts["owner"]["usedBytes"], sum(len(b) for b in blobs))
        for data in blobs:
            code, body = yield self._download(client, server.url, owner_id, blob_id_for(data))
            self.assertEqual((code, body == data), (200, True))
        code, _, _ = yield self._upload(client, server.url, owner_id, b"after the cut")
        self.assertEqual(code, 201)
        reason = yield server.stop()
        self.assertCleanStop(server, reason)

    @inlineCallbacks
    def test_truncated_applied_tail_refuses_start(self):
        """
        A few bytes cut off the last segment after a clean stop remove an
        entry that was acknowledged and applied: state.db is then ahead of
        the log, which a crash cannot cause (the entry was fsynced before it
        was applied).  The node refuses to start with one line naming the
        data directory, rather than reusing the lost index for a new entry.
        """
        data_dir, _, _ = yield self._fill_and_stop(3)
        last = _segments(data_dir)[-1]
        os.truncate(last, os.path.getsize(last) - 3)
        yield self.assertRefusedStart([], data_dir, "refusing to start", data_dir=data_dir)


    @inlineCallbacks
    def test_damage_in_the_middle_refuses_start(self):
        """
        One byte flipped in the payload of a record in the middle of the first
        segment (valid records follow it, so it is not a torn tail): the node
        exits non-zero with one line naming the segment file and the record's
        byte offset (DESIGN.md section 4: data is never skipped silently).
        """
        data_dir, _, _ = yield self._fill_and_stop(40)
        first = _segments(data_dir)[0]
        self.assertEqual(os.path.basename(first), segment_file_name(1))
        records = _records(first)
        offset, length, _ = records[len(records) // 2]
        with open(first, "r+b") as f:
            f.seek(offset + RECORD_HEADER_BYTES + length // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x40]))
        yield self.assertRefusedStart([], first, f"offset {offset}", data_dir=data_dir)
