"""
Tests for L{stalwart.mail.delivery}: the C{mail.deliver} command applied
in a transaction, as the state machine does on every node.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.delivery import (
    DELIVER_COMMAND, DELIVERY_HANDLERS, DELIVERY_SCHEMA, DUPLICATE_WINDOW_SECONDS, Envelope,
    build_delivery, make_delivery_handler, trace_headers,
)
from stalwart.mail.parse import parse_message
from stalwart.mail.schema import MAIL_SCHEMA
from stalwart.store import accounts
from stalwart.store.apply import ApplyContext
from stalwart.store.blobs import BlobStore
from stalwart.store.commands import decode_command, encode_command
from stalwart.store.objects import save_object
from stalwart.store.refusal import Refused
from stalwart.store.schema import connect, create_schema

NOW = 1_790_000_000
MESSAGE = (
    b"From: Alice <alice@example.net>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"\r\n"
    b"Body line one.\r\n"
    b"..leading dot kept once\r\n"
)
ENVELOPE = Envelope(sender="alice@example.net", helo="mx.example.net", peer="192.0.2.7", host="mail.example.com")


class CountingBlobs(BlobStore):
    """A blob store that counts the files it is asked to write."""

    def __init__(self, directory):
        super().__init__(directory)
        self.writes = []

    def write(self, data):
        self.writes.append(data)
        return super().write(data)


class DeliveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.conn = connect(os.path.join(directory, "state.db"))
        create_schema(self.conn)
        self.conn.executescript(MAIL_SCHEMA + DELIVERY_SCHEMA)
        self.addCleanup(self.conn.close)
        self.blobs = CountingBlobs(os.path.join(directory, "blobs"))
        self.index = 100
        self.apply = make_delivery_handler(parse_message)

    def account(self, name, quota=None, inbox=True):
        account = accounts.create_account(self.conn, {
            "name": name, "password": "h", "now": "2026-01-01T00:00:00Z",
            "emails": [f"{name}@example.com"], "quota": quota,
        })["id"]
        if inbox:
            save_object(self.conn, account, "Mailbox", "B1", {"name": "Inbox", "role": "inbox"})
            save_object(self.conn, account, "Mailbox", "B2", {"name": "Lists", "role": None})
        return account

    def deliver(self, recipients, message=MESSAGE, now=NOW, envelope=ENVELOPE):
        specs = [r if isinstance(r, dict) else {"rcpt": f"{r}@x", "account": r} for r in recipients]
        command = decode_command(encode_command(build_delivery(envelope, specs, message, now)))
        self.index += 1
        return self.apply(ApplyContext(tx=self.conn, blobs=self.blobs, index=self.index, command=command))

    def statuses(self, result):
        return [r["status"] for r in result["recipients"]]

    def emails(self, account):
        return self.conn.execute(
            "SELECT e.id, e.blob_id, m.mailbox_id, e.received_at FROM emails e JOIN email_mailboxes m"
            " ON m.account_id = e.account_id AND m.email_id = e.id WHERE e.account_id = ?",
            (account,),
        ).fetchall()

    def test_handlers_exported(self) -> None:
        """The state machine finds the handler under the command's kind."""
        self.assertEqual(list(DELIVERY_HANDLERS), [DELIVER_COMMAND])
        self.assertEqual(DELIVER_COMMAND, "mail.deliver")

    def test_one_blob_for_many_recipients(self) -> None:
        """Three recipients: one blob file written once, three Emails in three Inboxes."""
        accounts_ = [self.account(n) for n in ("a", "b", "c")]
        result = self.deliver(accounts_)
        self.assertEqual(self.statuses(result), ["delivered"] * 3)
        self.assertEqual(len(self.blobs.writes), 1)
        for account in accounts_:
            ((email_id, blob_id, mailbox, received_at),) = self.emails(account)
            self.assertEqual((blob_id, mailbox, received_at), (result["blobId"], "B1", "2026-09-21T14:13:20Z"))
        self.assertEqual(result["receivedAt"], "2026-09-21T14:13:20Z")

    def test_stored_bytes(self) -> None:
        """The blob is Return-Path + Received, then the original bytes exactly."""
        self.account("a")
        result = self.deliver(["A1"])
        stored = self.blobs.read(result["blobId"])
        self.assertEqual(stored, self.blobs.writes[0])
        self.assertTrue(stored.endswith(b"\r\n" + MESSAGE) or stored.endswith(MESSAGE))
        trace = stored[: len(stored) - len(MESSAGE)]
        self.assertEqual(
            trace,
            b"Return-Path: <alice@example.net>\r\n"
            b"Received: from mx.example.net ([192.0.2.7])\r\n"
            b"\tby mail.example.com (stalwart-jmap) with LMTP id 101;\r\n"
            b"\tMon, 21 Sep 2026 14:13:20 +0000\r\n",
        )
        self.assertEqual(result["size"], len(stored))

    def test_null_sender_and_hostile_helo(self) -> None:
        """The null sender gives Return-Path: <>; control characters never reach the header."""
        args = {"sender": "", "helo": "evil\rX-Injected: 1", "peer": "::1", "host": "h", "protocol": "LMTPS",
                "time": NOW}
        trace = trace_headers(args, "7")
        self.assertTrue(trace.startswith(b"Return-Path: <>\r\nReceived: from evil?X-Injected: 1 ([IPv6:::1])\r\n"))
        self.assertEqual(trace.count(b"\r\n"), 4)
        self.assertIn(b"with LMTPS id 7;", trace)

    def test_quota_per_recipient(self) -> None:
        """An account over quota refuses its copy; the others get theirs, charged once each."""
        small = self.account("small", quota=10)
        big = self.account("big", quota=10_000)
        result = self.deliver([small, big])
        self.assertEqual(self.statuses(result), ["overQuota", "delivered"])
        self.assertEqual(self.emails(small), [])
        self.assertEqual(len(self.emails(big)), 1)
        used = dict(self.conn.execute("SELECT id, used_bytes FROM accounts"))
        self.assertEqual(used, {small: 0, big: result["size"]})

    def test_nothing_written_when_nobody_takes_it(self) -> None:
        """When every recipient refuses, no blob file is written."""
        small = self.account("small", quota=10)
        result = self.deliver([small])
        self.assertEqual(self.statuses(result), ["overQuota"])
        self.assertEqual(self.blobs.writes, [])
        self.assertIsNone(result["blobId"])

    def test_duplicate_within_window(self) -> None:
        """
        The same Message-ID to the same account within the window (an MTA
        retry after a lost reply) is acknowledged, not stored again; after
        the window it is a new delivery.
        """
        a = self.account("a")
        first = self.deliver([a])
        again = self.deliver([a], now=NOW + DUPLICATE_WINDOW_SECONDS - 1)
        self.assertEqual(self.statuses(again), ["duplicate"])
        self.assertEqual(again["recipients"][0]["emailId"], first["recipients"][0]["emailId"])
        self.assertEqual(len(self.emails(a)), 1)
        later = self.deliver([a], now=NOW + 2 * DUPLICATE_WINDOW_SECONDS)
        self.assertEqual(self.statuses(later), ["delivered"])
        self.assertEqual(len(self.emails(a)), 2)

    def test_duplicate_is_per_account(self) -> None:
        """A message already delivered to one account still reaches another."""
        a, b = self.account("a"), self.account("b")
        self.deliver([a])
        self.assertEqual(self.statuses(self.deliver([a, b])), ["duplicate", "delivered"])

    def test_same_account_twice_in_one_delivery(self) -> None:
        """Two RCPTs of one account (user@ and user+tag@) store one copy, even without Message-ID."""
        a = self.account("a")
        message = b"Subject: no id\r\n\r\nhi\r\n"
        result = self.deliver([{"rcpt": "a@example.com", "account": a}, {"rcpt": "a+x@example.com", "account": a}],
                              message=message)
        self.assertEqual(self.statuses(result), ["delivered", "duplicate"])
        self.assertEqual(len(self.emails(a)), 1)
        # Without a Message-ID, a second transaction is a new message.
        self.assertEqual(self.statuses(self.deliver([a], message=message)), ["delivered"])

    def test_old_entries_pruned(self) -> None:
        """Remembered Message-IDs older than the window are deleted when the account gets mail."""
        a = self.account("a")
        self.deliver([a])
        self.deliver([a], message=MESSAGE.replace(b"m1@", b"m2@"), now=NOW + DUPLICATE_WINDOW_SECONDS + 5)
        rows = self.conn.execute("SELECT message_id FROM delivered_messages").fetchall()
        self.assertEqual(rows, [("m2@example.net",)])

    def test_mailbox_in_spec(self) -> None:
        """A recipient spec naming one of the account's Mailboxes delivers there; an unknown one means the Inbox."""
        a, b = self.account("a"), self.account("b")
        self.deliver([{"rcpt": "a", "account": a, "mailbox": "B2"}, {"rcpt": "b", "account": b, "mailbox": "B9"}])
        self.assertEqual(self.emails(a)[0][2], "B2")
        self.assertEqual(self.emails(b)[0][2], "B1")

    def test_unknown_account_and_no_inbox(self) -> None:
        """A deleted account or one without an Inbox fails for itself only."""
        a = self.account("a")
        bare = self.account("bare", inbox=False)
        result = self.deliver([a, "A99", bare])
        self.assertEqual(self.statuses(result), ["delivered", "unknownRecipient", "noMailbox"])

    def test_changes_recorded(self) -> None:
        """Delivery records the Email's creation and moves the Mailbox state, which push listeners see."""
        a = self.account("a")
        email_id = self.deliver([a])["recipients"][0]["emailId"]
        changed = set(self.conn.execute("SELECT type, id FROM changes WHERE account_id = ?", (a,)))
        self.assertIn(("Email", email_id), changed)
        states = dict(self.conn.execute("SELECT type, modseq FROM states WHERE account_id = ?", (a,)))
        self.assertEqual(sorted(states), ["Email", "Mailbox", "Thread"])

    def test_bad_arguments_refused(self) -> None:
        """A malformed command (a bug of the proposer) is refused as a whole."""
        from stalwart.store.commands import Command

        command = Command(kind=DELIVER_COMMAND, args={"sender": "", "recipients": []}, body=b"x")
        with self.assertRaises(Refused) as caught:
            self.apply(ApplyContext(tx=self.conn, blobs=self.blobs, index=1, command=command))
        self.assertEqual(caught.exception.code, "invalidArguments")
