# -*- test-case-name: tests.mail.test_autoreply -*-
"""
Vacation auto-replies (RFC 8621 section 8, following RFC 3834 and the
rules of RFC 5230 4.5-4.6) for mail delivered over LMTP.

The pure core, L{exclusion}, says why a delivered message must get no
reply: a null or automated sender (RFC 3834 2, 3.1.2), the account's own
address, C{Auto-Submitted} other than C{no} (5.1), mailing lists
(C{List-Id} or any C{List-*} field, RFC 2369 and 2919) or C{Precedence:
bulk/list/junk}, or a message not addressed to the account in To or Cc
(3.1.1).  L{build_reply} writes the reply (3.1.5, 3.1.7, 5.1).

"At most once per sender per period" is decided in the log: the leader
proposes C{mail.vacation.reply}, whose apply checks that the
VacationResponse is enabled at the delivery's time and that the sender
had no reply within the period, and records it.  Only if the applied
result says C{send} does the leader send, from the null reverse-path
(RFC 3834 3.3), through the relay.  Recording before sending makes the
reply at most once: a leader change in between loses that reply, which
is better than answering twice.

L{AutoReplier} is the shell: a listener on applied C{mail.deliver}
entries, acting on the leader only.
"""

from __future__ import annotations

import datetime
import email.utils
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, compat32
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from twisted.logger import Logger

from stalwart.mail.headers import as_addresses, as_message_ids
from stalwart.store.apply import ApplyContext
from stalwart.store.commands import Command, command_kind, decode_command
from stalwart.store.objects import load_object
from stalwart.store.refusal import Refused

__all__ = [
    "AUTOREPLY_COMMAND", "AUTOREPLY_HANDLERS", "AUTOREPLY_SCHEMA", "PERIOD_SECONDS",
    "exclusion", "build_reply", "apply_reply", "AutoReplier", "read_headers",
]

AUTOREPLY_COMMAND = "mail.vacation.reply"

#: One reply per sender per week: RFC 5230 4.6's default of 7 days.
PERIOD_SECONDS = 7 * 24 * 3600

#: Header block read to decide on a reply, at most (bytes).
HEADER_BYTES_MAX = 256 * 1024

AUTOREPLY_SCHEMA = """
CREATE TABLE IF NOT EXISTS vacation_replies (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    replied_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender)
);
"""

_AUTOMATED_LOCAL_PARTS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply")


def read_headers(raw: bytes) -> List[tuple]:
    """The (name, value) header fields of a message, values unfolded."""
    head = raw[:HEADER_BYTES_MAX]
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head[:end] if end >= 0 else head)
    return [(str(name), " ".join(str(value).split())) for name, value in parsed.items()]


def _local_part(address: str) -> str:
    local = address.rpartition("@")[0].lower()
    return local.split("+", 1)[0]


def _without_tag(address: str) -> str:
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def exclusion(sender: str, headers: Sequence[tuple], own_addresses: Iterable[str]) -> Optional[str]:
    """
    Why this message gets no auto-reply, or C{None} if it may get one.

    @param sender: the envelope reverse-path; C{""} for C{<>}.
    @param headers: its (name, value) header fields.
    @param own_addresses: the account's addresses, lower case.
    """
    own = {_without_tag(a) for a in own_addresses}
    if not sender:
        return "null sender"
    if _without_tag(sender) in own:
        return "own address"
    local = _local_part(sender)
    if local in _AUTOMATED_LOCAL_PARTS or local.startswith("owner-") or local.endswith(("-request", "-bounces")):
        return "automated sender"
    fields: Dict[str, List[str]] = {}
    for name, value in headers:
        fields.setdefault(name.lower(), []).append(value)
    for value in fields.get("auto-submitted", []):
        if value.split(";", 1)[0].strip().lower() != "no":
            return "auto-submitted"
    if any(name.startswith("list-") for name in fields):
        return "mailing list"
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in fields.get("precedence", [])):
        return "bulk"
    addressed = {_without_tag(a["email"]) for name in ("to", "cc") for v in fields.get(name, [])
                 for a in as_addresses(v) or [] if a.get("email")}
    if not addressed & own:
        return "not addressed in To or Cc"
    return None


def _seconds(date: Optional[str]) -> Optional[float]:
    if date is None:
        return None
    moment = datetime.datetime.fromisoformat(date[:-1]).replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def apply_reply(ctx: ApplyContext) -> Dict[str, Any]:
    """
    C{mail.vacation.reply {account, sender, time, period}}: whether the
    account answers C{sender} now (its VacationResponse is enabled at
    C{time} and the last reply is older than C{period} seconds); if so,
    records the reply and returns the texts to send.
    """
    args = ctx.command.args
    for name in ("account", "sender", "time", "period"):
        if name not in args:
            raise Refused("invalidArguments", f"{AUTOREPLY_COMMAND}: {name} is missing")
    account, sender, now, period = args["account"], args["sender"].lower(), args["time"], args["period"]
    tx = ctx.tx
    vacation = load_object(tx, account, "VacationResponse", "singleton")
    if not vacation or not vacation.get("isEnabled"):
        return {"send": False, "reason": "disabled"}
    start, end = _seconds(vacation.get("fromDate")), _seconds(vacation.get("toDate"))
    if (start is not None and now < start) or (end is not None and now >= end):
        return {"send": False, "reason": "outside fromDate and toDate"}
    row = tx.execute("SELECT replied_at FROM vacation_replies WHERE account_id = ? AND sender = ?",
                     (account, sender)).fetchone()
    if row is not None and now - row[0] < period:
        return {"send": False, "reason": "replied within the period"}
    tx.execute("INSERT OR REPLACE INTO vacation_replies (account_id, sender, replied_at) VALUES (?, ?, ?)",
               (account, sender, now))
    tx.execute("DELETE FROM vacation_replies WHERE account_id = ? AND replied_at <= ?", (account, now - period))
    return {"send": True, "index": ctx.index, "subject": vacation.get("subject"),
            "textBody": vacation.get("textBody"), "htmlBody": vacation.get("htmlBody")}


