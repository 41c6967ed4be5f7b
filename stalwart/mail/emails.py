# -*- test-case-name: tests.mail.test_emails -*-
"""
Storing Emails in an account (RFC 8621 sections 3 and 4): rows, mailbox
membership, keywords, threads and the full-text index, with the JMAP
changes each write causes.  Everything here runs inside the state
machine's transaction and is deterministic.

Threads (RFC 8621 3): a message joins the thread of any earlier message
it names in Message-ID, In-Reply-To or References, when their base
subjects (RFC 5256 2.1) agree.  When one message links two threads, they
merge into the older one; since threadId is immutable, the moved Emails
are destroyed and created again with new ids (RFC 8621 3).

Mailbox counts (RFC 8621 2: totalEmails, unreadEmails, totalThreads,
unreadThreads) are kept in C{mailbox_counts} by every write here, so that
Mailbox/get reads one row per Mailbox whatever the store's size.  Each
write names the Threads it touches; L{CountChange} adds up what those
Threads contribute to each Mailbox before and after the write and applies
the difference.  A Thread's contribution depends only on its own Emails
and on which Mailbox is the trash, so the sums stay exact; when the trash
changes, the Mailbox methods rebuild the account's counts.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from stalwart.store.changes import CREATED, DESTROYED, UPDATED, record_change
from stalwart.store.objects import next_object_id

__all__ = [
    "EMAIL",
    "THREAD",
    "MAILBOX",
    "base_subject",
    "add_email",
    "destroy_email",
    "set_keywords",
    "set_mailboxes",
    "email_rows",
    "mailbox_ids_of",
    "keywords_of",
    "thread_email_ids",
    "normalise_keyword",
    "is_keyword",
    "trash_id",
    "CountChange",
    "stored_counts",
]

EMAIL, THREAD, MAILBOX = "Email", "Thread", "Mailbox"

#: Text indexed per message at most: bounds the index and the apply time.
INDEXED_CHARS_MAX = 1_000_000

_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|antw)\s*(?:\[\d+\])?\s*:|\[[^\]]*\])\s*", re.IGNORECASE)
_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_KEYWORD = re.compile(r"[\x21-\x7e]{1,255}")
_KEYWORD_FORBIDDEN = set('()]{%*"\\')


def base_subject(subject: str) -> str:
    """RFC 5256 2.1, simplified: without Re:/Fwd:/[list] prefixes and (fwd) trailers, case folded."""
    text = " ".join(subject.split())
    while True:
        stripped = _TRAILER.sub("", _PREFIX.sub("", text, count=1))
        if stripped == text:
            return text.casefold()
        text = stripped


def is_keyword(value: object) -> bool:
    """RFC 8621 4.1.1: 1-255 printable ASCII characters, none of ( ) { ] % * " \\."""
    return isinstance(value, str) and bool(_KEYWORD.fullmatch(value)) and not (set(value) & _KEYWORD_FORBIDDEN)


def normalise_keyword(keyword: str) -> str:
    """Keywords are case-insensitive and returned lower case (RFC 8621 4.1.1)."""
    return keyword.lower()


def _sort_text(addresses: Sequence[Mapping]) -> str:
    """The 'from'/'to' sort key of RFC 8621 4.4.2: first address's name, else its email."""
    if not addresses:
        return ""
    first = addresses[0]
    return ((first.get("name") or first.get("email") or "")).casefold()


# -- threads ---------------------------------------------------------------


def _thread_for(tx: sqlite3.Connection, account_id: str, keys: Sequence[str], subject_key: str) -> List[str]:
    """Existing threads this message belongs to, oldest first."""
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    rows = tx.execute(
        f"SELECT DISTINCT thread_id FROM thread_keys WHERE account_id = ? AND key IN ({marks})",
        (account_id, *keys),
    ).fetchall()
    threads = []
    for (thread_id,) in rows:
        agrees = tx.execute(
            "SELECT 1 FROM emails WHERE account_id = ? AND thread_id = ? AND base_subject = ? LIMIT 1",
            (account_id, thread_id, subject_key),
        ).fetchone()
        if agrees:
            threads.append(thread_id)
    return sorted(threads, key=lambda t: (len(t), t))


