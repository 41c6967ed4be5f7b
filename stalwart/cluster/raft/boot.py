# -*- test-case-name: tests.cluster.raft.test_boot -*-
"""
Starting a node from what is on disk: the newest snapshot, the state
machine and the segment log (Raft paper section 7: "the snapshot ... and
the log after it").

The snapshot file is the truth up to its index.  A crash can leave the
other two behind it, and L{open_raft_log} repairs exactly that: a state
machine behind the snapshot is restored from it; a log that does not
reach the snapshot, or whose entry there has another term (a follower
that crashed while installing it), is reset to continue after it.
Anything else that does not fit raises L{CorruptLogError}: nothing is
skipped silently.
"""

from __future__ import annotations

from typing import Optional

from twisted.logger import Logger

from stalwart.cluster.raft.core import RaftConfig
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import SnapshotMeta, decode_entry_payload
from stalwart.cluster.raft.segments.format import CorruptLogError
from stalwart.logs import observer

__all__ = ["open_raft_log", "tail_start"]

_log = Logger(observer=observer)


def tail_start(first: int, applied: int, snapshot: Optional[SnapshotMeta], config: RaftConfig) -> int:
    """
    The first index to load into memory: every unapplied entry and, with
    snapshots, the trailing window before the newest one (the core keeps
    those in memory to send to a follower that lags a little).  The entry
    before it must have a known term: the log's first entry is not loaded
    unless the snapshot names the one before it.
    """
    snapshot_index = snapshot.index if snapshot else 0
    if config.snapshots:
        keep_from = max(1, snapshot_index + 1 - config.snapshot_trailing_entries)
    else:
        keep_from = applied + 1
    readable = first if first - 1 in (0, snapshot_index) else first + 1
    return min(applied + 1, max(readable, keep_from))


def open_raft_log(segments, state_machine, snapshots, config: RaftConfig, read_stable=None) -> RaftLog:
    """
    Reconcile the segment log and the state machine with the newest
    snapshot, then build the core's L{RaftLog}.  Runs before the driver
    starts; reads the log tail from disk.

    @param segments: the opened L{SegmentLog}.
    @param state_machine: has C{last_applied}; restored through C{snapshots}
        if it is behind the newest snapshot.
    @param snapshots: a L{stalwart.store.snapshot.SnapshotStore}, or None.
    @param read_stable: passed to L{RaftLog} (reads entries back from the
        segment files; must raise L{LookupError} for compacted ones, as
        L{SegmentLog.read} does).
    @raise CorruptLogError: the log, the snapshot and the state do not fit.
    """
    snapshot = snapshots.newest() if snapshots is not None else None
    if snapshot is not None:
        _reconcile(segments, snapshot)
        if state_machine.last_applied < snapshot.index:
            _log.info("restoring the state machine from snapshot {index}", index=snapshot.index)
            snapshots.restore(state_machine, snapshot.index)
    applied, last = state_machine.last_applied, segments.last_index
    if applied > last:
        raise CorruptLogError(
            f"state.db has applied entry {applied} but the raft log ends at {last}; "
            "the log lost committed entries, refusing to start"
        )
    lo = tail_start(segments.first_index, applied, snapshot, config)
    tail = [decode_entry_payload(r.term, r.index, r.payload) for r in segments.read(lo, last)]
    return RaftLog(
        last, segments.term_at, tail, applied, read_stable=read_stable,
        snapshot_index=snapshot.index if snapshot else 0,
        snapshot_term=snapshot.term if snapshot else 0,
    )


def _reconcile(segments, snapshot: SnapshotMeta) -> None:
    first, last = segments.first_index, segments.last_index
    if first > snapshot.index + 1:
        raise CorruptLogError(
            f"raft log starts at {first}, after snapshot {snapshot.index} + 1: entries are missing; "
            "refusing to start"
        )
    if first - 1 == snapshot.index:
        return
    if last < snapshot.index or segments.term_at(snapshot.index) != snapshot.term:
        _log.info("raft log does not hold snapshot {index}: continuing the log after it",
                  index=snapshot.index)
        segments.reset(snapshot.index + 1)
