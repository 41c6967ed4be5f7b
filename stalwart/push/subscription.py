# -*- test-case-name: tests.push.test_subscription -*-
"""
The PushSubscription data type (RFC 8620 section 7.2): PushSubscription/get
and PushSubscription/set, and the state machine's side of the set.

Subscriptions belong to the account of the credentials that created them
and go with it (ON DELETE CASCADE).  A set is one log entry like any write
(DESIGN.md 1): the proposing node picks each new subscription's
verification code (16 random bytes, hex) and the latest allowed expiry
(now + push-expires-max), so the apply reads neither randomness nor the
clock.  Ids come from the table's AUTOINCREMENT counter: the same on every
node.  The leader sends the PushVerification after the apply
(L{stalwart.push.delivery}); nothing else is pushed to a subscription
until the client has set the code it received.
"""

from __future__ import annotations

import datetime
import json
import re
import sqlite3
from typing import Any, Callable, Dict, List, Optional, Tuple

from stalwart.jmap.arguments import check_arguments, id_list
from stalwart.jmap.capabilities import CORE
from stalwart.jmap.errors import MethodError, SetError
from stalwart.push.webpush import BadKeys, check_keys

__all__ = [
    "PUSH_SCHEMA", "PushSubscriptionGet", "PushSubscriptionSet", "apply_push_set",
    "read_subscriptions", "Subscription", "parse_utc_date", "format_utc_date",
]

SET_METHOD = "PushSubscription/set"
#: Subscriptions one account may have: each costs a POST per change.
SUBSCRIPTIONS_PER_ACCOUNT_MAX = 50
URL_LENGTH_MAX = 2048
DEVICE_ID_LENGTH_MAX = 255

PUSH_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_subscriptions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    device_client_id TEXT NOT NULL,
    url TEXT NOT NULL,
    keys TEXT,
    verification_code TEXT,
    code_sent TEXT NOT NULL,
    expires TEXT NOT NULL,
    types TEXT
);
CREATE INDEX IF NOT EXISTS push_subscriptions_account ON push_subscriptions (account_id);
"""

DEFAULT_PROPERTIES = ("id", "deviceClientId", "verificationCode", "expires", "types")
PRIVATE_PROPERTIES = ("url", "keys")
_MUTABLE = {"verificationCode", "expires", "types"}
_UTC_DATE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d{1,9})?Z$")


def parse_utc_date(value: object) -> Optional[datetime.datetime]:
    """A UTCDate (RFC 8620 1.4), or None if it is not one."""
    match = _UTC_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return datetime.datetime(*map(int, match.groups()), tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def format_utc_date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_id(seq: int) -> str:
    return f"S{seq}"


def _seq(object_id: object) -> Optional[int]:
    if isinstance(object_id, str) and object_id[:1] == "S" and object_id[1:].isdigit() and len(object_id) < 20:
        return int(object_id[1:])
    return None


class Subscription:
    """One row, as delivery and /get see it."""

    __slots__ = ("id", "account", "device_client_id", "url", "keys", "verification_code", "code_sent", "expires", "types")

    def __init__(self, row: Tuple) -> None:
        seq, self.account, self.device_client_id, self.url, keys, self.verification_code, self.code_sent, self.expires, types = row
        self.id = _object_id(seq)
        self.keys = json.loads(keys) if keys else None
        self.types = json.loads(types) if types is not None else None

    @property
    def verified(self) -> bool:
        return self.verification_code == self.code_sent

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id, "deviceClientId": self.device_client_id, "url": self.url, "keys": self.keys,
            "verificationCode": self.verification_code, "expires": self.expires, "types": self.types,
        }


_COLUMNS = "seq, account_id, device_client_id, url, keys, verification_code, code_sent, expires, types"


def read_subscriptions(conn: sqlite3.Connection, account: str, ids: Optional[List[str]] = None) -> List[Subscription]:
    """The account's subscriptions (those of C{ids} only, if given)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM push_subscriptions WHERE account_id = ? ORDER BY seq", (account,)
    ).fetchall()
    subscriptions = [Subscription(row) for row in rows]
    if ids is not None:
        wanted = set(ids)
        subscriptions = [s for s in subscriptions if s.id in wanted]
    return subscriptions


