# -*- test-case-name: tests.store.test_apply -*-
"""
The SQLite schema of the replicated state (state.db).

Every row here is written only by the state machine applying log entries,
so every node holds the same rows.  C{meta.last_applied} moves in the same
transaction as an entry's effects: a crash either keeps both or neither,
and the entries after it are applied again at start (exactly once).
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA_VERSION", "connect", "create_schema"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Raft's own state as of last_applied: the term of that entry and the
-- newest configuration entry applied (L{stalwart.cluster.raft.messages}
-- encoding), which a restarted node and a snapshot start from.
CREATE TABLE IF NOT EXISTS raft_state (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
-- Nodes that asked to leave the cluster for good (cluster.leave): the
-- leader takes each out of the Raft configuration.
CREATE TABLE IF NOT EXISTS cluster_leaving (
    node_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    quota INTEGER,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    next_id INTEGER NOT NULL DEFAULT 1,
    modseq INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS addresses (
    address TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS addresses_by_account ON addresses(account_id);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_account ON tokens(account_id);
CREATE TABLE IF NOT EXISTS blobs (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    type TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (account_id, blob_id)
);
CREATE TABLE IF NOT EXISTS objects (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (account_id, type, id)
);
CREATE TABLE IF NOT EXISTS changes (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    destroyed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, type, id)
);
CREATE INDEX IF NOT EXISTS changes_by_modseq ON changes(account_id, type, modseq);
CREATE TABLE IF NOT EXISTS states (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    horizon INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, type)
);
"""


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    """
    Open state.db.  Writers get WAL with synchronous=NORMAL: the Raft log,
    not SQLite, is what makes an entry durable, and a transaction lost to
    a power cut is applied again from the log.
    """
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)  # idempotent; executescript commits on its own
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT INTO meta VALUES ('last_applied', 0)")
            conn.execute("INSERT INTO meta VALUES ('next_account', 1)")
        elif row[0] != SCHEMA_VERSION:
            raise RuntimeError(
                f"state.db has schema version {row[0]}, this server knows {SCHEMA_VERSION}"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
