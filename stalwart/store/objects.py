# -*- test-case-name: tests.jmap.test_standard -*-
"""
Generic storage of JMAP objects as JSON rows, for data types whose
queries are small enough to run over all of an account's objects.
Types with large collections (Email) keep their own tables.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Dict, Iterable, Optional

from stalwart.jmap.ids import encode_counter

__all__ = ["load_objects", "load_object", "save_object", "delete_object", "next_object_id"]


def load_objects(
    conn: sqlite3.Connection, account_id: str, type_name: str, ids: Optional[Iterable[str]] = None
) -> Dict[str, dict]:
    """Objects by id; all of the type when C{ids} is None.  Unknown ids are absent."""
    if ids is None:
        rows = conn.execute(
            "SELECT id, data FROM objects WHERE account_id = ? AND type = ? ORDER BY id",
            (account_id, type_name),
        )
        return {i: json.loads(d) for i, d in rows}
    found = {}
    for object_id in ids:
        obj = load_object(conn, account_id, type_name, object_id)
        if obj is not None:
            found[object_id] = obj
    return found


def load_object(conn: sqlite3.Connection, account_id: str, type_name: str, object_id: str) -> Optional[dict]:
    row = conn.execute(
        "SELECT data FROM objects WHERE account_id = ? AND type = ? AND id = ?",
        (account_id, type_name, object_id),
    ).fetchone()
    return json.loads(row[0]) if row else None


def save_object(tx: sqlite3.Connection, account_id: str, type_name: str, object_id: str, obj: dict) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO objects (account_id, type, id, data) VALUES (?, ?, ?, ?)",
        (account_id, type_name, object_id, json.dumps(obj, separators=(",", ":"), sort_keys=True)),
    )


def delete_object(tx: sqlite3.Connection, account_id: str, type_name: str, object_id: str) -> bool:
    return bool(
        tx.execute(
            "DELETE FROM objects WHERE account_id = ? AND type = ? AND id = ?",
            (account_id, type_name, object_id),
        ).rowcount
    )


def next_object_id(tx: sqlite3.Connection, account_id: str, prefix: str) -> str:
    """A new id from the account's counter: deterministic on every node."""
    (counter,) = tx.execute(
        "UPDATE accounts SET next_id = next_id + 1 WHERE id = ? RETURNING next_id - 1", (account_id,)
    ).fetchone()
    return encode_counter(prefix, counter)