def _merge_threads(tx: sqlite3.Connection, account_id: str, keep: str, others: Sequence[str]) -> None:
    for other in others:
        tx.execute(
            "UPDATE thread_keys SET thread_id = ? WHERE account_id = ? AND thread_id = ?", (keep, account_id, other)
        )
        moved = [r[0] for r in tx.execute(
            "SELECT id FROM emails WHERE account_id = ? AND thread_id = ? ORDER BY rowid", (account_id, other)
        )]
        for old_id in moved:
            new_id = next_object_id(tx, account_id, "M")
            # Mailbox and keyword rows follow (ON UPDATE CASCADE).
            tx.execute("UPDATE emails SET id = ?, thread_id = ? WHERE account_id = ? AND id = ?",
                       (new_id, keep, account_id, old_id))
            record_change(tx, account_id, EMAIL, old_id, DESTROYED)
            record_change(tx, account_id, EMAIL, new_id, CREATED)
        record_change(tx, account_id, THREAD, other, DESTROYED)


# -- counts ------------------------------------------------------------------

_THREAD_ROWS = """
    SELECT m.mailbox_id, NOT EXISTS (SELECT 1 FROM email_keywords k WHERE k.account_id = e.account_id
        AND k.email_id = e.id AND k.keyword IN ('$seen', '$draft'))
    FROM emails e CROSS JOIN email_mailboxes m INDEXED BY email_mailboxes_by_email
        ON m.account_id = e.account_id AND m.email_id = e.id
    WHERE e.account_id = ? AND e.thread_id = ?
"""
# The plan is fixed: the Thread's Emails by emails_by_thread first (CROSS
# JOIN keeps the order), then each one's Mailboxes.  Left to itself, SQLite
# (without ANALYZE statistics) scans every mailbox row of the account.


def trash_id(conn: sqlite3.Connection, account_id: str) -> str:
    """The id of the account's Mailbox with the trash role, or C{""}."""
    row = conn.execute(
        "SELECT id FROM objects WHERE account_id = ? AND type = ? AND json_extract(data, '$.role') = 'trash'",
        (account_id, MAILBOX),
    ).fetchone()
    return row[0] if row else ""


def _contributions(tx: sqlite3.Connection, account_id: str, thread_ids: Iterable[str], trash: str) -> Dict[str, List[int]]:
    """
    What C{thread_ids} add to each Mailbox's [totalEmails, unreadEmails,
    totalThreads, unreadThreads].  An Email is unread without $seen and
    $draft.  A Thread is unread for a Mailbox holding one of its Emails
    when one of its unread Emails is in a Mailbox other than the trash;
    for the trash, when one of its unread Emails is in the trash (the
    RFC 8621 2 "quality implementation").
    """
    sums: Dict[str, List[int]] = {}
    for thread_id in sorted(set(thread_ids)):
        per_mailbox: Dict[str, List[int]] = {}
        unread_outside = unread_in_trash = False
        for mailbox_id, unread in tx.execute(_THREAD_ROWS, (account_id, thread_id)):
            counts = per_mailbox.setdefault(mailbox_id, [0, 0])
            counts[0] += 1
            counts[1] += unread
            if unread:
                if mailbox_id == trash:
                    unread_in_trash = True
                else:
                    unread_outside = True
        for mailbox_id, (total, unread) in per_mailbox.items():
            unread_thread = unread_in_trash if mailbox_id == trash else unread_outside
            sums_of = sums.setdefault(mailbox_id, [0, 0, 0, 0])
            sums_of[0] += total
            sums_of[1] += unread
            sums_of[2] += 1
            sums_of[3] += int(unread_thread)
    return sums


