# -*- test-case-name: tests.service.test_maker -*-
"""
The "raft" service: opens the segment log and hard state, replays what
the state machine has not applied yet, and runs the driver.

For now the group is this node alone (DESIGN.md section 1: a single node
is a Raft group of one); the cluster issue adds peers through the same
core.
"""

from __future__ import annotations

import os
import random
from typing import Callable

from twisted.application.service import Service

from stalwart.cluster.raft.core import RaftConfig, RaftCore
from stalwart.cluster.raft.driver import RaftDriver
from stalwart.cluster.raft.hardstate import HardStateFile
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import decode_entry_payload
from stalwart.cluster.raft.segments.files import SegmentLog
from stalwart.service.errors import ConfigError
from stalwart.service.store import StoreService, synchronous_worker
from stalwart.service.worker import ThreadWorker

__all__ = ["RaftService", "node_id", "raft_config"]

TICK_SECONDS = 0.1


def raft_config(election_timeout_ms: int, batch_bytes_max: int) -> RaftConfig:
    """The core's configuration from the raft-election-timeout and raft-batch-max keys."""
    return RaftConfig(
        election_ticks=max(2, round(election_timeout_ms / 1000 / TICK_SECONDS)),
        append_batch_bytes_max=batch_bytes_max,
    )


def node_id(data_dir: str, urandom: Callable[[int], bytes]) -> str:
    """This node's permanent id, created on first start."""
    path = os.path.join(data_dir, "node-id")
    try:
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = "n" + urandom(8).hex()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return value


class RaftService(Service):
    def __init__(self, data_dir: str, store: StoreService, reactor, urandom: Callable[[int], bytes], threads: bool = True,
                 raft_config: RaftConfig = RaftConfig()) -> None:
        """
        @param raft_config: timeouts in ticks of L{TICK_SECONDS} and batch limits
            (from raft-election-timeout and raft-batch-max; see L{raft_config}).
        @param threads: C{False} writes the log on the calling thread
            (L{synchronous_worker}), for in-process tests with a fake reactor.
        """
        self.data_dir = data_dir
        self.store = store
        self._reactor = reactor
        self._urandom = urandom
        self._raft_config = raft_config
        self._log_pool = ThreadWorker("stalwart-log", reactor.callFromThread) if threads else None
        self.driver = None
        self.segments = None

    def startService(self) -> None:
        raft_dir = os.path.join(self.data_dir, "raft")
        self.segments = SegmentLog.open(raft_dir)
        hard_state_file = HardStateFile(os.path.join(raft_dir, "hardstate"))
        hard_state = hard_state_file.load()
        me = node_id(self.data_dir, self._urandom)
        state_machine = self.store.state_machine
        applied, last = state_machine.last_applied, self.segments.last_index
        if applied > last:
            raise ConfigError(
                f"{self.data_dir}: state.db has applied entry {applied} but the raft log ends at {last}; "
                "the log lost committed entries, refusing to start"
            )
        # Entries applied before a crash may be missing from state.db if
        # SQLite lost its last transactions; they are applied again here.
        tail = [decode_entry_payload(r.term, r.index, r.payload) for r in self.segments.read(applied + 1, last)] if last > applied else []
        log = RaftLog(last, self.segments.term_at, tail, applied)
        core = RaftCore(self._raft_config, me, log, hard_state, voters=frozenset({me}), rng=random.SystemRandom())
        if self._log_pool is not None:
            self._log_pool.start()
            log_worker = self._log_pool
        else:
            log_worker = synchronous_worker
        self.driver = RaftDriver(
            core, self.segments, hard_state_file, state_machine, self._reactor,
            log_worker=log_worker,
            apply_worker=self.store.apply_worker,
            tick_seconds=TICK_SECONDS,
            call_from_thread=self._reactor.callFromThread if self._log_pool is not None else None,
        )
        self.driver.start()
        super().startService()

    def stopService(self):
        super().stopService()
        if self.driver is None:
            return None

        def close(result):
            if self._log_pool is not None:
                self._log_pool.stop()
            self.segments.close()
            return result

        return self.driver.stop().addBoth(close)