AUTOREPLY_HANDLERS = {AUTOREPLY_COMMAND: apply_reply}


def build_reply(from_address: str, to: str, headers: Sequence[tuple], reply: Mapping[str, Any], time: float) -> bytes:
    """
    The auto-reply to a message (RFC 3834 3.1): C{Auto-Submitted:
    auto-replied}, In-Reply-To and References to the original, the
    VacationResponse's subject (else "Auto: " and the original's), and a
    Message-ID made of the reply command's log index, the same on every
    node.
    """
    fields = {name.lower(): value for name, value in headers}
    original_ids = as_message_ids(fields.get("message-id", "")) or []
    references = (as_message_ids(fields.get("references", "")) or [])[-20:] + original_ids
    subject = reply.get("subject") or f"Auto: {fields.get('subject', '')}".strip()
    message = EmailMessage(policy=SMTP)
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(time, usegmt=True)
    message["Message-ID"] = f"<vacation.{reply['index']}@{from_address.rpartition('@')[2]}>"
    if original_ids:
        message["In-Reply-To"] = f"<{original_ids[0]}>"
    if references:
        message["References"] = " ".join(f"<{i}>" for i in references)
    message["Auto-Submitted"] = "auto-replied"
    text = reply.get("textBody")
    html = reply.get("htmlBody")
    if text is None and html is not None:
        from stalwart.mail.html import html_to_text

        text = html_to_text(html)
    message.set_content(text or "")
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def _vacation_accounts(conn, accounts: Sequence[str]) -> Dict[str, List[str]]:
    """Accounts among C{accounts} with an enabled VacationResponse -> their addresses."""
    found = {}
    for account in accounts:
        vacation = load_object(conn, account, "VacationResponse", "singleton")
        if vacation and vacation.get("isEnabled"):
            found[account] = [r[0] for r in conn.execute(
                "SELECT address FROM addresses WHERE account_id = ? ORDER BY address", (account,))]
    return found


class AutoReplier:
    """
    The shell: on the leader, for each applied delivery, asks the log
    whether to reply for each account it reached, then sends.

    @param period_seconds: the once-per-sender period.
    """

    log = Logger()

    def __init__(self, clock, driver, propose: Callable, reader, relay, period_seconds: int = PERIOD_SECONDS) -> None:
        self._clock, self._driver, self._propose = clock, driver, propose
        self._reader, self._relay, self._period = reader, relay, period_seconds
        self.running = False

    def start(self) -> None:
        self.running = True
        self._driver.on_applied(self.applied)

    def stop(self) -> None:
        self.running = False

    def applied(self, entry, result: Any) -> None:
        if not self.running or not self._driver.is_leader or not isinstance(result, dict):
            return
        if not getattr(self._relay, "configured", True):
            return  # no smtp-relay-host: nobody to send the reply
        if command_kind(entry.data) != "mail.deliver":
            return
        command = decode_command(entry.data)
        sender = command.args.get("sender") or ""
        reached = {}
        for outcome in result.get("recipients") or []:
            if outcome.get("status") == "delivered":
                reached.setdefault(outcome["accountId"], outcome["rcpt"])
        if not sender or not reached:
            return
        d = self._reader.run(_vacation_accounts, sorted(reached))
        d.addCallback(self._decide, sender, reached, command)
        d.addErrback(lambda f: self.log.failure("auto-reply failed", f))

    def _decide(self, enabled: Mapping[str, List[str]], sender: str, reached: Mapping[str, str], command: Command):
        if not enabled:
            return None
        headers = read_headers(command.body)
        for account, addresses in enabled.items():
            why = exclusion(sender, headers, addresses)
            if why is not None:
                self.log.debug("no auto-reply to {sender}: {why}", sender=sender, why=why)
                continue
            args = {"account": account, "sender": sender, "time": command.args["time"], "period": self._period}
            d = self._propose(Command(kind=AUTOREPLY_COMMAND, args=args))
            d.addCallback(self._send, sender, reached[account], headers)
            d.addErrback(lambda f: self.log.info("auto-reply not sent: {error}", error=f.getErrorMessage()))
        return None

    def _send(self, reply, sender: str, rcpt: str, headers) -> None:
        if not isinstance(reply, dict) or not reply.get("send"):
            return None
        message = build_reply(rcpt, sender, headers, reply, self._clock.seconds())
        return self._relay.send("", [sender], message)