class CountChange:
    """
    Keeps C{mailbox_counts} right across one write touching some Threads:
    made before the write, L{done} after it.
    """

    def __init__(self, tx: sqlite3.Connection, account_id: str, thread_ids: Iterable[str]) -> None:
        self._tx = tx
        self._account = account_id
        self._threads = set(thread_ids)
        self._trash = trash_id(tx, account_id)
        self._before = _contributions(tx, account_id, self._threads, self._trash)

    def done(self, more_thread_ids: Iterable[str] = ()) -> List[str]:
        """
        Apply the difference; C{more_thread_ids}: Threads the write created.
        Returns the Mailboxes whose counts changed.
        """
        after = _contributions(self._tx, self._account, self._threads | set(more_thread_ids), self._trash)
        changed = []
        for mailbox_id in sorted(set(self._before) | set(after)):
            old = self._before.get(mailbox_id, [0, 0, 0, 0])
            new = after.get(mailbox_id, [0, 0, 0, 0])
            delta = [n - o for n, o in zip(new, old)]
            if not any(delta):
                continue
            changed.append(mailbox_id)
            self._tx.execute(
                "INSERT INTO mailbox_counts (account_id, mailbox_id, total_emails, unread_emails, total_threads,"
                " unread_threads) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, mailbox_id) DO UPDATE SET"
                " total_emails = total_emails + excluded.total_emails,"
                " unread_emails = unread_emails + excluded.unread_emails,"
                " total_threads = total_threads + excluded.total_threads,"
                " unread_threads = unread_threads + excluded.unread_threads",
                (self._account, mailbox_id, *delta),
            )
        if changed:
            self._tx.execute("DELETE FROM mailbox_counts WHERE account_id = ? AND total_emails = 0", (self._account,))
        return changed


def stored_counts(conn: sqlite3.Connection, account_id: str) -> Dict[str, Tuple[int, int, int, int]]:
    """Mailbox id -> (totalEmails, unreadEmails, totalThreads, unreadThreads), for Mailboxes holding Emails."""
    return {r[0]: tuple(r[1:]) for r in conn.execute(
        "SELECT mailbox_id, total_emails, unread_emails, total_threads, unread_threads FROM mailbox_counts"
        " WHERE account_id = ?", (account_id,))}


def _thread_of(tx: sqlite3.Connection, account_id: str, email_id: str) -> Optional[str]:
    row = tx.execute("SELECT thread_id FROM emails WHERE account_id = ? AND id = ?", (account_id, email_id)).fetchone()
    return row[0] if row else None


# -- writing ---------------------------------------------------------------


def add_email(
    tx: sqlite3.Connection,
    account_id: str,
    blob_id: str,
    parsed,
    mailbox_ids: Iterable[str],
    keywords: Iterable[str],
    received_at: str,
) -> Dict[str, object]:
    """
    Store a parsed message as a new Email.  Returns {"id", "blobId",
    "threadId", "size"}; the caller has checked the mailboxes exist.
    """
    email_id = next_object_id(tx, account_id, "M")
    subject = parsed.subject()
    subject_key = base_subject(subject)
    keys = list(dict.fromkeys(parsed.message_ids() + parsed.in_reply_to() + parsed.references()))
    threads = _thread_for(tx, account_id, keys, subject_key)
    counting = CountChange(tx, account_id, threads)
    if threads:
        thread_id, created_thread = threads[0], False
        _merge_threads(tx, account_id, thread_id, threads[1:])
    else:
        thread_id, created_thread = next_object_id(tx, account_id, "T"), True
    tx.executemany(
        "INSERT OR REPLACE INTO thread_keys (account_id, key, thread_id) VALUES (?, ?, ?)",
        [(account_id, key, thread_id) for key in keys],
    )
    fields = parsed.search_fields()
    from_list = _addresses(parsed, "From")
    to_list = _addresses(parsed, "To")
    cursor = tx.execute(
        "INSERT INTO emails (account_id, id, blob_id, thread_id, size, received_at, sent_at, subject,"
        " base_subject, from_text, to_text, has_attachment, preview)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (account_id, email_id, blob_id, thread_id, parsed.size, received_at, parsed.sent_at(), subject,
         subject_key, _sort_text(from_list), _sort_text(to_list), int(parsed.has_attachment), parsed.preview),
    )
    rowid = cursor.lastrowid
    tx.execute("UPDATE emails SET summary = ? WHERE rowid = ?", (_summary(parsed, blob_id), rowid))
    header_text = "\n".join(f"{name}: {value}" for name, value in parsed.headers)
    budget = INDEXED_CHARS_MAX
    tx.execute(
        "INSERT INTO email_text (rowid, subject, sender, recipients, cc, bcc, body, headers)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (rowid, fields.get("subject", ""), fields.get("from", ""), fields.get("to", ""), fields.get("cc", ""),
         fields.get("bcc", ""), fields.get("body", "")[:budget], header_text[:budget]),
    )
    mailboxes = sorted(set(mailbox_ids))
    tx.executemany(
        "INSERT INTO email_mailboxes (account_id, mailbox_id, email_id) VALUES (?, ?, ?)",
        [(account_id, m, email_id) for m in mailboxes],
    )
    tx.executemany(
        "INSERT OR IGNORE INTO email_keywords (account_id, email_id, keyword) VALUES (?, ?, ?)",
        [(account_id, email_id, normalise_keyword(k)) for k in keywords],
    )
    record_change(tx, account_id, EMAIL, email_id, CREATED)
    record_change(tx, account_id, THREAD, thread_id, CREATED if created_thread else UPDATED)
    _mailboxes_changed(tx, account_id, counting.done([thread_id]))
    return {"id": email_id, "blobId": blob_id, "threadId": thread_id, "size": parsed.size}


