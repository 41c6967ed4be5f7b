# -*- test-case-name: tests.store.test_reader -*-
"""
Reads of state.db off the reactor thread.

Each worker thread keeps its own read-only connection; every call runs in
one read transaction, so it sees a consistent snapshot (SQLite WAL lets
readers proceed while the state machine writes).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from twisted.internet.defer import Deferred

from stalwart.store.schema import connect

__all__ = ["Reader"]


class Reader:
    def __init__(self, db_path: str, worker: Callable[..., Deferred]) -> None:
        """
        @param worker: C{worker(f, *args)} runs C{f} on a thread of the read
            pool and returns a Deferred of its result.
        """
        self._db_path = db_path
        self._worker = worker
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """Fires with C{fn(connection, *args)}."""
        return self._worker(self._in_thread, fn, args)

    def _in_thread(self, fn: Callable[..., Any], args: tuple) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self._db_path, readonly=True)
            with self._lock:
                self._connections.append(conn)
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except Exception:
                    pass
            self._connections = []
