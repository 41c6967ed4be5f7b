# -*- test-case-name: tests.mail.test_submission -*-
"""
The outbox: sends committed EmailSubmissions, on the leader only
(RFC 8621 7.5; DESIGN.md section 1: a send is an effect outside the
state, so exactly one node does it, after the commit).

For each due row of C{submission_queue} the leader, in this order:

  1. proposes C{mail.submission.claim}; once applied, a cancel is
     C{cannotUnsend}, and a row canceled before is not sent;
  2. sends the claimed message (Bcc removed) through the relay;
  3. proposes C{mail.submission.outcome} with each recipient's reply.

It looks for due rows when it becomes leader (its term's no-op entry is
applied), when an EmailSubmission/set is applied, and every
C{scan_seconds} (retries).  A row in flight here is never sent twice by
this leader.

At-least-once edge: a leader that crashes or is deposed between 2 and 3
leaves the row claimed without an outcome, and the next leader sends it
again.  Both copies carry the same Message-ID (it is in the stored
message), so receiving servers and clients that suppress duplicates by
Message-ID (this server's own delivery does, for a day) show it once.
Recording the claim before sending makes the window that small: a
submission is never lost, and never sent after a successful cancel.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from stalwart.cluster.raft.messages import ENTRY_NOOP
from stalwart.jmap.context import WRITE_COMMAND
from stalwart.mail.relay import RETRY_SECONDS, delivery_outcome, outgoing_message
from stalwart.mail.submission import CLAIM_COMMAND, OUTCOME_COMMAND, due_submissions
from stalwart.store.commands import Command, command_kind, decode_command

__all__ = ["Outbox", "OutboxService"]


class Outbox:
    """
    @param driver: has C{on_applied(listener)} and C{is_leader}.
    @param propose: C{propose(Command) -> Deferred} of the applied result.
    @param reader: the store reader (C{run(f, *args)}).
    @param blobs: the blob store (C{read(blob_id)}).
    @param relay: has C{send(mail_from, rcpts, message) -> Deferred} of
        C{{rcpt: (code, text)}}.
    """

    log = Logger()

    def __init__(self, clock, driver, propose: Callable, reader, blobs, relay, scan_seconds: float = 30.0,
                 retry_seconds=RETRY_SECONDS) -> None:
        self._clock, self._driver, self._propose = clock, driver, propose
        self._reader, self._blobs, self._relay = reader, blobs, relay
        self._scan_seconds, self._retry_seconds = scan_seconds, retry_seconds
        self._in_flight: Set[Tuple[str, str]] = set()
        self._loop: Optional[LoopingCall] = None
        self.running = False

    def start(self) -> None:
        self.running = True
        self._driver.on_applied(self.applied)
        self._loop = LoopingCall(self.scan)
        self._loop.clock = self._clock
        self._loop.start(self._scan_seconds, now=False)

    def stop(self) -> None:
        # The driver has no way to remove a listener: it is ignored instead.
        self.running = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def applied(self, entry, result: Any) -> None:
        """The driver's listener: look for work after a takeover or a new submission."""
        if not self.running or not self._driver.is_leader:
            return
        if entry.kind == ENTRY_NOOP:
            self.scan()
        elif command_kind(entry.data) == WRITE_COMMAND and b"EmailSubmission/set" in entry.data:
            if decode_command(entry.data).args.get("method") == "EmailSubmission/set":
                self.scan()

    def scan(self) -> None:
        if not self.running or not self._driver.is_leader:
            return
        d = self._reader.run(due_submissions, self._clock.seconds())
        d.addCallback(self._send_all)
        d.addErrback(lambda f: self.log.failure("outbox scan failed", f))

    def _send_all(self, rows) -> None:
        for row in rows:
            key = (row["account"], row["id"])
            if key not in self._in_flight:
                self._in_flight.add(key)
                d = self._propose(Command(kind=CLAIM_COMMAND, args={"account": key[0], "id": key[1]}))
                d.addCallback(self._claimed)
                d.addErrback(lambda f, key=key: self.log.info(
                    "outbox: {id} not sent here: {error}", id=key[1], error=f.getErrorMessage()))
                d.addBoth(lambda _, key=key: self._in_flight.discard(key))

    def _claimed(self, claim):
        if not isinstance(claim, dict) or not claim.get("claimed") or not self._driver.is_leader:
            return None  # canceled, already done, or no longer ours to send
        d = self._reader.run(lambda conn: self._blobs.read(claim["blobId"]))
        d.addCallback(lambda raw: self._relay.send(claim["mailFrom"], claim["rcptTo"], outgoing_message(raw or b"")))
        d.addCallback(self._record, claim)
        return d

    def _record(self, replies, claim):
        statuses, retry, retry_at = delivery_outcome(
            replies, claim["attempts"], self._retry_seconds, self._clock.seconds())
        return self._propose(Command(kind=OUTCOME_COMMAND, args={
            "account": claim["accountId"], "id": claim["id"], "statuses": statuses,
            "retry": retry, "retryAt": retry_at}))


class OutboxService(Service):
    """
    Starts the outbox and the vacation auto-replies on a node, once its
    Raft driver exists (add it after the C{"raft"} service).
    """

    def __init__(self, node, relay, clock, autoreply_factory: Optional[Callable] = None) -> None:
        self._node, self._relay, self._clock = node, relay, clock
        self._autoreply_factory = autoreply_factory
        self.outbox: Optional[Outbox] = None
        self.autoreply = None

    def startService(self) -> None:
        node = self._node
        driver = node.raft.driver
        self.outbox = Outbox(self._clock, driver, node.propose, node.reader, node.blobs, self._relay)
        self.outbox.start()
        if self._autoreply_factory is not None:
            self.autoreply = self._autoreply_factory(self._clock, driver, node.propose, node.reader, self._relay)
            self.autoreply.start()
        super().startService()

    def stopService(self):
        super().stopService()
        for part in (self.outbox, self.autoreply):
            if part is not None:
                part.stop()