class PushSubscriptionGet:
    """PushSubscription/get (RFC 8620 7.2.1): no accountId, no state."""

    capability = CORE

    def __call__(self, arguments, context, created_ids):
        check_arguments(arguments, {"ids", "properties"})
        ids = id_list(arguments, "ids")
        properties = arguments.get("properties")
        if properties is None:
            properties = list(DEFAULT_PROPERTIES)
        elif not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
            raise MethodError("invalidArguments", "properties must be an array of Strings", arguments=["properties"])
        for name in properties:
            if name in PRIVATE_PROPERTIES:
                raise MethodError("forbidden", f"{name} is never returned")
            if name not in DEFAULT_PROPERTIES:
                raise MethodError("invalidArguments", f"unknown property {name!r}", arguments=["properties"])
        if ids is not None and len(ids) > context.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_get} ids")
        wanted = set(properties) | {"id"}

        def answer(found: List[Subscription]):
            by_id = {s.id: s for s in found}
            if ids is None:
                listed = found
            else:
                listed = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
            not_found = [i for i in dict.fromkeys(ids or ()) if i not in by_id]
            items = [{k: v for k, v in s.to_json().items() if k in wanted} for s in listed]
            return [("PushSubscription/get", {"list": items, "notFound": not_found})]

        return context.reader.run(read_subscriptions, context.account_id).addCallback(answer)


def _check_create(obj: object) -> Optional[SetError]:
    """Everything about a new subscription that needs no state."""
    if not isinstance(obj, dict):
        return SetError("invalidProperties", "a PushSubscription must be an object")
    bad = [name for name in obj if name not in {"deviceClientId", "url", "keys", "verificationCode", "expires", "types"}]
    if bad:
        return SetError("invalidProperties", f"cannot set {bad[0]!r}", properties=bad)
    device = obj.get("deviceClientId")
    if not isinstance(device, str) or not device or len(device) > DEVICE_ID_LENGTH_MAX:
        return SetError("invalidProperties", "deviceClientId must be a non-empty String", properties=["deviceClientId"])
    url = obj.get("url")
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > URL_LENGTH_MAX or any(c.isspace() for c in url) or len(url) <= len("https://"):
        return SetError("invalidProperties", "url must be an absolute https:// URL", properties=["url"])
    keys = obj.get("keys")
    if keys is not None:
        if not isinstance(keys, dict) or set(keys) != {"p256dh", "auth"}:
            return SetError("invalidProperties", "keys must have exactly p256dh and auth", properties=["keys"])
        try:
            check_keys(keys["p256dh"], keys["auth"])
        except BadKeys as e:
            return SetError("invalidProperties", f"keys: {e}", properties=["keys"])
    if obj.get("verificationCode") is not None:
        return SetError("invalidProperties", "verificationCode must be null on create", properties=["verificationCode"])
    return _check_mutable(obj)


def _check_mutable(obj: Dict) -> Optional[SetError]:
    if "expires" in obj and obj["expires"] is not None and parse_utc_date(obj["expires"]) is None:
        return SetError("invalidProperties", "expires must be a UTCDate or null", properties=["expires"])
    if "types" in obj and obj["types"] is not None:
        types = obj["types"]
        if not isinstance(types, list) or len(types) > 256 or not all(isinstance(t, str) and t for t in types):
            return SetError("invalidProperties", "types must be null or an array of type names", properties=["types"])
    return None


class PushSubscriptionSet:
    """PushSubscription/set (RFC 8620 7.2.2): no accountId, no ifInState, no states."""

    capability = CORE

    def __init__(self, urandom: Callable[[int], bytes], clock, expires_max: float) -> None:
        """@param expires_max: seconds from now an expiry may be at most (push-expires-max)."""
        self._urandom = urandom
        self._clock = clock
        self._expires_max = expires_max

    def __call__(self, arguments, context, created_ids):
        check_arguments(arguments, {"create", "update", "destroy"})
        create = arguments.get("create") or {}
        update = arguments.get("update") or {}
        destroy = id_list(arguments, "destroy") or []
        if not isinstance(create, dict) or not isinstance(update, dict):
            raise MethodError("invalidArguments", "create and update must be objects")
        if len(create) + len(update) + len(destroy) > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} changes")
        not_created = {}
        for creation_id, obj in create.items():
            error = _check_create(obj)
            if error is not None:
                not_created[creation_id] = error.to_json()
        latest = datetime.datetime.fromtimestamp(int(self._clock.seconds() + self._expires_max), tz=datetime.timezone.utc)
        args = {
            "create": {cid: obj for cid, obj in create.items() if cid not in not_created},
            "update": update,
            "destroy": destroy,
            "notCreated": not_created,
            "codes": {cid: self._urandom(16).hex() for cid in create if cid not in not_created},
            "latest": format_utc_date(latest),
        }
        return context.write(SET_METHOD, context.account_id, args, created_ids)


