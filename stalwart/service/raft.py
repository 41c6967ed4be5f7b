# -*- test-case-name: tests.service.test_maker -*-
"""
The "raft" service: opens the segment log and hard state, replays what
the state machine has not applied yet, and runs the driver.

A single node is a Raft group of one (DESIGN.md section 1): on its first
start it founds a cluster whose only voter is itself.  A cluster node
(L{stalwart.service.cluster}) starts with the configuration its state
machine last applied, or none at all when brand-new: the cluster service
then either founds a cluster or waits to be added by a leader, and carries
Raft messages to and from peers (L{RaftService.attach}).
"""

from __future__ import annotations

import os
import random
from typing import Callable, Optional

from twisted.application.service import Service

from stalwart.cluster.raft.core import RaftConfig, RaftCore
from stalwart.cluster.raft.driver import RaftDriver
from stalwart.cluster.raft.hardstate import HardStateFile
from stalwart.cluster.raft.boot import open_raft_log
from stalwart.cluster.raft.messages import decode_configuration, decode_entry_payload
from stalwart.cluster.raft.segments.files import CorruptLogError, SegmentLog
from stalwart.service.store import StoreService, synchronous_worker
from stalwart.service.worker import ThreadWorker
from stalwart.store.snapshot import SnapshotStore

__all__ = ["RaftService", "node_id", "raft_config"]

TICK_SECONDS = 0.1
#: Log bytes since the last snapshot that trigger the next one.
SNAPSHOT_BYTES = 256 * 1024 * 1024
#: Entries kept before a snapshot, so that a follower a little behind gets
#: entries rather than the whole snapshot.
SNAPSHOT_TRAILING_ENTRIES = 1000
#: Records read from the segment files at a time for a lagging follower.
_READ_RECORDS = 64


def raft_config(election_timeout_ms: int, batch_bytes_max: int, snapshot_entries: int = 0) -> RaftConfig:
    """
    The core's configuration from the raft-election-timeout, raft-batch-max
    and raft-snapshot-entries keys.  Snapshots are also taken once the log
    since the last one holds L{SNAPSHOT_BYTES} (many large messages).
    """
    return RaftConfig(
        election_ticks=max(2, round(election_timeout_ms / 1000 / TICK_SECONDS)),
        append_batch_bytes_max=batch_bytes_max,
        snapshot_entries=snapshot_entries,
        snapshot_bytes=SNAPSHOT_BYTES if snapshot_entries else 0,
        snapshot_trailing_entries=min(SNAPSHOT_TRAILING_ENTRIES, snapshot_entries),
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


def _recovered_configuration(me: str, state_machine):
    """
    (voters, learners) as of the applied index; configuration entries in
    the log's unapplied tail are the core's to read.  Nothing applied yet:
    none (a new node, or one whose first entries are still to apply).  A
    state applied before configurations were logged is a group of one.
    """
    if state_machine.configuration is not None:
        config = decode_configuration(state_machine.configuration)
        return config.voters, config.learners
    if state_machine.last_applied == 0:
        return frozenset(), frozenset()
    return frozenset({me}), frozenset()


class RaftService(Service):
    def __init__(self, data_dir: str, store: StoreService, reactor, urandom: Callable[[int], bytes], threads: bool = True,
                 raft_config: RaftConfig = RaftConfig(), clustered: bool = False, read_replica: bool = False) -> None:
        """
        @param clustered: a brand-new node waits for the cluster service to
            found a cluster or join one, instead of founding one alone.
        @param read_replica: never vote or lead (read-replica).
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
        self.node_id: Optional[str] = None
        self._clustered = clustered
        self._read_replica = read_replica
        self._send: Optional[Callable] = None

    def attach(self, send: Callable) -> None:
        """Send Raft messages with C{send(message)} (the cluster RPC); before L{startService}."""
        self._send = send

    def deliver(self, message) -> None:
        """A Raft message from a peer."""
        if self.driver is not None:
            self.driver.step(message)

    def startService(self) -> None:
        raft_dir = os.path.join(self.data_dir, "raft")
        self.segments = SegmentLog.open(raft_dir)
        hard_state_file = HardStateFile(os.path.join(raft_dir, "hardstate"))
        hard_state = hard_state_file.load()
        me = self.node_id = node_id(self.data_dir, self._urandom)
        state_machine = self.store.state_machine
        snapshots = SnapshotStore(os.path.join(raft_dir, "snapshots"))
        # Repairs what a crash left behind the newest snapshot, and loads
        # the entries not applied yet: if SQLite lost its last
        # transactions, they are applied again.
        try:
            log = open_raft_log(self.segments, state_machine, snapshots, self._raft_config,
                                read_stable=self._read_stable)
        except CorruptLogError as e:
            raise CorruptLogError(f"{self.data_dir}: {e}") from None
        voters, learners = _recovered_configuration(me, state_machine)
        core = RaftCore(self._raft_config, me, log, hard_state, voters=voters, learners=learners,
                        rng=random.SystemRandom(), read_replica=self._read_replica)
        if self._log_pool is not None:
            self._log_pool.start()
            log_worker = self._log_pool
        else:
            log_worker = synchronous_worker
        self.driver = RaftDriver(
            core, self.segments, hard_state_file, state_machine, self._reactor,
            log_worker=log_worker,
            apply_worker=self.store.apply_worker,
            send=self._send,
            snapshots=snapshots,
            tick_seconds=TICK_SECONDS,
            call_from_thread=self._reactor.callFromThread if self._log_pool is not None else None,
        )
        self.driver.start()
        if self.segments.last_index == 0 and state_machine.last_applied == 0 and not self._clustered:
            self.driver.bootstrap()
        super().startService()

    def _read_stable(self, lo: int, hi: int, bytes_max: int):
        """
        Entries lo..hi from the segment files, stopping past C{bytes_max}:
        what a leader sends a follower that lags or a new member.  Read on
        the reactor thread, a few records at a time: the files are
        usually in the page cache, and a batch is bounded by
        raft-batch-max.
        """
        entries, size = [], 0
        while lo <= hi and (not entries or size <= bytes_max):
            for record in self.segments.read(lo, min(hi, lo + _READ_RECORDS - 1)):
                entries.append(decode_entry_payload(record.term, record.index, record.payload))
                size += len(record.payload)
                if size > bytes_max:
                    break
            lo = entries[-1].index + 1
        return entries

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
