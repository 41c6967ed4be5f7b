# -*- test-case-name: tests.mail.test_mail_scale -*-
"""
Tests that the Mailbox counts kept by L{stalwart.mail.emails} stay exact
(RFC 8621 2), and that Mailbox/get and Email/query read a bounded number
of rows whatever the number of Emails (the issue's "memory stays flat as
the store grows").  Rows are counted as they reach Python, through a
reader given to the request context, not timed.
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, List

import attrs
from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.authenticate import Principal
from stalwart.jmap.request import parse_request
from stalwart.mail.mailbox import COUNTS, mailbox_counts, rebuild_counts
from stalwart.store.schema import connect
from tests.mail.test_email_methods import USING, MailNode, message


class CountingConnection:
    """A sqlite3 connection that counts statements run and rows fetched."""

    def __init__(self, conn) -> None:
        self._conn = conn
        self.statements = 0
        self.rows = 0

    def execute(self, sql: str, parameters: Any = ()) -> "_CountingCursor":
        self.statements += 1
        return _CountingCursor(self, self._conn.execute(sql, parameters))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _CountingCursor:
    def __init__(self, owner: CountingConnection, cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    def __iter__(self):
        for row in self._cursor:
            self._owner.rows += 1
            yield row

    def fetchone(self):
        row = self._cursor.fetchone()
        self._owner.rows += row is not None
        return row

    def fetchall(self):
        rows = self._cursor.fetchall()
        self._owner.rows += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class CountingReader:
    """A reader whose functions get a L{CountingConnection}; totals in C{statements} and C{rows}."""

    def __init__(self, reader) -> None:
        self._reader = reader
        self.statements = self.rows = 0

    def run(self, fn, *args):
        def counted(conn, *args):
            counting = CountingConnection(conn)
            try:
                return fn(counting, *args)
            finally:
                self.statements += counting.statements
                self.rows += counting.rows

        return self._reader.run(counted, *args)


def _counts_of(mail: MailNode) -> Dict[str, tuple]:
    _, result = mail.call("Mailbox/get", {"ids": None, "properties": list(COUNTS)})
    return {m["id"]: tuple(m[c] for c in COUNTS) for m in result["list"]}


def _scanned(mail: MailNode) -> Dict[str, tuple]:
    scanned = mail.case.successResultOf(mail.live.node.reader.run(mailbox_counts, mail.account))
    _, result = mail.call("Mailbox/get", {"ids": None, "properties": ["id"]})
    return {m["id"]: tuple(scanned.get(m["id"], dict.fromkeys(COUNTS, 0))[c] for c in COUNTS)
            for m in result["list"]}


class KeptCountTests(SynchronousTestCase):
    """The kept counts equal the counts computed from the email tables."""

    def test_random_writes(self) -> None:
        """
        After every one of many random imports, keyword and mailbox
        changes, destroys (some merging or emptying Threads), trash role
        moves and Mailbox destroys with onDestroyRemoveEmails, Mailbox/get
        shows the counts a full scan computes, and the Mailbox state moved
        whenever a Mailbox's counts did.
        """
        seed = int(os.environ.get("STALWART_COUNT_SEED", "7"))
        rng = random.Random(seed)
        mail = MailNode(self)
        _, made = mail.call("Mailbox/set", {"create": {"w": {"name": "Work"}, "p": {"name": "Play"}}})
        boxes = [*mail.mailbox.values(), made["created"]["w"]["id"], made["created"]["p"]["id"]]
        emails: List[str] = []
        topics = ["Lunch", "Budget", "Party"]
        sent = 0
        for step in range(200):
            before_counts = _counts_of(mail)
            before_state = mail.call("Mailbox/get", {"ids": []})[1]["state"]
            choice = rng.random()
            if choice < 0.4 or not emails:
                sent += 1
                refs = "" if sent == 1 or rng.random() < 0.3 else " ".join(
                    f"<m{rng.randrange(1, sent)}@x>" for _ in range(rng.randint(1, 2)))
                raw = message(rng.choice(["", "Re: "]) + rng.choice(topics), message_id=f"m{sent}@x",
                              extra=f"References: {refs}" if refs else "")
                blob_id = mail.upload(raw)
                keywords = {k: True for k in rng.sample(["$seen", "$draft", "$flagged"], rng.randint(0, 2))}
                chosen = {b: True for b in rng.sample(boxes, rng.randint(1, 2))}
                _, result = mail.call("Email/import", {"emails": {"k": {
                    "blobId": blob_id, "mailboxIds": chosen, "keywords": keywords}}})
                emails = mail.query(limit=1000)
            elif choice < 0.6:
                mail.call("Email/set", {"update": {rng.choice(emails): {
                    f"keywords/{rng.choice(['$seen', '$draft'])}": rng.choice([True, None])}}})
            elif choice < 0.8:
                chosen = {b: True for b in rng.sample(boxes, rng.randint(1, min(3, len(boxes))))}
                mail.call("Email/set", {"update": {rng.choice(emails): {"mailboxIds": chosen}}})
            elif choice < 0.9:
                mail.call("Email/set", {"destroy": [rng.choice(emails)]})
                emails = mail.query(limit=1000)
            elif choice < 0.97:
                # Move the trash role to another Mailbox (or back).
                roles = {m["id"]: m["role"] for m in mail.call("Mailbox/get", {"ids": None})[1]["list"]}
                trash = next((i for i, r in roles.items() if r == "trash"), None)
                target = rng.choice([b for b in boxes if roles.get(b) is None])
                update = {target: {"role": "trash"}}
                if trash is not None:
                    update[trash] = {"role": None}
                mail.call("Mailbox/set", {"update": update})
            elif len(boxes) > 4:
                victim = rng.choice(boxes[1:])
                mail.call("Mailbox/set", {"destroy": [victim], "onDestroyRemoveEmails": True})
                boxes.remove(victim)
                emails = mail.query(limit=1000)
            after_counts = _counts_of(mail)
            self.assertEqual(after_counts, _scanned(mail), f"seed {seed}, step {step}")
            changed = {b for b in after_counts if after_counts[b] != before_counts.get(b)}
            if changed:
                _, moved = mail.call("Mailbox/changes", {"sinceState": before_state})
                self.assertLessEqual(changed, set(moved["updated"]) | set(moved["created"]),
                                     f"seed {seed}, step {step}")


class FlatReadTests(SynchronousTestCase):
    """
    Mailbox/get and Email/query in a Mailbox over 20,000 Emails read a
    bounded number of rows: the counts are kept, and the page is cut in SQL.
    """

    EMAILS = 20_000
    ROWS_MAX = 100
    STATEMENTS_MAX = 10

    def setUp(self) -> None:
        self.mail = MailNode(self)
        account = self.mail.account
        inbox, archive, trash = (self.mail.mailbox[r] for r in ("inbox", "archive", "trash"))
        # The rows are written directly, in one transaction, and the counts
        # rebuilt from them: the point here is the reads, not 20,000 log
        # entries (KeptCountTests checks the writes keep the counts).
        conn = connect(os.path.join(self.mail.live.config.data_dir, "state.db"))
        self.addCleanup(conn.close)
        emails, boxes, keywords = [], [], []
        self.inbox_ids: List[str] = []
        for n in range(self.EMAILS):
            email_id, thread_id = f"Mx{n}", f"Tx{n // 2}"  # two Emails per Thread
            received = "2026-%02d-%02dT%02d:%02d:00Z" % (1 + n // 2000, 1 + n // 80 % 25, n // 60 % 24, n % 60)
            emails.append((account, email_id, "G" + "0" * 64, thread_id, 1000 + n, received))
            box = inbox if n % 4 else (archive if n % 8 else trash)
            boxes.append((account, box, email_id))
            if n % 3:
                keywords.append((account, email_id, "$seen"))
            if box == inbox:
                self.inbox_ids.append(email_id)
        conn.execute("BEGIN")  # the connection is in autocommit mode
        conn.executemany("INSERT INTO emails (account_id, id, blob_id, thread_id, size, received_at)"
                         " VALUES (?, ?, ?, ?, ?, ?)", emails)
        conn.executemany("INSERT INTO email_mailboxes VALUES (?, ?, ?)", boxes)
        conn.executemany("INSERT INTO email_keywords VALUES (?, ?, ?)", keywords)
        rebuild_counts(conn, account)
        conn.execute("COMMIT")
        self.inbox = inbox
        # Newest first; equal times (none here) would keep arrival order.
        in_inbox = set(self.inbox_ids)
        self.newest_first = [e[1] for e in sorted(emails, key=lambda e: e[5], reverse=True) if e[1] in in_inbox]

    def counted(self, name: str, arguments: Dict):
        """Run one call with a counting reader: (response arguments, rows, statements)."""
        live = self.mail.live
        context = self.successResultOf(live.node.request_context(Principal(account_id=self.mail.account, name="bob")))
        reader = CountingReader(context.reader)
        context = attrs.evolve(context, reader=reader)
        body = parse_request(
            __import__("json").dumps({"using": USING, "methodCalls": [
                [name, {"accountId": self.mail.account, **arguments}, "c0"]]}).encode(),
            live.node.capability_uris(), live.config.max_calls_in_request)
        response = self.successResultOf(live.node.dispatcher.process(body, context))
        ((got, result, _),) = response["methodResponses"]
        self.assertIn(got, (name, "error"))
        return result, reader.rows, reader.statements

    def test_mailbox_get(self) -> None:
        """Mailbox/get reads the kept counts: a few rows per Mailbox, and the counts are exact."""
        result, rows, statements = self.counted("Mailbox/get", {"ids": None})
        counts = {m["id"]: tuple(m[c] for c in COUNTS) for m in result["list"]}
        self.assertEqual(counts[self.inbox][:2], (len(self.inbox_ids), sum(
            1 for n in range(self.EMAILS) if n % 4 and not n % 3)))
        self.assertEqual(counts, _scanned(self.mail))
        self.assertLessEqual(rows, self.ROWS_MAX)
        self.assertLessEqual(statements, self.STATEMENTS_MAX)

    def test_query_pages(self) -> None:
        """
        Email/query with inMailbox and the default sort reads about the
        page's rows, at the start, deep inside and from the end, with and
        without calculateTotal (a COUNT, not rows).
        """
        cases = [
            ({"position": 0, "limit": 50}, 0, 50),
            ({"position": 10_000, "limit": 50}, 10_000, 50),
            ({"position": -20, "limit": 50, "calculateTotal": True}, len(self.inbox_ids) - 20, 20),
            ({"position": 100_000, "limit": 50}, len(self.inbox_ids), 0),
        ]
        for arguments, start, size in cases:
            result, rows, statements = self.counted("Email/query", {"filter": {"inMailbox": self.inbox}, **arguments})
            self.assertEqual(result["position"], start, arguments)
            self.assertEqual(result["ids"], self.newest_first[start:start + size], arguments)
            if arguments.get("calculateTotal"):
                self.assertEqual(result["total"], len(self.inbox_ids))
            self.assertLessEqual(rows, self.ROWS_MAX, arguments)
            self.assertLessEqual(statements, self.STATEMENTS_MAX, arguments)

    def test_query_anchor(self) -> None:
        """An anchor is found by reading ids up to it, not the whole list; a missing one is anchorNotFound."""
        anchor = self.newest_first[30]
        result, rows, _ = self.counted("Email/query", {"filter": {"inMailbox": self.inbox}, "anchor": anchor,
                                                       "anchorOffset": -5, "limit": 10})
        self.assertEqual((result["position"], result["ids"]), (25, self.newest_first[25:35]))
        self.assertLessEqual(rows, self.ROWS_MAX)
        result, _, _ = self.counted("Email/query", {"filter": {"inMailbox": self.inbox}, "anchor": "Mnope"})
        self.assertEqual(result["type"], "anchorNotFound")