def _capped(expires: Optional[str], latest: str) -> str:
    moment = parse_utc_date(expires) if expires is not None else None
    if moment is None:
        return latest
    return min(format_utc_date(moment), latest)


def _resolve(object_id: str, created_ids: Dict) -> str:
    return created_ids.get(object_id[1:], object_id) if object_id.startswith("#") else object_id


def apply_push_set(ctx, account: str, args: Dict, created_ids: Dict, now: str) -> List:
    """The state machine's side of PushSubscription/set: deterministic."""
    tx = ctx.tx
    latest = args["latest"]
    created, not_created = {}, dict(args["notCreated"])
    (count,) = tx.execute("SELECT COUNT(*) FROM push_subscriptions WHERE account_id = ?", (account,)).fetchone()
    for creation_id, obj in args["create"].items():
        if count >= SUBSCRIPTIONS_PER_ACCOUNT_MAX:
            not_created[creation_id] = SetError("overQuota", f"at most {SUBSCRIPTIONS_PER_ACCOUNT_MAX} push subscriptions").to_json()
            continue
        expires = _capped(obj.get("expires"), latest)
        keys = obj.get("keys")
        (seq,) = tx.execute(
            "INSERT INTO push_subscriptions (account_id, device_client_id, url, keys, verification_code,"
            " code_sent, expires, types) VALUES (?, ?, ?, ?, NULL, ?, ?, ?) RETURNING seq",
            (account, obj["deviceClientId"], obj["url"], json.dumps(keys) if keys is not None else None,
             args["codes"][creation_id], expires, json.dumps(obj["types"]) if obj.get("types") is not None else None),
        ).fetchone()
        count += 1
        created_ids[creation_id] = _object_id(seq)
        created[creation_id] = {"id": _object_id(seq), "keys": keys, "expires": expires}
    updated, not_updated = {}, {}
    for object_id, patch in args["update"].items():
        object_id = _resolve(object_id, created_ids)
        outcome = _update_one(tx, account, object_id, patch, latest)
        if isinstance(outcome, SetError):
            not_updated[object_id] = outcome.to_json()
        else:
            updated[object_id] = outcome
    destroyed, not_destroyed = [], {}
    for object_id in args["destroy"]:
        object_id = _resolve(object_id, created_ids)
        seq = _seq(object_id)
        gone = seq is not None and tx.execute(
            "DELETE FROM push_subscriptions WHERE seq = ? AND account_id = ? RETURNING seq", (seq, account)
        ).fetchone()
        if gone:
            destroyed.append(object_id)
        else:
            not_destroyed[object_id] = SetError("notFound").to_json()
    response = {
        "created": created or None, "notCreated": not_created or None,
        "updated": updated or None, "notUpdated": not_updated or None,
        "destroyed": destroyed or None, "notDestroyed": not_destroyed or None,
    }
    return [(SET_METHOD, response)]


def _update_one(tx, account: str, object_id: str, patch: object, latest: str):
    seq = _seq(object_id)
    row = seq is not None and tx.execute(
        "SELECT code_sent, expires FROM push_subscriptions WHERE seq = ? AND account_id = ?", (seq, account)
    ).fetchone()
    if not row:
        return SetError("notFound")
    if not isinstance(patch, dict):
        return SetError("invalidPatch", "a patch must be an object")
    immutable = [name for name in patch if name not in _MUTABLE]
    if immutable:
        return SetError("invalidProperties", f"{immutable[0]} cannot be changed", properties=immutable)
    error = _check_mutable(patch)
    if error is not None:
        return error
    code_sent, old_expires = row
    changes: Dict[str, Any] = {}
    if "verificationCode" in patch:
        if patch["verificationCode"] != code_sent:
            return SetError("invalidProperties", "wrong verification code", properties=["verificationCode"])
        tx.execute("UPDATE push_subscriptions SET verification_code = ? WHERE seq = ?", (code_sent, seq))
    if "types" in patch:
        types = patch["types"]
        tx.execute("UPDATE push_subscriptions SET types = ? WHERE seq = ?", (json.dumps(types) if types is not None else None, seq))
    if "expires" in patch:
        expires = _capped(patch["expires"], latest)
        tx.execute("UPDATE push_subscriptions SET expires = ? WHERE seq = ?", (expires, seq))
        if expires != patch["expires"]:
            changes["expires"] = expires
    return changes or None