def _addresses(parsed, header: str) -> List[Mapping]:
    from stalwart.mail.headers import as_addresses

    values = parsed.header_values(header)
    return (as_addresses(values[0]) or []) if values else []


def _mailboxes_changed(tx: sqlite3.Connection, account_id: str, mailbox_ids: Iterable[str]) -> None:
    """Counts of these mailboxes changed: their state moves (RFC 8621 2.2)."""
    for mailbox_id in sorted(set(mailbox_ids)):
        exists = tx.execute(
            "SELECT 1 FROM objects WHERE account_id = ? AND type = ? AND id = ?", (account_id, MAILBOX, mailbox_id)
        ).fetchone()
        if exists:
            record_change(tx, account_id, MAILBOX, mailbox_id, UPDATED)


def set_keywords(tx: sqlite3.Connection, account_id: str, email_id: str, keywords: Iterable[str]) -> bool:
    """Replace an Email's keywords; True if they changed."""
    new = {normalise_keyword(k) for k in keywords}
    old = set(keywords_of(tx, account_id, email_id))
    if new == old:
        return False
    counting = CountChange(tx, account_id, [_thread_of(tx, account_id, email_id)])
    tx.executemany("DELETE FROM email_keywords WHERE account_id = ? AND email_id = ? AND keyword = ?",
                   [(account_id, email_id, k) for k in old - new])
    tx.executemany("INSERT INTO email_keywords (account_id, email_id, keyword) VALUES (?, ?, ?)",
                   [(account_id, email_id, k) for k in new - old])
    # $seen or $draft: unread counts here and unreadThreads of the Thread's other Mailboxes.
    _mailboxes_changed(tx, account_id, counting.done())
    return True


def set_mailboxes(tx: sqlite3.Connection, account_id: str, email_id: str, mailbox_ids: Iterable[str]) -> bool:
    """Replace an Email's mailboxes; True if they changed."""
    new = set(mailbox_ids)
    old = set(mailbox_ids_of(tx, account_id, email_id))
    if new == old:
        return False
    counting = CountChange(tx, account_id, [_thread_of(tx, account_id, email_id)])
    tx.executemany("DELETE FROM email_mailboxes WHERE account_id = ? AND mailbox_id = ? AND email_id = ?",
                   [(account_id, m, email_id) for m in old - new])
    tx.executemany("INSERT INTO email_mailboxes (account_id, mailbox_id, email_id) VALUES (?, ?, ?)",
                   [(account_id, m, email_id) for m in new - old])
    _mailboxes_changed(tx, account_id, set(counting.done()) | (old ^ new))
    return True


