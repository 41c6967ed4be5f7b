# -*- test-case-name: tests.mail.test_email_methods -*-
"""
The Email methods of RFC 8621 section 4 (get, changes, query,
queryChanges, set, copy, import, parse), Thread/get and Thread/changes
(3), and SearchSnippet/get (5).

Reads run on a reader thread: metadata comes from the email rows, and
the stored message is parsed only when a property needs it.  Writes are
checked here and proposed; the C{apply_*} functions run in the state
machine on every node.
"""

from __future__ import annotations

import html
from typing import Any, Callable, Dict, List, Mapping, Optional

from stalwart.jmap.arguments import check_arguments, id_list, optional, required, unsigned
from stalwart.jmap.capabilities import MAIL
from stalwart.jmap.errors import MethodError, SetError
from stalwart.jmap.ids import check_creation_id
from stalwart.jmap.methods.standard import check_state, create_each, query_window, resolve_id, standard_changes
from stalwart.jmap.patch import PatchError, apply_patch
from stalwart.mail import emails as store
from stalwart.mail.compose import ComposeError
from stalwart.mail.email_transfer import TransferMethods, keywords_ok as _keywords_ok, mailboxes_exist as _mailboxes_exist
from stalwart.mail.headers import parse_header_property
from stalwart.mail.partblobs import read_blob
from stalwart.mail.query import compile_filter, compile_sort, fts_query
from stalwart.store.changes import UPDATED, CannotCalculate, changes_since, record_change, state_of

__all__ = ["EmailMethods"]

METADATA = {"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"}
FROM_MESSAGE = {
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
    "sentAt", "headers", "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments",
    "hasAttachment", "preview",
}
DEFAULT_PROPERTIES = [
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview", "bodyValues", "textBody", "htmlBody", "attachments",
]
#: Properties the email row answers without parsing the message.
FROM_ROW = METADATA | {"hasAttachment", "preview"}


class _Call:
    def __init__(self, function, capability: str = MAIL) -> None:
        self.capability = capability
        self._function = function

    def __call__(self, arguments, context, created_ids):
        return self._function(arguments, context, created_ids)


def _check_properties(properties: Any) -> List[str]:
    if properties is None:
        return list(DEFAULT_PROPERTIES)
    if not isinstance(properties, list):
        raise MethodError("invalidArguments", "properties must be an array", arguments=["properties"])
    for prop in properties:
        if not isinstance(prop, str) or not (
            prop in METADATA or prop in FROM_MESSAGE or (prop.startswith("header:") and parse_header_property(prop))
        ):
            raise MethodError("invalidArguments", f"unknown property {prop!r}", arguments=["properties"])
    return list(dict.fromkeys(["id", *properties]))


