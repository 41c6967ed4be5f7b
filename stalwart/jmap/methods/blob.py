# -*- test-case-name: tests.jmap.test_blobs -*-
"""
Blobs: the upload command (RFC 8620 section 6.1) and Blob/copy (6.3).

An upload is a log entry carrying the bytes (DESIGN.md section 1): the
state machine writes the content-addressed file, then records the blob
for the account, counting it against the quota once.
"""

from __future__ import annotations

from typing import Dict, List

from stalwart.jmap.arguments import check_arguments, required
from stalwart.jmap.capabilities import CORE
from stalwart.jmap.errors import MethodError, SetError
from stalwart.store.apply import ApplyContext
from stalwart.store.blobs import blob_id_for, is_blob_id
from stalwart.store.refusal import Refused

__all__ = ["UPLOAD_COMMAND", "apply_upload", "BlobCopy", "apply_blob_copy", "add_blob"]

UPLOAD_COMMAND = "blob.upload"


def add_blob(tx, account: str, blob_id: str, size: int, content_type: str, now: str) -> None:
    """Give C{account} the blob, charging its quota unless it already had it."""
    if tx.execute("SELECT 1 FROM blobs WHERE account_id = ? AND blob_id = ?", (account, blob_id)).fetchone():
        return
    quota, used = tx.execute("SELECT quota, used_bytes FROM accounts WHERE id = ?", (account,)).fetchone()
    if quota is not None and used + size > quota:
        raise Refused("overQuota", f"blob of {size} bytes exceeds the quota ({used} of {quota} bytes used)")
    tx.execute(
        "INSERT INTO blobs (account_id, blob_id, size, type, created) VALUES (?, ?, ?, ?, ?)",
        (account, blob_id, size, content_type, now),
    )
    tx.execute("UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?", (size, account))


def apply_upload(ctx: ApplyContext) -> Dict:
    args = ctx.command.args
    account = args["account"]
    if ctx.tx.execute("SELECT 1 FROM accounts WHERE id = ?", (account,)).fetchone() is None:
        raise Refused("accountNotFound", f"account {account!r} does not exist")
    data = ctx.command.body
    # Charge the quota before writing the file: a refused upload must
    # leave nothing on disk, or an account over quota could still fill
    # it.  The file is still written before the transaction commits.
    blob_id = blob_id_for(data)
    add_blob(ctx.tx, account, blob_id, len(data), args["type"], args["now"])
    ctx.blobs.write(data)
    return {"accountId": account, "blobId": blob_id, "type": args["type"], "size": len(data)}


class BlobCopy:
    capability = CORE

    def __call__(self, arguments, context, created_ids):
        check_arguments(arguments, {"fromAccountId", "accountId", "blobIds"})
        if not isinstance(arguments.get("fromAccountId"), str):
            raise MethodError("invalidArguments", "fromAccountId must be an Id", arguments=["fromAccountId"])
        source = context.account(arguments, "fromAccountId")
        account = context.account(arguments)
        blob_ids = required(arguments, "blobIds", list)
        if not all(isinstance(b, str) for b in blob_ids):
            raise MethodError("invalidArguments", "blobIds must be an array of Ids", arguments=["blobIds"])
        if len(blob_ids) > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} blobs per Blob/copy")
        args = {"fromAccountId": source, "blobIds": blob_ids}
        return context.write("Blob/copy", account, args, created_ids)


def apply_blob_copy(ctx: ApplyContext, account: str, args: Dict, created_ids: Dict, now: str) -> List:
    copied, not_copied = {}, {}
    for blob_id in args["blobIds"]:
        row = ctx.tx.execute(
            "SELECT size, type FROM blobs WHERE account_id = ? AND blob_id = ?",
            (args["fromAccountId"], blob_id),
        ).fetchone() if is_blob_id(blob_id) else None
        if row is None:
            not_copied[blob_id] = SetError("notFound", f"no blob {blob_id}").to_json()
            continue
        try:
            add_blob(ctx.tx, account, blob_id, row[0], row[1], now)
        except Refused as refusal:
            not_copied[blob_id] = SetError("overQuota", refusal.detail).to_json()
            continue
        copied[blob_id] = blob_id
    return [("Blob/copy", {
        "fromAccountId": args["fromAccountId"], "accountId": account,
        "copied": copied or None, "notCopied": not_copied or None,
    })]
