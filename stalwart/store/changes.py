# -*- test-case-name: tests.store.test_changes -*-
"""
JMAP state strings and the changes log (RFC 8620 sections 1.6.4 and 5.2).

Each account has one modification counter (modseq).  Every created,
updated or destroyed object takes the next value, so a client's state is
a point in that sequence and a C{/changes} answer can stop after any
change without splitting a group.  The state string of a type is the
modseq of its newest change, in decimal.  One row per object remembers
when it was created, last changed and whether it is gone; C{horizon} is
the oldest state from which changes can still be calculated (raised when
tombstones are pruned).

So that push (RFC 8620 section 7) learns what each log entry changed
without reading the database again, L{record_change} also notes the new
state in the L{StateCollector} that the state machine registers for its
connection (L{collect_states}); a connection without one (a test's) notes
nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Dict, List, Optional

import attrs

__all__ = ["StateCollector", "collect_states", "stop_collecting", "record_change", "state_of", "changes_since", "Changes", "CannotCalculate", "CREATED", "UPDATED", "DESTROYED"]

CREATED, UPDATED, DESTROYED = "created", "updated", "destroyed"


class CannotCalculate(Exception):
    """The client's state is unknown or older than the horizon."""


@attrs.frozen
class Changes:
    old_state: str
    new_state: str
    has_more: bool
    created: List[str]
    updated: List[str]
    destroyed: List[str]


class StateCollector:
    """
    The states each log entry changed, by entry index: C{{index: {account:
    {type: modseq}}}}.  Filled on the state machine's thread while it
    applies a batch; deterministic, since it follows the applies.
    """

    def __init__(self) -> None:
        self.index = 0
        self.changed: Dict[int, Dict[str, Dict[str, int]]] = {}

    def note(self, account_id: str, type_name: str, modseq: int) -> None:
        self.changed.setdefault(self.index, {}).setdefault(account_id, {})[type_name] = modseq

    def discard(self, index: int) -> None:
        """Entry C{index} was rolled back: it changed nothing."""
        self.changed.pop(index, None)

    def take(self) -> Dict[int, Dict[str, Dict[str, int]]]:
        changed, self.changed = self.changed, {}
        return changed


#: Collectors by writing connection.  Only state machines register; the
#: lookup in record_change is one dict probe.
_COLLECTORS: Dict[sqlite3.Connection, StateCollector] = {}


def collect_states(tx: sqlite3.Connection) -> StateCollector:
    """Note every change recorded through C{tx} in the returned collector."""
    collector = _COLLECTORS[tx] = StateCollector()
    return collector


def stop_collecting(tx: sqlite3.Connection) -> None:
    _COLLECTORS.pop(tx, None)


def _next_modseq(tx: sqlite3.Connection, account_id: str) -> int:
    (modseq,) = tx.execute(
        "UPDATE accounts SET modseq = modseq + 1 WHERE id = ? RETURNING modseq", (account_id,)
    ).fetchone()
    return modseq


def record_change(tx: sqlite3.Connection, account_id: str, type_name: str, object_id: str, kind: str) -> int:
    """Note that an object was created, updated or destroyed; returns the new modseq."""
    modseq = _next_modseq(tx, account_id)
    if kind == CREATED:
        tx.execute(
            "INSERT OR REPLACE INTO changes (account_id, type, id, created, modseq, destroyed)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            (account_id, type_name, object_id, modseq, modseq),
        )
    else:
        tx.execute(
            "UPDATE changes SET modseq = ?, destroyed = ? WHERE account_id = ? AND type = ? AND id = ?",
            (modseq, int(kind == DESTROYED), account_id, type_name, object_id),
        )
    tx.execute(
        "INSERT INTO states (account_id, type, modseq) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id, type) DO UPDATE SET modseq = excluded.modseq",
        (account_id, type_name, modseq),
    )
    collector = _COLLECTORS.get(tx)
    if collector is not None:
        collector.note(account_id, type_name, modseq)
    return modseq


def state_of(conn: sqlite3.Connection, account_id: str, type_name: str) -> str:
    row = conn.execute(
        "SELECT modseq FROM states WHERE account_id = ? AND type = ?", (account_id, type_name)
    ).fetchone()
    return str(row[0] if row else 0)


def parse_state(state: object) -> Optional[int]:
    if not isinstance(state, str) or not state.isdigit() or len(state) > 19:
        return None
    return int(state)


def changes_since(
    conn: sqlite3.Connection, account_id: str, type_name: str, since_state: str, max_changes: int
) -> Changes:
    """
    What changed after C{since_state}, at most C{max_changes} ids in all
    (RFC 8620 5.2).  Objects created and destroyed since are left out.
    """
    since = parse_state(since_state)
    row = conn.execute(
        "SELECT modseq, horizon FROM states WHERE account_id = ? AND type = ?",
        (account_id, type_name),
    ).fetchone()
    current, horizon = row if row else (0, 0)
    if since is None or since > current or since < horizon:
        raise CannotCalculate(since_state)
    rows = conn.execute(
        "SELECT id, created, modseq, destroyed FROM changes"
        " WHERE account_id = ? AND type = ? AND modseq > ? ORDER BY modseq LIMIT ?",
        (account_id, type_name, since, max_changes + 1),
    ).fetchall()
    has_more = len(rows) > max_changes
    rows = rows[:max_changes]
    created, updated, destroyed = [], [], []
    for object_id, created_at, _, gone in rows:
        if gone:
            if created_at <= since:
                destroyed.append(object_id)
        elif created_at > since:
            created.append(object_id)
        else:
            updated.append(object_id)
    new_state = str(rows[-1][2]) if has_more else str(current)
    return Changes(
        old_state=since_state,
        new_state=new_state,
        has_more=has_more,
        created=created,
        updated=updated,
        destroyed=destroyed,
    )
