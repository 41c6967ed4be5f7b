# -*- test-case-name: tests.mail.test_delivery -*-
"""
Local delivery (RFC 2033, RFC 5321 4.4): the C{mail.deliver} command and
its apply function.

One LMTP transaction is one command, whatever its number of recipients
(DESIGN.md section 1).  Its body is the message exactly as received
(after dot-unstuffing, CRLF line ends); its arguments are the envelope,
the server-chosen time and the resolved recipients::

    {"sender": "bounce@example.net" | "",      # reverse-path; "" for <>
     "helo": "mx.example.net", "peer": "192.0.2.1",
     "host": "mail.example.com", "protocol": "LMTP" | "LMTPS",
     "time": 1790000000,                        # whole seconds, UTC
     "recipients": [{"rcpt": "bob+x@example.com", "account": "A2",
                     "mailbox": "<Mailbox id>"?}, ...]}

Applying it (deterministic, in the state machine's transaction):

  1. The stored message is a C{Return-Path} and a C{Received} header
     (RFC 5321 4.4; the Received C{id} is the log index, unique on every
     node) followed by the original bytes unchanged.  It is written as ONE
     content-addressed blob, once, whatever the number of recipients.
  2. For each recipient, in order: an account delivered to already in this
     command, or within L{DUPLICATE_WINDOW_SECONDS} before the command's
     time with the same Message-ID (an MTA retrying after a lost reply), is
     C{duplicate}: acknowledged, not stored again.  Otherwise the blob is
     charged to the account's quota (C{overQuota} for that recipient only)
     and an Email is added to the recipient's C{mailbox} when it names one
     of the account's Mailboxes, else to its Inbox (role C{inbox}).
  3. The result has one outcome per recipient, in order
     (L{DELIVERED}, L{DUPLICATE}, L{OVER_QUOTA}, L{UNKNOWN}, L{NO_MAILBOX}),
     which the LMTP server turns into one reply each.

Duplicates are remembered in C{delivered_messages}; rows older than the
window are pruned for an account whenever mail is delivered to it.
"""

from __future__ import annotations

import datetime
import email.utils
import sqlite3
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import attrs

from stalwart.jmap.methods.blob import add_blob
from stalwart.mail.emails import add_email
from stalwart.store.apply import ApplyContext
from stalwart.store.blobs import blob_id_for
from stalwart.store.commands import Command
from stalwart.store.refusal import Refused

__all__ = [
    "DELIVER_COMMAND",
    "DELIVERY_HANDLERS",
    "DELIVERY_SCHEMA",
    "DUPLICATE_WINDOW_SECONDS",
    "Envelope",
    "build_delivery",
    "trace_headers",
    "apply_delivery",
    "make_delivery_handler",
    "DELIVERED",
    "DUPLICATE",
    "OVER_QUOTA",
    "UNKNOWN",
    "NO_MAILBOX",
]

DELIVER_COMMAND = "mail.deliver"

#: How long a Message-ID delivered to an account suppresses a second copy,
#: in seconds of the commands' own times.  MTAs retry a transaction whose
#: reply was lost within minutes to hours; a day covers that without
#: hiding a genuine re-send for long.
DUPLICATE_WINDOW_SECONDS = 24 * 3600

#: Outcomes, one per recipient.
DELIVERED, DUPLICATE, OVER_QUOTA, UNKNOWN, NO_MAILBOX = (
    "delivered", "duplicate", "overQuota", "unknownRecipient", "noMailbox",
)

#: Longest HELO name or address copied into the trace headers.
TRACE_FIELD_CHARS_MAX = 255

#: The MIME type of a delivered message's blob.
MESSAGE_TYPE = "message/rfc822"

