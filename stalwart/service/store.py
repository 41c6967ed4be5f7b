# -*- test-case-name: tests.service.test_maker -*-
"""
The "store" service: state.db, blob files and the threads that use them.

SQLite and file work never runs on the reactor: one thread applies
entries (so they apply in order), a small pool serves reads.
"""

from __future__ import annotations

import os
from typing import Mapping

from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from stalwart.store.apply import Handler, StateMachine
from stalwart.store.blobs import BlobStore
from stalwart.store.reader import Reader

__all__ = ["StoreService", "pool_worker"]

READ_THREADS = 4


def pool_worker(reactor, pool: ThreadPool):
    return lambda f, *args: deferToThreadPool(reactor, pool, f, *args)


class StoreService(Service):
    def __init__(self, data_dir: str, handlers: Mapping[str, Handler], reactor) -> None:
        self.data_dir = data_dir
        self._handlers = handlers
        self._reactor = reactor
        self.state_machine = None
        self.reader = None
        self.blobs = None
        self._apply_pool = ThreadPool(1, 1, name="stalwart-apply")
        self._read_pool = ThreadPool(1, READ_THREADS, name="stalwart-read")
        self.apply_worker = pool_worker(reactor, self._apply_pool)

    def startService(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        db_path = os.path.join(self.data_dir, "state.db")
        self.blobs = BlobStore(os.path.join(self.data_dir, "blobs"))
        self.state_machine = StateMachine(db_path, self.blobs, self._handlers)
        self._apply_pool.start()
        self._read_pool.start()
        self.reader = Reader(db_path, pool_worker(self._reactor, self._read_pool))
        super().startService()

    def stopService(self):
        super().stopService()
        # The raft service, stopped before us, has drained the apply queue.
        self._apply_pool.stop()
        self._read_pool.stop()
        if self.reader is not None:
            self.reader.close()
        if self.state_machine is not None:
            self.state_machine.close()
