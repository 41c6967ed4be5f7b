# -*- test-case-name: tests.cluster.raft.test_driver -*-
"""
Group commit: the log thread writes every Ready queued so far, then makes
them durable with one fsync.

Readies are written and reported in the order they were submitted.
While one fsync runs, new Readies queue up; the thread takes them all as
soon as it is free, without waiting for the reactor in between, so under
load each fsync covers as many proposals as arrived during the previous
one.  After a failure nothing more is written: every queued and later
Ready fails (a failed fsync cannot be retried safely).
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["LogWriter"]


class LogWriter:
    def __init__(
        self,
        persist: Callable[[List[object]], None],
        worker: Callable[..., Deferred],
        call_from_thread: Callable[..., None],
    ) -> None:
        """
        @param persist: writes a list of Readies and fsyncs once; runs on
            the log thread.
        @param worker: runs a function on the (single) log thread.
        @param call_from_thread: schedules a call on the reactor thread.
        """
        self._persist = persist
        self._worker = worker
        self._call_from_thread = call_from_thread
        self._lock = threading.Lock()
        self._pending: List[Tuple[object, Deferred]] = []
        self._running = False
        self._failure: Optional[Failure] = None
        self.writes = 0

    def submit(self, ready) -> Deferred:
        """Fires once C{ready} and everything submitted before it is durable."""
        d = Deferred()
        if self._failure is not None:
            d.errback(self._failure)
            return d
        with self._lock:
            self._pending.append((ready, d))
            start, self._running = not self._running, True
        if start:
            self._worker(self._drain).addErrback(self._crashed)
        return d

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._running

    def _drain(self) -> None:
        """Runs on the log thread until nothing is queued."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._running = False
                    return
            try:
                self._persist([ready for ready, _ in batch])
            except BaseException:
                failure = Failure()
                with self._lock:
                    batch += self._pending
                    self._pending = []
                    self._running = False
                self._call_from_thread(self._report, batch, failure)
                return
            self.writes += 1
            self._call_from_thread(self._report, batch, None)

    def _report(self, batch, failure: Optional[Failure]) -> None:
        if failure is not None:
            self._failure = failure
        for ready, d in batch:
            if failure is None:
                d.callback(ready)
            else:
                d.errback(failure)

    def _crashed(self, failure: Failure) -> None:
        # _drain catches everything; reaching here is a bug in this module.
        self._report([], failure)