DELIVERY_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered_messages (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    email_id TEXT NOT NULL,
    PRIMARY KEY (account_id, message_id)
);
CREATE INDEX IF NOT EXISTS delivered_messages_by_time ON delivered_messages(account_id, delivered_at);
"""


@attrs.frozen
class Envelope:
    """
    What the LMTP session knows of a transaction besides the recipients.

    @ivar sender: the reverse-path without angle brackets; C{""} for the
        null sender C{<>} (bounces, auto-replies).
    @ivar helo: the client's LHLO argument.
    @ivar peer: the client's IP address.
    @ivar host: this server's name, for the Received header.
    @ivar protocol: C{"LMTP"}, or C{"LMTPS"} after STARTTLS (RFC 3848).
    """

    sender: str
    helo: str
    peer: str
    host: str
    protocol: str = "LMTP"


def build_delivery(envelope: Envelope, recipients: Sequence[Mapping[str, str]], message: bytes, now: float) -> Command:
    """
    The command delivering C{message} to C{recipients} (their
    L{stalwart.mail.recipients.Recipient.spec}s), at the time C{now}
    (seconds since the epoch).
    """
    assert recipients, "a delivery has at least one recipient"
    return Command(
        kind=DELIVER_COMMAND,
        args={
            "sender": envelope.sender,
            "helo": envelope.helo,
            "peer": envelope.peer,
            "host": envelope.host,
            "protocol": envelope.protocol,
            "time": int(now),
            "recipients": [dict(r) for r in recipients],
        },
        body=message,
    )


def _clean(text: str) -> str:
    """Text safe inside a header field: printable ASCII, bounded."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text[:TRACE_FIELD_CHARS_MAX]


def rfc5322_date(seconds: int) -> str:
    """A header date (RFC 5322 3.3) in UTC."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return email.utils.format_datetime(moment)


def utc_date(seconds: int) -> str:
    """A JMAP UTCDate (RFC 8620 1.4)."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def trace_headers(args: Mapping[str, Any], queue_id: str) -> bytes:
    """
    The C{Return-Path} and C{Received} fields (RFC 5321 4.4) put before
    the message, CRLF-terminated.  Several recipients share one copy, so
    the Received field has no C{for} clause.
    """
    sender = _clean(args["sender"]) if args["sender"] else ""
    helo = _clean(args["helo"]) or "unknown"
    peer = _clean(args["peer"])
    literal = f"[IPv6:{peer}]" if ":" in peer else f"[{peer}]"  # RFC 5321 4.1.3
    lines = [
        f"Return-Path: <{sender}>",
        f"Received: from {helo} ({literal})",
        f"\tby {_clean(args['host'])} (stalwart-jmap) with {_clean(args['protocol'])} id {queue_id};",
        f"\t{rfc5322_date(args['time'])}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _check_arguments(args: Mapping[str, Any]) -> List[Mapping[str, str]]:
    for name in ("sender", "helo", "peer", "host", "protocol"):
        if not isinstance(args.get(name), str):
            raise Refused("invalidArguments", f"mail.deliver: {name} must be a string")
    if not isinstance(args.get("time"), int) or isinstance(args.get("time"), bool):
        raise Refused("invalidArguments", "mail.deliver: time must be whole seconds")
    recipients = args.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise Refused("invalidArguments", "mail.deliver: recipients must be a non-empty list")
    for spec in recipients:
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("rcpt"), str)
            and isinstance(spec.get("account"), str)
            and isinstance(spec.get("mailbox", ""), str)
        ):
            raise Refused("invalidArguments", f"mail.deliver: bad recipient {spec!r}")
    return recipients


def _target_mailbox(tx: sqlite3.Connection, account: str, wanted: Optional[str]) -> Optional[str]:
    """The Mailbox named by the recipient spec if the account has it, else the Inbox."""
    if wanted:
        row = tx.execute(
            "SELECT id FROM objects WHERE account_id = ? AND type = 'Mailbox' AND id = ?", (account, wanted)
        ).fetchone()
        if row is not None:
            return row[0]
    row = tx.execute(
        "SELECT id FROM objects WHERE account_id = ? AND type = 'Mailbox'"
        " AND json_extract(data, '$.role') = 'inbox' ORDER BY id LIMIT 1",
        (account,),
    ).fetchone()
    return row[0] if row is not None else None


