# -*- test-case-name: tests.service.test_maker -*-
"""
The "store" service: state.db, blob files and the threads that use them.

SQLite and file work never runs on the reactor: one thread applies
entries (so they apply in order), a small pool serves reads.
"""

from __future__ import annotations

import fcntl
import os
from typing import Mapping, Optional

from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from stalwart.service.errors import ConfigError
from stalwart.store.apply import Handler, StateMachine
from stalwart.store.blobs import BlobStore
from stalwart.service.worker import ThreadWorker
from stalwart.store.reader import Reader

__all__ = ["StoreService", "pool_worker", "synchronous_worker"]

READ_THREADS = 4


def pool_worker(reactor, pool: ThreadPool):
    return lambda f, *args: deferToThreadPool(reactor, pool, f, *args)


def synchronous_worker(f, *args):
    """
    Run C{f(*args)} at once on the calling thread: a worker for tests that
    drive a whole node in-process without threads (C{threads=False}).
    """
    return maybeDeferred(f, *args)


def lock_data_dir(data_dir: str) -> int:
    """
    Hold an exclusive lock on C{data_dir} for as long as the returned file
    descriptor is open: two processes writing one Raft log and one
    state.db would corrupt both.  The kernel drops the lock when the
    process dies, so a crash never leaves the directory locked.
    @raise ConfigError: another process holds it.
    """
    path = os.path.join(data_dir, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{os.path.abspath(data_dir)}: in use by another stalwart-jmap process "
                          "(each node needs its own data-dir)") from None
    return fd


class StoreService(Service):
    def __init__(self, data_dir: str, handlers: Mapping[str, Handler], reactor, threads: bool = True, schema: str = "") -> None:
        """
        @param threads: C{False} runs applies and reads on the calling
            thread (L{synchronous_worker}), so tests can drive the store
            with a fake reactor; production always uses threads.
        """
        self.data_dir = data_dir
        self._handlers = handlers
        self._schema = schema
        self._reactor = reactor
        self.state_machine = None
        self.reader = None
        self.blobs = None
        self._pools = []
        self._apply_thread = None
        self._lock: Optional[int] = None
        if threads:
            self._apply_thread = ThreadWorker("stalwart-apply", reactor.callFromThread)
            self._read_pool = ThreadPool(1, READ_THREADS, name="stalwart-read")
            self._pools = [self._read_pool]
            self.apply_worker = self._apply_thread
            self._read_worker = pool_worker(reactor, self._read_pool)
        else:
            self.apply_worker = self._read_worker = synchronous_worker

    def startService(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        self._lock = lock_data_dir(self.data_dir)
        db_path = os.path.join(self.data_dir, "state.db")
        self.blobs = BlobStore(os.path.join(self.data_dir, "blobs"))
        self.state_machine = StateMachine(db_path, self.blobs, self._handlers, self._schema)
        for pool in self._pools:
            pool.start()
        if self._apply_thread is not None:
            self._apply_thread.start()
        self.reader = Reader(db_path, self._read_worker)
        super().startService()

    def stopService(self):
        super().stopService()
        # The raft service, stopped before us, has drained the apply queue.
        for pool in self._pools:
            pool.stop()
        if self._apply_thread is not None:
            self._apply_thread.stop()
        if self.reader is not None:
            self.reader.close()
        if self.state_machine is not None:
            self.state_machine.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None
