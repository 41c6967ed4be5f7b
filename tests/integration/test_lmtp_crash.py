# -*- test-case-name: tests.integration.test_lmtp_crash -*-
"""
Crash safety of LMTP delivery (RFC 2033; issue 4; DESIGN.md sections 1
and 4): SIGKILL while several LMTP connections deliver distinct messages.

The promise under test: a 250 after the final dot means the message is
durable (its C{mail.deliver} entry is committed and applied), so after a
restart every acknowledged message is in the recipient's Inbox, exactly
once; and an MTA that retries the messages whose reply it never got (RFC
5321 4.5.4.1) does not make a second copy of any that made it in before
the kill (duplicate suppression by Message-ID).

The clients are the standard library's L{smtplib.LMTP}, each on its own
reactor-pool thread: a real MTA's view of the server, over TCP.
"""

from __future__ import annotations

import signal
import smtplib
import socket
import threading

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.integration.server import ServerTestMixin, admin_headers, free_port, http_client

CONNECTIONS = 6
"""Concurrent LMTP connections delivering when the kill comes."""
MESSAGES_PER_CONNECTION = 60
KILL_AFTER = 60
"""Acknowledged deliveries (of all connections) before the SIGKILL."""
LMTP_READY_SECONDS_MAX = 10.0
PASSWORD = "pw"
RECIPIENT = "carol@crash.example"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


def message(connection: int, n: int) -> tuple[str, bytes]:
    """A distinct small message: (Message-ID without brackets, bytes)."""
    message_id = f"c{connection}.n{n}@crash.example"
    body = "".join(f"Line {i} of message {n} on connection {connection}.\r\n" for i in range(20 + n % 40))
    raw = (
        f"From: Sender {connection} <s{connection}@example.org>\r\n"
        f"To: Carol <{RECIPIENT}>\r\n"
        f"Subject: crash test {connection}/{n}\r\n"
        f"Message-ID: <{message_id}>\r\n"
        f"Date: Tue, 11 Jun 2024 10:{n % 60:02d}:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body
    )
    return message_id, raw.encode()


class _Deliveries:
    """What the connections did, shared between their threads."""

    def __init__(self, kill) -> None:
        self.lock = threading.Lock()
        self.acknowledged: set[str] = set()
        self.attempted: dict[str, bytes] = {}
        self.refused: list = []
        self._kill, self._killed = kill, False

    def attempt(self, message_id: str, raw: bytes) -> None:
        with self.lock:
            self.attempted[message_id] = raw

    def done(self, message_id: str, code: int, reply: bytes) -> None:
        with self.lock:
            if code != 250:
                self.refused.append((message_id, code, reply))
                return
            self.acknowledged.add(message_id)
            if len(self.acknowledged) >= KILL_AFTER and not self._killed:
                self._killed = True
                reactor.callFromThread(self._kill)


def deliver_until_cut(port: int, connection: int, deliveries: _Deliveries) -> int:
    """
    On a thread: deliver this connection's messages one transaction each
    until the server goes away; returns how many were acknowledged.
    """
    count = 0
    try:
        client = smtplib.LMTP("127.0.0.1", port, timeout=20)
    except OSError:
        return count
    try:
        client.ehlo_or_helo_if_needed()
        for n in range(MESSAGES_PER_CONNECTION):
            message_id, raw = message(connection, n)
            client.mail(f"s{connection}@example.org")
            code, reply = client.rcpt(RECIPIENT)
            if code != 250:
                deliveries.done(message_id, code, reply)
                client.rset()
                continue
            deliveries.attempt(message_id, raw)
            code, reply = client.data(raw)
            deliveries.done(message_id, code, reply)
            count += code == 250
    except (smtplib.SMTPException, OSError):
        pass  # the kill: whatever was not answered 250 is unacknowledged
    finally:
        client.close()
    return count


def deliver_once(port: int, raw: bytes) -> tuple[int, bytes]:
    """On a thread: one delivery on a fresh connection, the final reply."""
    with smtplib.LMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("retry@example.org")
        code, reply = client.rcpt(RECIPIENT)
        if code != 250:
            return code, reply
        return client.data(raw)


