# -*- test-case-name: tests.mail.test_submission -*-
"""
EmailSubmission (RFC 8621 section 7): the data type, its methods, and the
two commands the outbox (L{stalwart.mail.outbox}) logs around a send.

A created EmailSubmission is a JSON object (type C{EmailSubmission}) and
a row of C{submission_queue}: what is still to be sent (the Email's blob,
the envelope, the attempts so far).  The queue row, not the object, is
what the outbox sends, so destroying the object or the Email never
changes a delivery (RFC 8621 7.5).  Every step is a logged command,
applied the same on every node::

    EmailSubmission/set create   object: undoStatus "pending"; queue row
            |                    (cancel allowed: the row is deleted)
    mail.submission.claim        row claimed: from now on cancel is
            |                    cannotUnsend; the leader sends
    mail.submission.outcome      deliveryStatus per recipient; the row is
                                 deleted, or keeps the recipients to retry
                                 (claim released, not before retryAt)

undoStatus is "final" once a recipient was accepted by the relay or no
attempt is left, "canceled" after a successful cancel.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

import attrs

from stalwart.jmap.capabilities import SUBMISSION
from stalwart.jmap.errors import MethodError, SetError
from stalwart.jmap.methods.standard import resolve_id
from stalwart.jmap.objecttype import ObjectType, Property, is_string, nullable
from stalwart.mail import emails as email_store
from stalwart.mail.headers import as_addresses
from stalwart.mail.mailbox import TypeMethods
from stalwart.store.apply import ApplyContext
from stalwart.store.changes import CREATED, UPDATED, record_change
from stalwart.store.objects import load_object, next_object_id, save_object
from stalwart.store.refusal import Refused

__all__ = [
    "EmailSubmission", "SubmissionMethods", "SubmissionLimits", "SUBMISSION_SCHEMA",
    "CLAIM_COMMAND", "OUTCOME_COMMAND", "SUBMISSION_HANDLERS", "apply_claim", "apply_outcome",
    "due_submissions", "is_mailbox_address", "PENDING", "FINAL", "CANCELED",
]

PENDING, FINAL, CANCELED = "pending", "final", "canceled"
CLAIM_COMMAND = "mail.submission.claim"
OUTCOME_COMMAND = "mail.submission.outcome"

SUBMISSION_SCHEMA = """
CREATE TABLE IF NOT EXISTS submission_queue (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    blob_id TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    claimed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, id)
);
"""

#: Longest address in a path (RFC 5321 4.5.3.1.3, less the brackets).
ADDRESS_CHARS_MAX = 254


@attrs.frozen
class SubmissionLimits:
    """
    @ivar recipients_max: most rcptTo addresses in one submission
        (C{tooManyRecipients}); relays commonly accept 100 per transaction
        (RFC 5321 4.5.3.1.8 asks for at least that).
    @ivar message_bytes_max: largest message sent, in bytes (C{tooLarge});
        the same as mail-max-size, what this server accepts itself.
    """

    recipients_max: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    message_bytes_max: int = attrs.field(default=50_000_000, validator=attrs.validators.ge(1))


def is_mailbox_address(value: Any) -> bool:
    """
    A plausible RFC 5321 Mailbox: local@domain, no spaces, brackets or
    controls, ASCII only (the relay client has no SMTPUTF8, RFC 6531).
    """
    if not isinstance(value, str) or not 3 <= len(value) <= ADDRESS_CHARS_MAX or not value.isascii():
        return False
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "." not in domain.strip(".") or domain.startswith("."):
        return False
    return not any(c.isspace() or c in '<>(),;\\"' or ord(c) < 32 for c in domain) and not any(
        c.isspace() or c in "<>" or ord(c) < 32 for c in local)


def _is_address(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) <= {"email", "parameters"} and isinstance(value.get("email"), str)
            and (value.get("parameters") is None or isinstance(value.get("parameters"), dict)))


def _is_envelope(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"mailFrom", "rcptTo"} and _is_address(value["mailFrom"])
            and isinstance(value["rcptTo"], list) and all(_is_address(a) for a in value["rcptTo"]))


def _utc(value: Any) -> Optional[datetime.datetime]:
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        return datetime.datetime.fromisoformat(value[:-1])
    except ValueError:
        return None


def _is_id_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) for i in value)


_FILTERS = {
    "identityIds": _is_id_list, "emailIds": _is_id_list, "threadIds": _is_id_list,
    "undoStatus": is_string, "before": lambda v: _utc(v) is not None, "after": lambda v: _utc(v) is not None,
}


class EmailSubmission(ObjectType):
    name = "EmailSubmission"
    capability = SUBMISSION
    id_prefix = "S"
    properties = (
        Property("id", is_string, server_set=True),
        Property("identityId", is_string, required=True, immutable=True),
        Property("emailId", is_string, required=True, immutable=True, sortable=True),
        Property("threadId", is_string, server_set=True, sortable=True),
        Property("envelope", nullable(_is_envelope), immutable=True),
        Property("sendAt", is_string, server_set=True),
        Property("undoStatus", lambda v: v in (PENDING, FINAL, CANCELED)),
        Property("deliveryStatus", lambda v: v is None or isinstance(v, dict), server_set=True),
        Property("dsnBlobIds", _is_id_list, server_set=True),
        Property("mdnBlobIds", _is_id_list, server_set=True),
    )
    set_options = {"onSuccessUpdateEmail": (dict,), "onSuccessDestroyEmail": (list,)}

    def match(self, obj: Dict, condition: Mapping[str, Any]) -> bool:
        """RFC 8621 7.3: every given condition must hold."""
        for key, wanted in condition.items():
            check = _FILTERS.get(key)
            if check is None:
                raise MethodError("unsupportedFilter", f"cannot filter on {key!r}")
            if not check(wanted):
                raise MethodError("invalidArguments", f"bad filter value for {key!r}", arguments=["filter"])
        field = {"identityIds": "identityId", "emailIds": "emailId", "threadIds": "threadId"}
        for key, prop in field.items():
            if key in condition and obj.get(prop) not in condition[key]:
                return False
        if "undoStatus" in condition and obj.get("undoStatus") != condition["undoStatus"]:
            return False
        sent = _utc(obj.get("sendAt"))
        if "before" in condition and not (sent is not None and sent < _utc(condition["before"])):
            return False
        if "after" in condition and not (sent is not None and sent >= _utc(condition["after"])):
            return False
        return True

    def sort_value(self, obj: Dict, prop: str) -> Any:
        # RFC 8621 7.3 names the sort "sentAt"; the property is sendAt.
        if prop in ("sentAt", "sendAt"):
            return obj.get("sendAt")
        return super().sort_value(obj, prop)

    def check_object(self, tx, account_id: str, obj: Dict, old: Optional[Dict]) -> Optional[SetError]:
        if old is None:
            return None
        removed = sorted(set(old) - set(obj))
        if removed:
            # A patch's null removes a property, which validate does not see.
            return SetError("invalidProperties", "these properties cannot be removed", properties=removed)
        if obj.get("undoStatus") == old.get("undoStatus"):
            return None
        if obj.get("undoStatus") == CANCELED and old.get("undoStatus") != PENDING:
            return SetError("cannotUnsend", "the message was sent")
        if (old.get("undoStatus"), obj.get("undoStatus")) != (PENDING, CANCELED):
            return SetError("invalidProperties", "undoStatus can only change from pending to canceled",
                            properties=["undoStatus"])
        return None


def _queue_row(conn, account: str, submission_id: str) -> Optional[Dict[str, Any]]:
    row = conn.execute(
        "SELECT blob_id, mail_from, rcpt_to, attempts, not_before, claimed FROM submission_queue"
        " WHERE account_id = ? AND id = ?", (account, submission_id)).fetchone()
    if row is None:
        return None
    keys = ("blobId", "mailFrom", "rcptTo", "attempts", "notBefore", "claimed")
    found = dict(zip(keys, row))
    found["rcptTo"] = json.loads(found["rcptTo"])
    return found


class SubmissionMethods(TypeMethods):
    """
    EmailSubmission/get, /changes, /query, /queryChanges and /set
    (RFC 8621 7.1-7.5).

    @param email_methods: the L{stalwart.mail.email_methods.EmailMethods}
        whose apply_set runs the implicit Email/set (7.5).
    @param parse: parse_message(raw) -> ParsedMessage.
    """

    def __init__(self, object_type: EmailSubmission, email_methods, parse,
                 limits: SubmissionLimits = SubmissionLimits()) -> None:
        super().__init__(object_type, ("get", "changes", "query", "queryChanges", "set"))
        self._emails = email_methods
        self._parse = parse
        self.limits = limits
        #: The entry being applied (applies run one at a time, on the
        #: state machine's thread): creates read the Email's blob.
        self._ctx: Optional[ApplyContext] = None

    # -- proposing ----------------------------------------------------------

    def set(self, arguments, context, created_ids):
        # Creation references to Emails and Identities made by earlier
        # calls of the request are resolved before the command is logged.
        create = arguments.get("create")
        if isinstance(create, dict):
            create = {cid: ({**obj, **{k: resolve_id(obj[k], created_ids) for k in ("emailId", "identityId")
                                       if isinstance(obj.get(k), str)}} if isinstance(obj, dict) else obj)
                      for cid, obj in create.items()}
            arguments = {**arguments, "create": create}
        update_email = arguments.get("onSuccessUpdateEmail")
        if update_email is not None and not (isinstance(update_email, dict)
                                             and all(isinstance(p, dict) for p in update_email.values())):
            raise MethodError("invalidArguments", "onSuccessUpdateEmail maps ids to patches",
                              arguments=["onSuccessUpdateEmail"])
        destroy_email = arguments.get("onSuccessDestroyEmail")
        if destroy_email is not None and not _is_id_list(destroy_email):
            raise MethodError("invalidArguments", "onSuccessDestroyEmail is a list of ids",
                              arguments=["onSuccessDestroyEmail"])
        return super().set(arguments, context, created_ids)

    # -- applying -----------------------------------------------------------

    def apply_set(self, ctx: ApplyContext, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        before = {resolve_id(i, created_ids): load_object(tx, account, self.name, resolve_id(i, created_ids))
                  for i in [*args["update"], *args["destroy"]]}
        self._ctx, self._now = ctx, now
        try:
            responses = super().apply_set(ctx, account, args, created_ids, now)
        finally:
            self._ctx = None
        (name, response), = responses
        succeeded = {}
        for creation_id, created in (response["created"] or {}).items():
            succeeded[f"#{creation_id}"] = load_object(tx, account, self.name, created["id"])["emailId"]
        for object_id in [*(response["updated"] or {}), *(response["destroyed"] or [])]:
            if before.get(object_id):
                succeeded[object_id] = before[object_id]["emailId"]
        options = args.get("options") or {}
        update = {}
        for key, patch in (options.get("onSuccessUpdateEmail") or {}).items():
            email_id = succeeded.get(key) or succeeded.get(resolve_id(key, created_ids))
            if email_id is not None:
                update[email_id] = patch
        destroy = []
        for key in options.get("onSuccessDestroyEmail") or []:
            email_id = succeeded.get(key) or succeeded.get(resolve_id(key, created_ids))
            if email_id is not None and email_id not in destroy:
                destroy.append(email_id)
        if update or destroy:
            # One implicit Email/set, answered after this one (RFC 8621 7.5).
            implicit = {"ifInState": None, "create": {}, "update": update, "destroy": destroy}
            responses = [*responses, *self._emails.apply_set(ctx, account, implicit, created_ids, now)]
        return responses

    def _create_one(self, tx, account: str, obj: Any, created_ids: Dict):
        if not isinstance(obj, dict):
            return SetError("invalidProperties", "a create value must be an object")
        if obj.get("undoStatus", PENDING) != PENDING:
            return SetError("invalidProperties", "undoStatus starts pending", properties=["undoStatus"])
        error = self.type.validate({k: v for k, v in obj.items() if k != "undoStatus"}, creating=True)
        if error is not None:
            return error
        identity = load_object(tx, account, "Identity", obj["identityId"])
        if identity is None:
            return SetError("invalidProperties", f"no Identity {obj['identityId']}", properties=["identityId"])
        rows = email_store.email_rows(tx, account, [obj["emailId"]])
        if not rows:
            return SetError("invalidProperties", f"no Email {obj['emailId']}", properties=["emailId"])
        row = rows[obj["emailId"]]
        if row["size"] > self.limits.message_bytes_max:
            return SetError("tooLarge", "the message is too large to send", maxSize=self.limits.message_bytes_max)
        raw = self._ctx.blobs.read(row["blob_id"])
        if raw is None:
            return SetError("invalidEmail", "the message's content is missing", properties=["blobId"])
        envelope = check_message(self._parse(raw), identity, obj.get("envelope"), self.limits)
        if isinstance(envelope, SetError):
            return envelope
        submission_id = next_object_id(tx, account, self.type.id_prefix)
        rcpts = [a["email"] for a in envelope["rcptTo"]]
        full = {
            "identityId": obj["identityId"], "emailId": obj["emailId"], "threadId": row["thread_id"],
            "envelope": envelope, "sendAt": self._now, "undoStatus": PENDING,
            "deliveryStatus": {r: _status("250 2.1.5 Queued for the relay", "queued") for r in rcpts},
            "dsnBlobIds": [], "mdnBlobIds": [],
        }
        save_object(tx, account, self.name, submission_id, full)
        record_change(tx, account, self.name, submission_id, CREATED)
        tx.execute(
            "INSERT INTO submission_queue (account_id, id, blob_id, mail_from, rcpt_to) VALUES (?, ?, ?, ?, ?)",
            (account, submission_id, row["blob_id"], envelope["mailFrom"]["email"], json.dumps(rcpts)))
        return {"id": submission_id, **{k: v for k, v in full.items() if obj.get(k) is None}}

    def _update_one(self, tx, account: str, object_id: str, patch: Any) -> Optional[SetError]:
        old = load_object(tx, account, self.name, object_id)
        canceling = (old is not None and isinstance(patch, dict) and patch.get("undoStatus") == CANCELED
                     and old.get("undoStatus") == PENDING)
        if canceling:
            row = _queue_row(tx, account, object_id)
            if row is None or row["claimed"]:
                return SetError("cannotUnsend", "the message is being sent or was sent")
        error = super()._update_one(tx, account, object_id, patch)
        if error is None and canceling:
            tx.execute("DELETE FROM submission_queue WHERE account_id = ? AND id = ?", (account, object_id))
        return error


def _status(reply: str, delivered: str) -> Dict[str, str]:
    return {"smtpReply": reply, "delivered": delivered, "displayed": "unknown"}


def check_message(parsed, identity: Mapping[str, Any], envelope: Optional[Mapping], limits: SubmissionLimits):
    """
    The envelope to send with (RFC 8621 7.5), or the SetError refusing the
    message: the From header must be the Identity's address (forbiddenFrom),
    the envelope's mailFrom too (forbiddenMailFrom); recipients must exist
    (noRecipients), be addresses (invalidRecipients) and not be too many.
    """
    allowed = identity["email"].lower()
    from_fields = parsed.header_values("From")
    senders = [a for v in from_fields for a in (as_addresses(v) or [])]
    if len(from_fields) != 1 or len(senders) != 1:
        return SetError("invalidEmail", "the message needs exactly one From address", properties=["from"])
    if (senders[0].get("email") or "").lower() != allowed:
        return SetError("forbiddenFrom", f"this Identity may only send From {identity['email']}")
    sender_fields = parsed.header_values("Sender")
    sender = [a for v in sender_fields for a in (as_addresses(v) or [])]
    if len(sender_fields) > 1 or len(sender) > 1:
        return SetError("invalidEmail", "the message has more than one Sender", properties=["sender"])
    if envelope is None:
        found = (sender or senders)[0].get("email") or ""
        mail_from = found if found.lower() == allowed else identity["email"]
        rcpts: List[str] = []
        for field in ("To", "Cc", "Bcc"):
            for value in parsed.header_values(field):
                rcpts.extend(a["email"] for a in as_addresses(value) or [] if a.get("email"))
        envelope = {"mailFrom": {"email": mail_from, "parameters": None},
                    "rcptTo": [{"email": r, "parameters": None} for r in _dedupe(rcpts)]}
    else:
        envelope = {"mailFrom": dict(envelope["mailFrom"]),
                    "rcptTo": [dict(a) for a in envelope["rcptTo"]]}
        if envelope["mailFrom"]["email"].lower() != allowed:
            return SetError("forbiddenMailFrom", f"this Identity may only send from {identity['email']}")
        if any(a.get("parameters") for a in [envelope["mailFrom"], *envelope["rcptTo"]]):
            # submissionExtensions is empty: no SMTP parameters are relayed.
            return SetError("invalidProperties", "SMTP parameters are not supported", properties=["envelope"])
        envelope["rcptTo"] = [{"email": r, "parameters": None}
                              for r in _dedupe([a["email"] for a in envelope["rcptTo"]])]
    rcpts = [a["email"] for a in envelope["rcptTo"]]
    if not rcpts:
        return SetError("noRecipients", "the envelope has no recipient")
    bad = [r for r in rcpts if not is_mailbox_address(r)]
    if bad:
        return SetError("invalidRecipients", "not addresses to send to", invalidRecipients=bad)
    if len(rcpts) > limits.recipients_max:
        return SetError("tooManyRecipients", f"at most {limits.recipients_max} recipients",
                        maxRecipients=limits.recipients_max)
    return envelope


def _dedupe(addresses: Sequence[str]) -> List[str]:
    seen, kept = set(), []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    return kept


# -- the outbox's commands --------------------------------------------------


def _args(ctx: ApplyContext, *names: str) -> List[Any]:
    args = ctx.command.args
    for name in names:
        if name not in args:
            raise Refused("invalidArguments", f"{ctx.command.kind}: {name} is missing")
    return [args[name] for name in names]


def apply_claim(ctx: ApplyContext) -> Dict[str, Any]:
    """
    C{mail.submission.claim {account, id}}: the leader is about to send.
    A claimed row cannot be canceled.  A row claimed before (by a leader
    that lost its place before recording the outcome) is claimed again:
    the new leader sends it once more.
    """
    account, submission_id = _args(ctx, "account", "id")
    row = _queue_row(ctx.tx, account, submission_id)
    if row is None:
        return {"claimed": False}
    ctx.tx.execute("UPDATE submission_queue SET claimed = 1 WHERE account_id = ? AND id = ?", (account, submission_id))
    return {"claimed": True, "accountId": account, "id": submission_id, "blobId": row["blobId"],
            "mailFrom": row["mailFrom"], "rcptTo": row["rcptTo"], "attempts": row["attempts"]}


def apply_outcome(ctx: ApplyContext) -> Dict[str, Any]:
    """
    C{mail.submission.outcome {account, id, statuses, retry, retryAt}}:
    what the relay answered.  C{statuses} maps recipients to
    C{{smtpReply, delivered}}; C{retry} lists those to try again, not
    before C{retryAt} (seconds).  An outcome for a row not claimed (a late
    duplicate from an earlier leader) changes nothing.
    """
    account, submission_id, statuses, retry, retry_at = _args(ctx, "account", "id", "statuses", "retry", "retryAt")
    tx = ctx.tx
    row = _queue_row(tx, account, submission_id)
    if row is None or not row["claimed"]:
        return {"recorded": False}
    if retry:
        tx.execute("UPDATE submission_queue SET rcpt_to = ?, attempts = attempts + 1, not_before = ?, claimed = 0"
                   " WHERE account_id = ? AND id = ?", (json.dumps(retry), float(retry_at), account, submission_id))
    else:
        tx.execute("DELETE FROM submission_queue WHERE account_id = ? AND id = ?", (account, submission_id))
    obj = load_object(tx, account, EmailSubmission.name, submission_id)
    if obj is not None:
        delivery = dict(obj.get("deliveryStatus") or {})
        for rcpt, status in statuses.items():
            delivery[rcpt] = _status(status["smtpReply"], status["delivered"])
        accepted = any(s["delivered"] in ("unknown", "yes") for s in statuses.values())
        obj["deliveryStatus"] = delivery
        if obj["undoStatus"] == PENDING and (accepted or not retry):
            obj["undoStatus"] = FINAL
        save_object(tx, account, EmailSubmission.name, submission_id, obj)
        record_change(tx, account, EmailSubmission.name, submission_id, UPDATED)
    return {"recorded": True}


SUBMISSION_HANDLERS = {CLAIM_COMMAND: apply_claim, OUTCOME_COMMAND: apply_outcome}


def due_submissions(conn, now: float, limit: int = 100) -> List[Dict[str, Any]]:
    """Queue rows the leader should send at C{now} (seconds), oldest first: C{[{account, id}]}."""
    rows = conn.execute(
        "SELECT account_id, id FROM submission_queue WHERE not_before <= ? ORDER BY not_before, rowid LIMIT ?",
        (now, limit)).fetchall()
    return [{"account": a, "id": i} for a, i in rows]
