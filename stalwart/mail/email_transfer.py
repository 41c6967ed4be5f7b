# -*- test-case-name: tests.mail.test_email_copy_parse -*-
"""
Email/import (RFC 8621 4.8), Email/copy (4.7) and Email/parse (4.9): the
methods that bring a message in from a blob or another account.  Mixed into
L{stalwart.mail.email_methods.EmailMethods}, which supplies the parser.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from stalwart.jmap.arguments import check_arguments, optional, required, unsigned
from stalwart.jmap.errors import MethodError, SetError
from stalwart.jmap.ids import check_creation_id
from stalwart.jmap.methods.standard import check_state, copy_responses, create_each, resolve_id
from stalwart.mail import emails as store
from stalwart.mail.parse import check_properties
from stalwart.mail.partblobs import owns_blob, read_blob, stored_blob_id
from stalwart.store.blobs import blob_id_for
from stalwart.store.changes import state_of

__all__ = ["TransferMethods", "keywords_ok", "mailboxes_exist", "is_message"]

#: Email/parse's default properties (RFC 8621 4.9).
PARSE_PROPERTIES = [
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt",
    "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments",
]
#: What Email/copy may set on the copy (RFC 8621 4.7), besides the source id.
COPY_PROPERTIES = ("mailboxIds", "keywords", "receivedAt")


def keywords_ok(value: Any) -> bool:
    return isinstance(value, dict) and all(store.is_keyword(k) and v is True for k, v in value.items())


def mailboxes_exist(tx, account: str, mailbox_ids: Mapping[str, Any]) -> Optional[SetError]:
    if not isinstance(mailbox_ids, dict) or not mailbox_ids or not all(v is True for v in mailbox_ids.values()):
        return SetError("invalidProperties", "mailboxIds must name at least one mailbox, each with true", properties=["mailboxIds"])
    for mailbox_id in mailbox_ids:
        found = tx.execute(
            "SELECT 1 FROM objects WHERE account_id = ? AND type = 'Mailbox' AND id = ?", (account, mailbox_id)
        ).fetchone()
        if found is None:
            return SetError("invalidProperties", f"no mailbox {mailbox_id}", properties=["mailboxIds"])
    return None


def is_message(parsed) -> bool:
    """
    Whether parsed bytes are a message at all (RFC 5322 3.5: header fields,
    then an optional body).  The parser accepts any bytes, so this is the
    line between a damaged message, which is kept as it is, and something
    else (an image, a PDF, plain text, nothing): no header field at all.
    """
    return bool(parsed.headers)


class TransferMethods:
    # -- Email/import (RFC 8621 4.8) ----------------------------------------

    def import_(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ifInState", "emails"})
        account = context.account(arguments)
        emails = required(arguments, "emails", dict)
        if len(emails) > self._import_items_max:
            raise MethodError("requestTooLarge", f"at most {self._import_items_max} emails per import")
        for creation_id, email in emails.items():
            if not check_creation_id(creation_id) or not isinstance(email, dict):
                raise MethodError("invalidArguments", f"bad import {creation_id!r}", arguments=["emails"])
            email = emails[creation_id] = dict(email)
            email["mailboxIds"] = self._resolve_mailboxes(email.get("mailboxIds"), created_ids)
            if isinstance(email.get("blobId"), str):
                email["blobId"] = resolve_id(email["blobId"], created_ids)
        args = {"ifInState": optional(arguments, "ifInState", str), "emails": emails}
        return context.write("Email/import", account, args, created_ids)

    def apply_import(self, ctx, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        old_state = check_state(tx, account, store.EMAIL, args["ifInState"])
        created, not_created = create_each(
            args["emails"], lambda _, email: self._import_one(ctx, account, email, now), created_ids)
        return [("Email/import", {
            "accountId": account, "oldState": old_state, "newState": state_of(tx, account, store.EMAIL),
            "created": created or None, "notCreated": not_created or None,
        })]

    def _import_one(self, ctx, account: str, email: Dict, now: str):
        """One EmailImport (RFC 8621 4.8): the created Email's id, blobId, threadId, size, or a SetError."""
        tx = ctx.tx
        blob_id = email.get("blobId")
        root = stored_blob_id(blob_id)
        if root is None or not owns_blob(tx, account, root):
            return SetError("blobNotFound", f"no blob {blob_id}", notFound=[blob_id] if isinstance(blob_id, str) else [])
        error = mailboxes_exist(tx, account, email.get("mailboxIds"))
        if error is not None:
            return error
        keywords = email.get("keywords", {})
        received_at = email.get("receivedAt", now)
        if not keywords_ok(keywords):
            return SetError("invalidProperties", "keywords must map keywords to true", properties=["keywords"])
        if not isinstance(received_at, str):
            return SetError("invalidProperties", "receivedAt must be a UTCDate", properties=["receivedAt"])
        found = read_blob(tx, ctx.blobs.read, account, blob_id)
        if found is None:
            return SetError("blobNotFound", f"no blob {blob_id}", notFound=[blob_id])
        raw, part_type = found
        if len(raw) > self._message_bytes_max:
            return SetError("tooLarge", f"the message is over {self._message_bytes_max} octets")
        parsed = self._parse(raw)
        if not is_message(parsed):
            return SetError("invalidEmail", "the blob is not a message: it has no header fields")
        if part_type is not None:
            # A part of a stored message (an attached message): stored as a
            # blob of its own, so that the Email's blobId names its bytes.
            from stalwart.jmap.methods.blob import add_blob
            from stalwart.store.refusal import Refused

            # Quota first, as an upload does: a refusal leaves no file.
            blob_id = blob_id_for(raw)
            try:
                add_blob(tx, account, blob_id, len(raw), "message/rfc822", now)
            except Refused as refusal:
                return SetError("overQuota", refusal.detail)
            ctx.blobs.write(raw)
        return store.add_email(tx, account, blob_id, parsed, email["mailboxIds"], keywords, received_at)

    # -- Email/copy (RFC 8621 4.7) ------------------------------------------

    def copy(self, arguments, context, created_ids):
        """
        The standard /copy (RFC 8620 5.4) where only mailboxIds, keywords
        and receivedAt may be set.  The copy shares the message blob, which
        the target account is given (and charged for) as by Blob/copy.
        """
        check_arguments(arguments, {"fromAccountId", "ifFromInState", "accountId", "ifInState", "create",
                                    "onSuccessDestroyOriginal", "destroyFromIfInState"})
        if arguments.get("fromAccountId") == arguments.get("accountId"):
            raise MethodError("invalidArguments", "fromAccountId must differ from accountId", arguments=["fromAccountId"])
        source = context.account(arguments, "fromAccountId")
        account = context.account(arguments)
        create = required(arguments, "create", dict)
        if len(create) > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} Emails per /copy")
        resolved = {}
        for creation_id, spec in create.items():
            if not check_creation_id(creation_id) or not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                raise MethodError("invalidArguments", f"create[{creation_id!r}] needs the id of the Email to copy",
                                  arguments=["create"])
            resolved[creation_id] = {**spec, "id": resolve_id(spec["id"], created_ids)}
            if "mailboxIds" in spec:
                resolved[creation_id]["mailboxIds"] = self._resolve_mailboxes(spec["mailboxIds"], created_ids)
        args = {
            "fromAccountId": source,
            "ifFromInState": optional(arguments, "ifFromInState", str),
            "ifInState": optional(arguments, "ifInState", str),
            "create": resolved,
            "onSuccessDestroyOriginal": optional(arguments, "onSuccessDestroyOriginal", bool, default=False),
            "destroyFromIfInState": optional(arguments, "destroyFromIfInState", str),
        }
        return context.write("Email/copy", account, args, created_ids)

    def apply_copy(self, ctx, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        source = args["fromAccountId"]
        check_state(tx, source, store.EMAIL, args["ifFromInState"])
        old_state = check_state(tx, account, store.EMAIL, args["ifInState"])
        created, not_created = {}, {}
        for creation_id, spec in args["create"].items():
            outcome = self._copy_one(ctx, source, account, spec, created_ids, now)
            if isinstance(outcome, SetError):
                not_created[creation_id] = outcome.to_json()
            else:
                created_ids[creation_id] = outcome["id"]
                created[creation_id] = outcome
        return copy_responses(store.EMAIL, self.apply_set, ctx, source, account, args, old_state,
                              created, not_created, created_ids, now)

    def _copy_one(self, ctx, source: str, account: str, spec: Dict, created_ids: Dict, now: str):
        from stalwart.jmap.methods.blob import add_blob
        from stalwart.store.refusal import Refused

        tx = ctx.tx
        bad = [k for k in spec if k != "id" and k not in COPY_PROPERTIES]
        if bad:
            return SetError("invalidProperties", "a copy may only set mailboxIds, keywords and receivedAt",
                            properties=bad)
        rows = store.email_rows(tx, source, [spec["id"]])
        if spec["id"] not in rows:
            return SetError("notFound", f"no Email {spec['id']}")
        original = rows[spec["id"]]
        if "mailboxIds" not in spec:
            # The original's mailboxIds name Mailboxes of the other account.
            return SetError("invalidProperties", "give the mailboxIds of the copy", properties=["mailboxIds"])
        mailbox_ids = self._resolve_mailboxes(spec["mailboxIds"], created_ids)
        error = mailboxes_exist(tx, account, mailbox_ids)
        if error is not None:
            return error
        keywords = spec.get("keywords", original["keywords"])
        if not keywords_ok(keywords):
            return SetError("invalidProperties", "keywords must map keywords to true", properties=["keywords"])
        received_at = spec.get("receivedAt", original["received_at"])
        if not isinstance(received_at, str):
            return SetError("invalidProperties", "receivedAt must be a UTCDate", properties=["receivedAt"])
        blob_id = original["blob_id"]
        raw = ctx.blobs.read(blob_id)
        if raw is None:
            return SetError("notFound", f"the message of Email {spec['id']} is missing")
        typed = tx.execute("SELECT type FROM blobs WHERE account_id = ? AND blob_id = ?", (source, blob_id)).fetchone()
        try:
            add_blob(tx, account, blob_id, len(raw), typed[0] if typed else "message/rfc822", now)
        except Refused as refusal:
            return SetError("overQuota", refusal.detail)
        return store.add_email(tx, account, blob_id, self._parse(raw), mailbox_ids, keywords, received_at)

    # -- Email/parse (RFC 8621 4.9) -----------------------------------------

    def parse(self, arguments, context, created_ids):
        """
        Email objects of blobs, without storing anything: uploaded messages
        or attached ones (part blob ids).  Metadata is null: id,
        mailboxIds, keywords, receivedAt, and threadId (not computed).
        """
        check_arguments(arguments, {"accountId", "blobIds", "properties", "bodyProperties", "fetchTextBodyValues",
                                    "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes"})
        account = context.account(arguments)
        blob_ids = required(arguments, "blobIds", list)
        if not all(isinstance(b, str) for b in blob_ids):
            raise MethodError("invalidArguments", "blobIds must be an array of Ids", arguments=["blobIds"])
        blob_ids = list(dict.fromkeys(blob_ids))
        if len(blob_ids) > self._parse_items_max:
            raise MethodError("requestTooLarge", f"at most {self._parse_items_max} blobs per Email/parse")
        properties = optional(arguments, "properties", list, default=None)
        properties = list(PARSE_PROPERTIES) if properties is None else properties
        body_properties = optional(arguments, "bodyProperties", list)
        if not all(isinstance(p, str) for p in properties + (body_properties or [])):
            raise MethodError("invalidArguments", "properties must be strings", arguments=["properties"])
        try:
            check_properties(properties, body_properties)
        except ValueError as e:
            raise MethodError("invalidArguments", str(e), arguments=["properties"]) from None
        options = {
            "body_properties": body_properties,
            "fetch_text_body_values": optional(arguments, "fetchTextBodyValues", bool, default=False),
            "fetch_html_body_values": optional(arguments, "fetchHTMLBodyValues", bool, default=False),
            "fetch_all_body_values": optional(arguments, "fetchAllBodyValues", bool, default=False),
            "max_body_value_bytes": unsigned(arguments, "maxBodyValueBytes", default=0),
        }
        blobs = context.blobs

        def read(conn):
            parsed, not_parsable, not_found = {}, [], []
            for blob_id in blob_ids:
                found = read_blob(conn, blobs.read, account, blob_id)
                if found is None:
                    not_found.append(blob_id)
                    continue
                raw = found[0]
                message = self._parse(raw) if len(raw) <= self._message_bytes_max else None
                if message is None or not is_message(message):
                    not_parsable.append(blob_id)
                    continue
                parsed[blob_id] = self._parsed_email(message, raw, blob_id, properties, options)
            return [("Email/parse", {"accountId": account, "parsed": parsed or None,
                                     "notParsable": not_parsable or None, "notFound": not_found or None})]

        return context.reader.run(read)

    def _parsed_email(self, message, raw: bytes, blob_id: str, properties: List[str], options: Dict) -> Dict:
        metadata = {"id": None, "blobId": blob_id, "threadId": None, "mailboxIds": None, "keywords": None,
                    "size": len(raw), "receivedAt": None}
        email = {p: metadata[p] for p in properties if p in metadata}
        wanted = [p for p in properties if p not in metadata]
        if wanted:
            email.update(self._properties(message, raw, blob_id, wanted, **options))
        return {p: email[p] for p in properties}