class LmtpCrashTests(ServerTestMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def _wait_lmtp(self, server):
        """Poll the LMTP port with reactor timers until it accepts a connection."""
        deadline = reactor.seconds() + LMTP_READY_SECONDS_MAX
        while True:
            try:
                yield deferToThread(lambda: socket.create_connection(("127.0.0.1", server.lmtp_port), 2).close())
                return
            except OSError:
                if reactor.seconds() > deadline or not server.running:
                    raise AssertionError(f"LMTP not listening\n{server.describe()}")
            yield deferLater(reactor, 0.05, lambda: None)

    @inlineCallbacks
    def _start(self, client, data_dir=None):
        server = yield self.start_server(data_dir=data_dir, client=client, lmtp_port=free_port())
        yield self._wait_lmtp(server)
        return server

    @inlineCallbacks
    def _stored(self, client, url):
        """C{{Message-ID: count}} of the Emails in the account, read through JMAP."""
        auth = ("carol", PASSWORD)
        _, session, _ = yield self.json_request(client, "GET", url + "/.well-known/jmap", auth=auth, expect=200)
        account = next(iter(session["accounts"]))
        request = {"using": USING, "methodCalls": [
            ["Mailbox/get", {"accountId": account, "ids": None, "properties": ["role", "totalEmails"]}, "m"],
            ["Email/query", {"accountId": account, "limit": 1000}, "q"],
            ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": ["messageId", "subject", "mailboxIds"]}, "g"],
        ]}
        _, answer, _ = yield self.json_request(client, "POST", url + "/jmap/api", request, auth=auth, expect=200)
        (_, mailboxes, _), (_, query, _), (_, got, _) = answer["methodResponses"]
        [inbox] = [m for m in mailboxes["list"] if m["role"] == "inbox"]
        counts: dict[str, int] = {}
        for email in got["list"]:
            self.assertEqual(email["mailboxIds"], {inbox["id"]: True}, email)
            [message_id] = email["messageId"]
            counts[message_id] = counts.get(message_id, 0) + 1
        self.assertEqual(len(query["ids"]), len(got["list"]))
        self.assertEqual(inbox["totalEmails"], len(got["list"]), "Inbox count disagrees with Email/query")
        return counts

    @inlineCallbacks
    def test_kill_during_deliveries(self):
        """
        SIGKILL while six LMTP connections deliver distinct messages, once
        60 are acknowledged.  After a restart: every message acknowledged
        with 250 is in the Inbox exactly once (Email/query + Email/get by
        Message-ID), nothing else is there but messages whose DATA was sent,
        and the Inbox count agrees.  Then the MTA's retry of every
        unacknowledged message is answered 250 ("Already delivered" for those
        that made it in before the kill) and leaves each message there
        exactly once.
        """
        client = http_client()
        server = yield self._start(client)
        yield self.json_request(client, "POST", server.url + "/admin/accounts",
                                {"name": "carol", "password": PASSWORD, "emails": [RECIPIENT]},
                                headers=admin_headers(), expect=201)
        deliveries = _Deliveries(lambda: server.signal(signal.SIGKILL))
        counts = yield DeferredList(
            [deferToThread(deliver_until_cut, server.lmtp_port, c, deliveries) for c in range(CONNECTIONS)],
            fireOnOneErrback=True, consumeErrors=True)
        reason = yield server.wait_exit(10)
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.signal, signal.SIGKILL, "the deliveries ended before the kill")
        self.assertEqual(deliveries.refused, [])
        self.assertEqual(sum(c for _, c in counts), len(deliveries.acknowledged))
        self.assertTrue(len(deliveries.acknowledged) >= KILL_AFTER)
        unacknowledged = set(deliveries.attempted) - deliveries.acknowledged
        self.assertTrue(len(deliveries.attempted) < CONNECTIONS * MESSAGES_PER_CONNECTION,
                        "every message was delivered before the kill")

        again = yield self._start(client, data_dir=server.data_dir)
        stored = yield self._stored(client, again.url)
        for message_id in sorted(deliveries.acknowledged):
            self.assertEqual(stored.get(message_id), 1, f"acknowledged {message_id} stored {stored.get(message_id, 0)} times")
        self.assertEqual({k: v for k, v in stored.items() if v != 1}, {})
        self.assertEqual(set(stored) - set(deliveries.attempted), set(), "a message never sent is stored")

        # The MTA retries what it never saw acknowledged.
        retried = yield DeferredList(
            [deferToThread(deliver_once, again.lmtp_port, deliveries.attempted[m]) for m in sorted(unacknowledged)],
            fireOnOneErrback=True, consumeErrors=True)
        for message_id, (_, (code, reply)) in zip(sorted(unacknowledged), retried):
            self.assertEqual(code, 250, f"retry of {message_id}: {reply!r}")
            if message_id in stored:  # committed before the kill, its 250 lost with the connection
                self.assertIn(b"Already delivered", reply)
        stored = yield self._stored(client, again.url)
        self.assertEqual(stored, {m: 1 for m in deliveries.attempted})
        reason = yield again.stop()
        self.assertCleanStop(again, reason)