class EmailMethods(TransferMethods):
    """
    @param parse: parse_message(raw) -> ParsedMessage (stalwart.mail.parse).
    @param properties: email_properties(...) (stalwart.mail.parse).
    @param compose: compose_message(...) (stalwart.mail.compose) or None.
    @param message_bytes_max: largest message imported, created, copied in
        or parsed, in octets (config C{mail-max-size}).
    @param import_items_max: messages in one Email/import (C{mail-import-max-items}).
    @param parse_items_max: blobs in one Email/parse (C{mail-parse-max-items}).
    """

    def __init__(self, parse: Callable, properties: Callable, compose: Optional[Callable] = None,
                 message_id_domain: str = "stalwart.invalid", message_bytes_max: int = 50_000_000,
                 import_items_max: int = 100, parse_items_max: int = 100) -> None:
        self._parse = parse
        self._properties = properties
        self._compose = compose
        self._domain = message_id_domain
        self._message_bytes_max = message_bytes_max
        self._import_items_max = import_items_max
        self._parse_items_max = parse_items_max

    def methods(self) -> Dict[str, _Call]:
        return {
            "Email/get": _Call(self.get),
            "Email/changes": _Call(self.changes("Email")),
            "Email/query": _Call(self.query),
            "Email/queryChanges": _Call(self.query_changes),
            "Email/set": _Call(self.set),
            "Email/import": _Call(self.import_),
            "Email/copy": _Call(self.copy),
            "Email/parse": _Call(self.parse),
            "Thread/get": _Call(self.thread_get),
            "Thread/changes": _Call(self.changes("Thread")),
            "SearchSnippet/get": _Call(self.search_snippets),
        }

    def writes(self) -> Dict[str, Callable]:
        return {"Email/set": self.apply_set, "Email/import": self.apply_import, "Email/copy": self.apply_copy}

    # -- Email/get (RFC 8621 4.2) -----------------------------------------

    def get(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ids", "properties", "bodyProperties", "fetchTextBodyValues",
                                    "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes"})
        account = context.account(arguments)
        ids = id_list(arguments, "ids")
        limit = context.limits.max_objects_in_get
        if ids is not None:
            ids = list(dict.fromkeys(resolve_id(i, created_ids) for i in ids))
            if len(ids) > limit:
                raise MethodError("requestTooLarge", f"at most {limit} ids per Email/get")
        properties = _check_properties(arguments.get("properties"))
        body_properties = optional(arguments, "bodyProperties", list)
        options = {
            "body_properties": body_properties,
            "fetch_text_body_values": optional(arguments, "fetchTextBodyValues", bool, default=False),
            "fetch_html_body_values": optional(arguments, "fetchHTMLBodyValues", bool, default=False),
            "fetch_all_body_values": optional(arguments, "fetchAllBodyValues", bool, default=False),
            "max_body_value_bytes": unsigned(arguments, "maxBodyValueBytes", default=0),
        }
        message_properties = [p for p in properties if p not in FROM_ROW]
        blobs = context.blobs

        def read(conn):
            state = state_of(conn, account, store.EMAIL)
            rows = store.email_rows(conn, account, ids)
            if ids is None and len(rows) > limit:
                raise MethodError("requestTooLarge", f"more than {limit} emails; ask for ids")
            listed = []
            for email_id, row in rows.items():
                listed.append(self._email(row, properties, message_properties, options, blobs))
            not_found = [i for i in ids if i not in rows] if ids is not None else []
            return [("Email/get", {"accountId": account, "state": state, "list": listed, "notFound": not_found})]

        return context.reader.run(read)

    def _email(self, row, properties, message_properties, options, blobs) -> Dict[str, Any]:
        metadata = {
            "id": row["id"], "blobId": row["blob_id"], "threadId": row["thread_id"], "mailboxIds": row["mailboxIds"],
            "keywords": row["keywords"], "size": row["size"], "receivedAt": row["received_at"],
            "hasAttachment": bool(row["has_attachment"]), "preview": row["preview"],
        }
        email = {p: metadata[p] for p in properties if p in metadata}
        summary = row["summary"]
        if summary and all(p in summary for p in message_properties):
            # A message list: every property is in the row, nothing to parse.
            email.update((p, summary[p]) for p in message_properties)
        elif message_properties:
            raw = blobs.read(row["blob_id"]) or b""
            parsed = self._parse(raw)
            try:
                email.update(self._properties(parsed, raw, row["blob_id"], message_properties, **options))
            except ValueError as e:
                raise MethodError("invalidArguments", str(e)) from None
        return email

    # -- /changes (RFC 8621 3.2, 4.3) --------------------------------------

    def changes(self, type_name: str):
        return lambda arguments, context, created_ids: standard_changes(type_name, arguments, context)

    # -- Thread/get (RFC 8621 3.1) -----------------------------------------

    def thread_get(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ids", "properties"})
        account = context.account(arguments)
        ids = id_list(arguments, "ids", allow_null=False)
        if len(ids) > context.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", "too many ids")
        ids = list(dict.fromkeys(ids))

        def read(conn):
            found = store.thread_email_ids(conn, account, ids)
            return [("Thread/get", {
                "accountId": account, "state": state_of(conn, account, store.THREAD),
                "list": [{"id": t, "emailIds": e} for t, e in found.items()],
                "notFound": [i for i in ids if i not in found],
            })]

        return context.reader.run(read)

    # -- Email/query and queryChanges (RFC 8621 4.4, 4.5) -------------------

    def _results(self, conn, account: str, filter_sql, sort_sql, collapse: bool, blobs) -> List[str]:
        where, params, header_tests = filter_sql
        order, order_params = sort_sql
        rows = conn.execute(
            f"SELECT e.id, e.thread_id, e.blob_id FROM emails e WHERE e.account_id = ? AND {where} ORDER BY {order}",
            (account, *params, *order_params),
        ).fetchall()
        if header_tests:
            rows = [r for r in rows if self._headers_match(blobs.read(r[2]) or b"", header_tests)]
        if not collapse:
            return [r[0] for r in rows]
        seen, ids = set(), []
        for email_id, thread_id, _ in rows:
            if thread_id not in seen:
                seen.add(thread_id)
                ids.append(email_id)
        return ids

    def _headers_match(self, raw: bytes, tests) -> bool:
        from stalwart.mail.headers import as_text

        parsed = self._parse(raw)
        for name, text, _ in tests:
            values = parsed.header_values(name)
            if not values:
                return False
            if text and not any(text.casefold() in as_text(v).casefold() for v in values):
                return False
        return True

    def query(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
                                    "calculateTotal", "collapseThreads"})
        account = context.account(arguments)
        filter_sql = compile_filter(arguments.get("filter"))
        sort_sql = compile_sort(arguments.get("sort"))
        position = optional(arguments, "position", int, default=0)
        anchor = optional(arguments, "anchor", str)
        anchor_offset = optional(arguments, "anchorOffset", int, default=0)
        wanted = unsigned(arguments, "limit")
        cap = context.limits.query_max_results
        limit = cap if wanted is None else min(wanted, cap)
        total_wanted = optional(arguments, "calculateTotal", bool, default=False)
        collapse = optional(arguments, "collapseThreads", bool, default=False)
        blobs = context.blobs
        filter_ = arguments.get("filter")
        # RFC 8621 4.4: a lone inMailbox's total is the Mailbox's totalEmails.
        only_mailbox = filter_["inMailbox"] if isinstance(filter_, dict) and list(filter_) == ["inMailbox"] else None

        def read(conn):
            state = state_of(conn, account, store.EMAIL)
            if collapse or filter_sql[2]:
                start, page, total = self._window_of_list(conn, account, filter_sql, sort_sql, collapse, blobs,
                                                          position, anchor, anchor_offset, limit)
            else:
                start, page, total = _window_in_sql(conn, account, filter_sql, sort_sql, position, anchor,
                                                    anchor_offset, limit, total_wanted, only_mailbox)
            response = {"accountId": account, "queryState": state, "canCalculateChanges": True,
                        "position": start, "ids": page, "collapseThreads": collapse}
            if total_wanted:
                response["total"] = total
            if wanted is None or wanted > cap:
                response["limit"] = cap
            return [("Email/query", response)]

        return context.reader.run(read)

    def _window_of_list(self, conn, account: str, filter_sql, sort_sql, collapse: bool, blobs, position: int,
                        anchor: Optional[str], anchor_offset: int, limit: int):
        """
        The page of a query that needs every result in Python (collapsed
        Threads, header conditions): (position, ids, total).
        """
        ids = self._results(conn, account, filter_sql, sort_sql, collapse, blobs)
        start, page = query_window(ids, position, anchor, anchor_offset, limit)
        return start, page, len(ids)

    def query_changes(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId",
                                    "calculateTotal", "collapseThreads"})
        account = context.account(arguments)
        filter_sql = compile_filter(arguments.get("filter"))
        sort_sql = compile_sort(arguments.get("sort"))
        since = required(arguments, "sinceQueryState", str)
        max_changes = unsigned(arguments, "maxChanges", positive=True)
        optional(arguments, "upToId", str)  # an optimisation only (RFC 8620 5.6)
        total_wanted = optional(arguments, "calculateTotal", bool, default=False)
        collapse = optional(arguments, "collapseThreads", bool, default=False)
        blobs = context.blobs

        def read(conn):
            try:
                emails = changes_since(conn, account, store.EMAIL, since, 2**62)
            except CannotCalculate:
                raise MethodError("cannotCalculateChanges", f"query state {since!r} is unknown or too old") from None
            ids = self._results(conn, account, filter_sql, sort_sql, collapse, blobs)
            touched = set(emails.created) | set(emails.updated)
            removed = set(emails.updated) | set(emails.destroyed)
            if collapse:
                # Which Email stands for a thread may change when any of
                # its Emails changes: treat the whole thread as touched.
                threads = {r[0] for r in conn.execute(
                    "SELECT DISTINCT thread_id FROM emails WHERE account_id = ? AND id IN (SELECT id FROM changes"
                    " WHERE account_id = ? AND type = 'Email' AND modseq > ?)", (account, account, int(since)))}
                for thread_id in threads:
                    members = [r[0] for r in conn.execute(
                        "SELECT id FROM emails WHERE account_id = ? AND thread_id = ?", (account, thread_id))]
                    touched.update(members)
                    removed.update(members)
            added = [{"id": i, "index": n} for n, i in enumerate(ids) if i in touched]
            removed_list = sorted(removed, key=lambda i: (len(i), i))
            if max_changes is not None and len(removed_list) + len(added) > max_changes:
                raise MethodError("tooManyChanges", f"more than {max_changes} changes")
            response = {"accountId": account, "oldQueryState": since, "newQueryState": state_of(conn, account, store.EMAIL),
                        "removed": removed_list, "added": added}
            if total_wanted:
                response["total"] = len(ids)
            return [("Email/queryChanges", response)]

        return context.reader.run(read)

    # -- SearchSnippet/get (RFC 8621 5) -------------------------------------

    def search_snippets(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "filter", "emailIds"})
        account = context.account(arguments)
        email_ids = id_list(arguments, "emailIds", allow_null=False)
        if len(email_ids) > context.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", "too many emailIds")
        compile_filter(arguments.get("filter"))  # invalid filters are errors here too
        match = " OR ".join(f"({q})" for q in _text_queries(arguments.get("filter")) if q)

        def read(conn):
            found, not_found = [], []
            for email_id in email_ids:
                row = conn.execute("SELECT rowid FROM emails WHERE account_id = ? AND id = ?", (account, email_id)).fetchone()
                if row is None:
                    not_found.append(email_id)
                    continue
                subject = preview = None
                if match:
                    hit = conn.execute(
                        "SELECT highlight(email_text, 0, char(1), char(2)), snippet(email_text, 5, char(1), char(2), '…', 24)"
                        " FROM email_text WHERE email_text MATCH ? AND rowid = ?", (match, row[0])).fetchone()
                    if hit is not None:
                        subject = _marked(hit[0]) if "\x01" in hit[0] else None
                        preview = _marked(hit[1]) if "\x01" in hit[1] else None
                found.append({"emailId": email_id, "subject": subject, "preview": preview})
            return [("SearchSnippet/get", {"accountId": account, "list": found, "notFound": not_found or None})]

        return context.reader.run(read)

    # -- Email/set (RFC 8621 4.6) -------------------------------------------

    def set(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ifInState", "create", "update", "destroy"})
        account = context.account(arguments)
        create = optional(arguments, "create", dict, default={})
        update = optional(arguments, "update", dict, default={})
        destroy = id_list(arguments, "destroy") or []
        if len(create) + len(update) + len(destroy) > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} objects per /set")
        for creation_id in create:
            if not check_creation_id(creation_id):
                raise MethodError("invalidArguments", f"bad creation id {creation_id!r}", arguments=["create"])
        args = {
            "ifInState": optional(arguments, "ifInState", str),
            "create": create,
            "update": {resolve_id(k, created_ids): v for k, v in update.items()},
            "destroy": [resolve_id(i, created_ids) for i in destroy],
        }
        return context.write("Email/set", account, args, created_ids)

    def apply_set(self, ctx, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        old_state = check_state(tx, account, store.EMAIL, args["ifInState"])
        ordinals = {creation_id: n for n, creation_id in enumerate(args["create"], 1)}
        created, not_created = create_each(
            args["create"],
            lambda creation_id, email: self._create(ctx, account, email, created_ids, now, ordinals[creation_id]),
            created_ids)
        updated, not_updated = {}, {}
        for email_id, patch in args["update"].items():
            email_id = resolve_id(email_id, created_ids)
            error = self._update(tx, account, email_id, patch, created_ids)
            if error is None:
                updated[email_id] = None
            else:
                not_updated[email_id] = error.to_json()
        destroyed, not_destroyed = [], {}
        for email_id in args["destroy"]:
            email_id = resolve_id(email_id, created_ids)
            if store.destroy_email(tx, account, email_id):
                destroyed.append(email_id)
            else:
                not_destroyed[email_id] = SetError("notFound", f"no Email {email_id}").to_json()
        response = {"accountId": account, "oldState": old_state, "newState": state_of(tx, account, store.EMAIL)}
        for key, value in (("created", created), ("updated", updated), ("destroyed", destroyed),
                           ("notCreated", not_created), ("notUpdated", not_updated), ("notDestroyed", not_destroyed)):
            response[key] = value or None
        return [("Email/set", response)]

    def _resolve_mailboxes(self, mailbox_ids: Any, created_ids: Mapping[str, str]) -> Any:
        if not isinstance(mailbox_ids, dict):
            return mailbox_ids
        return {resolve_id(k, created_ids): v for k, v in mailbox_ids.items()}

    def _create(self, ctx, account: str, email: Any, created_ids: Dict, now: str, ordinal: int):
        from stalwart.jmap.methods.blob import add_blob
        from stalwart.store.refusal import Refused

        if not isinstance(email, dict):
            return SetError("invalidProperties", "an Email create must be an object")
        if self._compose is None:
            return SetError("forbidden", "creating Emails is not available on this server")
        tx = ctx.tx
        mailbox_ids = self._resolve_mailboxes(email.get("mailboxIds"), created_ids)
        error = _mailboxes_exist(tx, account, mailbox_ids)
        if error is not None:
            return error
        keywords = email.get("keywords", {})
        if not _keywords_ok(keywords):
            return SetError("invalidProperties", "keywords must map keywords to true", properties=["keywords"])
        received_at = email.get("receivedAt", now)
        bad = [p for p in ("id", "blobId", "threadId", "size") if p in email]
        if bad or not isinstance(received_at, str):
            return SetError("invalidProperties", "server-set properties given", properties=bad or ["receivedAt"])
        content = {k: v for k, v in email.items() if k not in ("mailboxIds", "keywords", "receivedAt")}

        def blob(blob_id):
            # An uploaded blob, or a part of a stored message (a forwarded attachment).
            found = read_blob(tx, ctx.blobs.read, account, blob_id)
            return None if found is None else found[0]

        # Unique in the cluster (log index, then position in the request)
        # and telling recipients nothing about the account.
        unique = f"{ctx.index}.{ordinal}"
        try:
            raw = self._compose(content, blob, now, self._domain, unique, size_max=self._message_bytes_max)
        except ComposeError as error:
            return error.to_set_error()
        blob_id = ctx.blobs.write(raw)
        try:
            add_blob(tx, account, blob_id, len(raw), "message/rfc822", now)
        except Refused as refusal:
            return SetError("overQuota", refusal.detail)
        return store.add_email(tx, account, blob_id, self._parse(raw), mailbox_ids, keywords, received_at)

    def _update(self, tx, account: str, email_id: str, patch: Any, created_ids: Mapping[str, str]) -> Optional[SetError]:
        if not isinstance(patch, dict):
            return SetError("invalidPatch", "a patch must be an object")
        current = tx.execute("SELECT 1 FROM emails WHERE account_id = ? AND id = ?", (account, email_id)).fetchone()
        if current is None:
            return SetError("notFound", f"no Email {email_id}")
        bad = [k for k in patch if k.split("/")[0] not in ("keywords", "mailboxIds")]
        if bad:
            return SetError("invalidProperties", "only keywords and mailboxIds can change", properties=bad)
        patch = {(f"mailboxIds/{resolve_id(k[11:], created_ids)}" if k.startswith("mailboxIds/") else k): v
                 for k, v in patch.items()}
        before = {
            "keywords": {k: True for k in store.keywords_of(tx, account, email_id)},
            "mailboxIds": {m: True for m in store.mailbox_ids_of(tx, account, email_id)},
        }
        lowered = {(f"keywords/{k[9:].lower()}" if k.startswith("keywords/") else k): v for k, v in patch.items()}
        try:
            after = apply_patch(before, lowered)
        except PatchError as e:
            return SetError("invalidPatch", str(e))
        if "keywords" in patch and isinstance(after.get("keywords"), dict):
            after["keywords"] = {k.lower(): v for k, v in after["keywords"].items()}
        if not _keywords_ok(after.get("keywords")):
            return SetError("invalidProperties", "keywords must map keywords to true", properties=["keywords"])
        error = _mailboxes_exist(tx, account, after.get("mailboxIds"))
        if error is not None:
            return error
        changed = store.set_keywords(tx, account, email_id, after["keywords"])
        changed = store.set_mailboxes(tx, account, email_id, after["mailboxIds"]) or changed
        if changed:
            record_change(tx, account, store.EMAIL, email_id, UPDATED)
        return None


def _window_in_sql(conn, account: str, filter_sql, sort_sql, position: int, anchor: Optional[str],
                   anchor_offset: int, limit: int, total_wanted: bool, only_mailbox: Optional[str] = None):
    """
    The page of a query SQL answers alone: (position, ids, total or None).
    Only the page's rows reach Python (LIMIT/OFFSET); the total is a
    COUNT, run only when asked for or needed to place a negative
    position; an anchor is looked for by reading ids up to it.
    """
    where, params, _ = filter_sql
    order, order_params = sort_sql
    source = f"FROM emails e WHERE e.account_id = ? AND {where}"
    args = (account, *params)

    def count() -> int:
        if only_mailbox is not None:
            # Kept exact by every Email write (stalwart.mail.emails).
            row = conn.execute("SELECT total_emails FROM mailbox_counts WHERE account_id = ? AND mailbox_id = ?",
                               (account, only_mailbox)).fetchone()
            return row[0] if row else 0
        return conn.execute(f"SELECT COUNT(*) {source}", args).fetchone()[0]

    total = None
    if anchor is not None:
        cursor = conn.execute(f"SELECT e.id {source} ORDER BY {order}", (*args, *order_params))
        try:
            index = next((n for n, (email_id,) in enumerate(cursor) if email_id == anchor), None)
        finally:
            cursor.close()
        if index is None:
            raise MethodError("anchorNotFound", f"{anchor} is not in the results")
        start = max(0, index + anchor_offset)
    elif position < 0:
        total = count()
        start = max(0, total + position)
    else:
        start = position
    page = [r[0] for r in conn.execute(f"SELECT e.id {source} ORDER BY {order} LIMIT ? OFFSET ?",
                                       (*args, *order_params, limit, start))]
    if not page and start > 0 and anchor is None:
        total = count() if total is None else total
        start = min(start, total)  # past the end: the position is the total (RFC 8620 5.5)
    if total_wanted and total is None:
        total = count()
    return start, page, total


def _text_queries(filter_: Any) -> List[str]:
    """FTS5 expressions of every text condition in a filter (for highlighting)."""
    from stalwart.mail.query import _TEXT_COLUMNS

    if not isinstance(filter_, dict):
        return []
    if "operator" in filter_:
        if filter_.get("operator") == "NOT":
            return []
        return [q for c in filter_.get("conditions") or [] for q in _text_queries(c)]
    return [fts_query(v, _TEXT_COLUMNS[k]) for k, v in filter_.items() if k in _TEXT_COLUMNS and isinstance(v, str)]


def _marked(text: str) -> str:
    """HTML-escape a snippet, then turn the match markers into <mark> (RFC 8621 5)."""
    return html.escape(text, quote=False).replace("\x01", "<mark>").replace("\x02", "</mark>")