def destroy_email(tx: sqlite3.Connection, account_id: str, email_id: str) -> bool:
    """Remove an Email; its thread goes when it was the last one.  False if unknown."""
    row = tx.execute(
        "SELECT rowid, thread_id FROM emails WHERE account_id = ? AND id = ?", (account_id, email_id)
    ).fetchone()
    if row is None:
        return False
    rowid, thread_id = row
    counting = CountChange(tx, account_id, [thread_id])
    tx.execute("DELETE FROM email_text WHERE rowid = ?", (rowid,))
    tx.execute("DELETE FROM emails WHERE rowid = ?", (rowid,))
    record_change(tx, account_id, EMAIL, email_id, DESTROYED)
    remaining = tx.execute(
        "SELECT 1 FROM emails WHERE account_id = ? AND thread_id = ? LIMIT 1", (account_id, thread_id)
    ).fetchone()
    if remaining:
        record_change(tx, account_id, THREAD, thread_id, UPDATED)
    else:
        tx.execute("DELETE FROM thread_keys WHERE account_id = ? AND thread_id = ?", (account_id, thread_id))
        record_change(tx, account_id, THREAD, thread_id, DESTROYED)
    _mailboxes_changed(tx, account_id, counting.done())
    return True


# -- reading ---------------------------------------------------------------

_ROW = ("id", "blob_id", "thread_id", "size", "received_at", "sent_at", "subject", "has_attachment", "preview", "summary")

#: Header properties kept in the row (RFC 8621 4.1.3): what a message list shows.
SUMMARY_PROPERTIES = ("messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo",
                      "subject", "sentAt")


def _summary(parsed, blob_id: str) -> str:
    from stalwart.mail.parse import email_properties

    return json.dumps(email_properties(parsed, parsed._raw, blob_id, SUMMARY_PROPERTIES), separators=(",", ":"))


def email_rows(conn: sqlite3.Connection, account_id: str, ids: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
    """Stored metadata of Emails by id (all when C{ids} is None); unknown ids are absent."""
    columns = ", ".join(_ROW)
    if ids is None:
        cursor = conn.execute(f"SELECT {columns} FROM emails WHERE account_id = ? ORDER BY rowid", (account_id,))
    else:
        marks = ",".join("?" * len(ids)) or "NULL"
        cursor = conn.execute(f"SELECT {columns} FROM emails WHERE account_id = ? AND id IN ({marks})",
                              (account_id, *ids))
    rows = {r[0]: dict(zip(_ROW, r)) for r in cursor}
    for row in rows.values():
        row["summary"] = json.loads(row["summary"])
        row["mailboxIds"], row["keywords"] = {}, {}
    # Two queries for all the rows, not two per row.
    found = list(rows)
    for start in range(0, len(found), 500):
        chunk = found[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for email_id, mailbox_id in conn.execute(
            f"SELECT email_id, mailbox_id FROM email_mailboxes WHERE account_id = ? AND email_id IN ({marks})"
            " ORDER BY mailbox_id", (account_id, *chunk)):
            rows[email_id]["mailboxIds"][mailbox_id] = True
        for email_id, keyword in conn.execute(
            f"SELECT email_id, keyword FROM email_keywords WHERE account_id = ? AND email_id IN ({marks})"
            " ORDER BY keyword", (account_id, *chunk)):
            rows[email_id]["keywords"][keyword] = True
    return rows


def mailbox_ids_of(conn: sqlite3.Connection, account_id: str, email_id: str) -> List[str]:
    return [r[0] for r in conn.execute(
        "SELECT mailbox_id FROM email_mailboxes WHERE account_id = ? AND email_id = ? ORDER BY mailbox_id",
        (account_id, email_id))]


def keywords_of(conn: sqlite3.Connection, account_id: str, email_id: str) -> List[str]:
    return [r[0] for r in conn.execute(
        "SELECT keyword FROM email_keywords WHERE account_id = ? AND email_id = ? ORDER BY keyword",
        (account_id, email_id))]


def thread_email_ids(conn: sqlite3.Connection, account_id: str, thread_ids: Sequence[str]) -> Dict[str, List[str]]:
    """Thread id -> its Email ids, oldest received first (RFC 8621 3.1)."""
    found: Dict[str, List[str]] = {}
    for thread_id in thread_ids:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM emails WHERE account_id = ? AND thread_id = ? ORDER BY received_at, rowid",
            (account_id, thread_id))]
        if ids:
            found[thread_id] = ids
    return found
