# -*- test-case-name: tests.store.test_apply -*-
"""
The state machine: applies committed log entries to state.db, in order,
exactly once.

One call to L{StateMachine.apply} is one SQLite transaction covering a
batch of entries and the new C{last_applied}.  A deterministic refusal
(L{Refused}) or a bug in a handler (TypeError, KeyError...) rolls back
that entry alone and becomes its result, the same on every node.  Entries
are first applied without savepoints (two statements fewer each); only
when one of them is refused is the batch rolled back and applied again
with a savepoint around each entry.  The JMAP states each entry changed
are kept for the push listeners (L{StateMachine.changed_states}).  Errors of this node's own environment
(SQLite I/O errors, a full disk) are raised instead: skipping the entry
here while other nodes apply it would make replicas diverge.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence

import attrs
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.raft.messages import ENTRY_CONFIG, ENTRY_NORMAL, Entry, decode_configuration
from stalwart.store.blobs import BlobStore
from stalwart.store.changes import collect_states, stop_collecting
from stalwart.store.commands import BadCommand, Command, decode_command
from stalwart.store.refusal import Refused
from stalwart.store.schema import connect, create_schema

__all__ = ["StateMachine", "ApplyContext", "Handler"]


@attrs.frozen
class ApplyContext:
    """What a command handler may touch: the transaction and the blob files."""

    tx: sqlite3.Connection
    blobs: BlobStore
    index: int
    command: Command


Handler = Callable[[ApplyContext], Any]

_LOCAL_ERRORS = (sqlite3.OperationalError, sqlite3.DatabaseError, OSError, MemoryError)


class _Isolate(Exception):
    """An entry must be undone alone: apply the batch again with savepoints."""


def _removed_members(previous: Optional[bytes], configs: Sequence[bytes], removed: FrozenSet[str]) -> FrozenSet[str]:
    """C{removed} plus the members each configuration in turn dropped, minus those it (re)admitted."""
    members = decode_configuration(previous).members if previous is not None else frozenset()
    for data in configs:
        new = decode_configuration(data).members
        removed = (removed | (members - new)) - new
        members = new
    return removed


class StateMachine:
    log = Logger(observer=observer)

    def __init__(self, db_path: str, blobs: BlobStore, handlers: Mapping[str, Handler], schema: str = "") -> None:
        """@param schema: extra SQL (CREATE ... IF NOT EXISTS) of data types' tables."""
        self.db_path = db_path
        self.blobs = blobs
        self._handlers = dict(handlers)
        self._conn = connect(db_path)
        create_schema(self._conn)
        if schema:
            self._conn.executescript(schema)
        self._collector = collect_states(self._conn)
        self._changed: Dict[int, Dict[str, Dict[str, int]]] = {}
        self._read_position()

    def _read_position(self) -> None:
        (self.last_applied,) = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'last_applied'"
        ).fetchone()
        raft_state = dict(self._conn.execute("SELECT key, value FROM raft_state"))
        #: The term of entry last_applied (0 before the first entry).
        self.last_applied_term = int(raft_state.get("applied_term", b"0"))
        #: The payload of the last applied ENTRY_CONFIG entry, or None.
        self.configuration = raft_state.get("configuration")
        #: The cluster this state belongs to: the smallest voter of the
        #: first configuration applied (its founder), the same on every
        #: node; None until one is applied.
        #: Nodes taken out of the configuration: the leader never adds
        #: them back by itself (L{stalwart.cluster.roster.next_change}).
        self.removed_members = frozenset(json.loads(raft_state.get("removed", b"[]")))
        cluster_id = raft_state.get("cluster_id")
        self.cluster_id = cluster_id.decode() if cluster_id is not None else None

    def backup_to(self, target: sqlite3.Connection) -> None:
        """
        Copy the whole state as of C{last_applied} into C{target} (SQLite's
        online backup API: consistent, readers unaffected).  For
        L{stalwart.store.snapshot}; runs on the apply thread, between batches.
        """
        self._conn.backup(target)

    def load_snapshot(self, db_path: str) -> None:
        """
        Replace the whole state with the database at C{db_path} (a
        snapshot's), in one transaction through the backup API, so that
        other connections see the old state or the new one; then read
        C{last_applied} and the Raft state again.  Runs on the apply thread.
        """
        source = sqlite3.connect(db_path)
        try:
            source.backup(self._conn)
        finally:
            source.close()
        self._changed = {}
        self._read_position()

    def apply(self, entries: Sequence[Entry]) -> List[Any]:
        """Apply C{entries} (consecutive, starting at last_applied + 1); runs off the reactor."""
        if not entries:
            return []
        assert entries[0].index == self.last_applied + 1, (entries[0].index, self.last_applied)
        conn = self._conn
        self._collector.take()
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                results = [self._apply_one(entry, isolate=False) for entry in entries]
            except _Isolate:
                self._collector.take()
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = [self._apply_one(entry, isolate=True) for entry in entries]
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'last_applied'", (entries[-1].index,)
            )
            configs = [e.data for e in entries if e.kind == ENTRY_CONFIG]
            raft_state = [("applied_term", str(entries[-1].term).encode())]
            removed = self.removed_members
            if configs:
                raft_state.append(("configuration", configs[-1]))
                removed = _removed_members(self.configuration, configs, removed)
                raft_state.append(("removed", json.dumps(sorted(removed)).encode()))
            cluster_id = self.cluster_id
            if cluster_id is None and configs:
                cluster_id = min(decode_configuration(configs[0]).voters)
                raft_state.append(("cluster_id", cluster_id.encode()))
            conn.executemany("INSERT OR REPLACE INTO raft_state VALUES (?, ?)", raft_state)
            # Blob files first: the rows about to commit name them.
            self.blobs.sync()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.last_applied = entries[-1].index
        self.last_applied_term = entries[-1].term
        if configs:
            self.configuration = configs[-1]
            self.removed_members = removed
        self.cluster_id = cluster_id
        self._changed = self._collector.take()
        return results

    def changed_states(self, index: int) -> Mapping[str, Mapping[str, int]]:
        """
        C{{account: {type: modseq}}} of the states entry C{index} of the
        last applied batch changed.  The driver calls its on_applied
        listeners (on the reactor thread) before it starts the next apply,
        so they may read this safely.
        """
        return self._changed.get(index, {})

    def _apply_one(self, entry: Entry, isolate: bool) -> Any:
        if entry.kind != ENTRY_NORMAL:
            # No-ops and configuration entries are Raft's own; the cluster
            # keeps configurations itself (not a command for the state).
            return None
        try:
            command = decode_command(entry.data)
        except BadCommand as e:
            return Refused("badCommand", f"entry {entry.index}: {e}")
        handler = self._handlers.get(command.kind)
        if handler is None:
            return Refused("unknownCommand", f"entry {entry.index}: no handler for {command.kind!r}")
        conn = self._conn
        self._collector.index = entry.index
        context = ApplyContext(tx=conn, blobs=self.blobs, index=entry.index, command=command)
        if not isolate:
            try:
                return handler(context)
            except _LOCAL_ERRORS:
                raise
            except Exception:
                raise _Isolate() from None
        conn.execute("SAVEPOINT entry")
        try:
            result = handler(context)
        except Refused as refusal:
            self._collector.discard(entry.index)
            conn.execute("ROLLBACK TO entry")
            conn.execute("RELEASE entry")
            return refusal
        except _LOCAL_ERRORS:
            raise
        except Exception:
            self.log.failure("applying entry {index} ({kind}) failed", index=entry.index, kind=command.kind)
            self._collector.discard(entry.index)
            conn.execute("ROLLBACK TO entry")
            conn.execute("RELEASE entry")
            return Refused("serverFail", f"entry {entry.index} could not be applied")
        conn.execute("RELEASE entry")
        return result

    def close(self) -> None:
        stop_collecting(self._conn)
        self._conn.close()