def _seen_before(tx: sqlite3.Connection, account: str, message_id: Optional[str], now: int) -> Optional[str]:
    """The Email id of this Message-ID delivered to the account within the window."""
    if message_id is None:
        return None
    row = tx.execute(
        "SELECT email_id FROM delivered_messages WHERE account_id = ? AND message_id = ? AND delivered_at > ?",
        (account, message_id, now - DUPLICATE_WINDOW_SECONDS),
    ).fetchone()
    return row[0] if row is not None else None


def _remember(tx: sqlite3.Connection, account: str, message_id: Optional[str], now: int, email_id: str) -> None:
    tx.execute(
        "DELETE FROM delivered_messages WHERE account_id = ? AND delivered_at <= ?",
        (account, now - DUPLICATE_WINDOW_SECONDS),
    )
    if message_id is not None:
        tx.execute(
            "INSERT OR REPLACE INTO delivered_messages (account_id, message_id, delivered_at, email_id)"
            " VALUES (?, ?, ?, ?)",
            (account, message_id, now, email_id),
        )


def make_delivery_handler(parse: Optional[Callable[[bytes], Any]] = None) -> Callable[[ApplyContext], Dict]:
    """
    The apply function of C{mail.deliver}.

    @param parse: C{parse_message(raw) -> ParsedMessage}; by default
        L{stalwart.mail.parse.parse_message}, imported when first needed.
    """

    def apply(ctx: ApplyContext) -> Dict[str, Any]:
        nonlocal parse
        if parse is None:
            from stalwart.mail.parse import parse_message

            parse = parse_message
        return _deliver(ctx, parse)

    return apply


def _deliver(ctx: ApplyContext, parse: Callable[[bytes], Any]) -> Dict[str, Any]:
    tx, args = ctx.tx, ctx.command.args
    recipients = _check_arguments(args)
    now = args["time"]
    received_at = utc_date(now)
    stored = trace_headers(args, str(ctx.index)) + ctx.command.body
    blob_id = blob_id_for(stored)
    parsed = parse(stored)
    ids = parsed.message_ids()
    message_id = ids[0] if ids else None
    done: Dict[str, Dict[str, Any]] = {}
    outcomes: List[Dict[str, Any]] = []
    written = False
    for spec in recipients:
        account, rcpt = spec["account"], spec["rcpt"]
        outcome: Dict[str, Any] = {"rcpt": rcpt, "accountId": account}
        outcomes.append(outcome)
        if account in done:
            outcome.update(status=DUPLICATE, emailId=done[account]["emailId"])
            continue
        if tx.execute("SELECT 1 FROM accounts WHERE id = ?", (account,)).fetchone() is None:
            outcome["status"] = UNKNOWN  # deleted between RCPT and this entry
            continue
        earlier = _seen_before(tx, account, message_id, now)
        if earlier is not None:
            outcome.update(status=DUPLICATE, emailId=earlier)
            done[account] = outcome
            continue
        mailbox = _target_mailbox(tx, account, spec.get("mailbox"))
        if mailbox is None:
            outcome["status"] = NO_MAILBOX
            continue
        try:
            add_blob(tx, account, blob_id, len(stored), MESSAGE_TYPE, received_at)
        except Refused as refusal:
            if refusal.code != "overQuota":
                raise
            outcome.update(status=OVER_QUOTA, detail=refusal.detail)
            continue
        if not written:
            # The file exists before the transaction that references it
            # commits (DESIGN.md section 4); once for every recipient.
            ctx.blobs.write(stored)
            written = True
        email = add_email(tx, account, blob_id, parsed, [mailbox], (), received_at)
        _remember(tx, account, message_id, now, email["id"])
        outcome.update(status=DELIVERED, emailId=email["id"], mailboxId=mailbox)
        done[account] = outcome
    return {"blobId": blob_id if written else None, "size": len(stored), "receivedAt": received_at,
            "recipients": outcomes}


#: The default handler, resolving the parser at first use.
apply_delivery = make_delivery_handler()

DELIVERY_HANDLERS = {DELIVER_COMMAND: apply_delivery}
