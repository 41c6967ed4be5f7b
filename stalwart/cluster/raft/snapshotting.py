# -*- test-case-name: tests.cluster.raft.test_snapshot -*-
"""
The part of L{stalwart.cluster.raft.core.RaftCore} that deals with
snapshots: the compaction policy and InstallSnapshot (extended Raft paper
section 7, figure 13; Ongaro's thesis chapter 5), kept apart so that the
core stays readable.  Pure, like the core: chunk bytes pass through a
L{Ready} to the driver and are never kept here.

Leader side: a follower whose next entries are compacted (or cannot be
read back) is switched to snapshot state and sent the newest snapshot one
chunk at a time (C{Ready.chunks}: the driver reads and sends them); each
answer names the next offset wanted, and a chunk unanswered for two
heartbeats is asked for again.  Once the follower has installed it, the
leader probes from the snapshot's index.

Follower side: chunks are taken in order only, and are handed to the
driver (C{Ready.received}) with their answers, which leave once the
chunks are written; the last one installs the snapshot in the core at
once (log, commit index, configuration) and asks the driver to restore the
state machine (C{Ready.restore}) before any later entry is applied.  A
snapshot the follower's commit index already covers is answered as done.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Tuple

from stalwart.cluster.raft.messages import (
    ENTRY_CONFIG,
    InstallSnapshot,
    InstallSnapshotResponse,
    RestoreSnapshot,
    SnapshotChunkRequest,
    SnapshotMeta,
    decode_configuration,
)
from stalwart.cluster.raft.progress import SNAPSHOT
from stalwart.cluster.raft.roles import FOLLOWER, LEADER

__all__ = ["Snapshotting"]


class Snapshotting:
    """
    Mixed into L{RaftCore}: uses its C{config}, C{log}, C{role},
    C{_progress}, C{_send} and friends.
    """

    def _init_snapshots(self, log) -> None:
        #: Counting for the compaction policy starts after this index.
        self._snapshot_from = log.applying
        self._applied_bytes = 0
        self._snapshot_asked = False
        #: Follower: the transfer in progress, (leader, index, term, next offset).
        self._incoming: Optional[Tuple[str, int, int, int]] = None
        self._received: List[InstallSnapshot] = []
        self._restore: Optional[RestoreSnapshot] = None
        self._chunks: List[SnapshotChunkRequest] = []
        #: Readies with entries handed out and not yet advanced; the
        #: first C{_void_writes} of them were discarded by a restore.
        self._writes_handed = 0
        self._void_writes = 0
        #: A restore is pending until its Ready is advanced: entries after
        #: the snapshot are not applied before the state machine has it.
        self._restoring = False

    # -- the driver's reports ----------------------------------------------

    def snapshot_taken(self, meta: SnapshotMeta) -> int:
        """
        The driver took the snapshot C{Ready.take_snapshot} asked for (or
        any other) of the state machine at C{meta.index}, and it is durable.
        Memory before the trailing window is released.

        @return: the first index the log must keep: segment files wholly
            before it may be deleted (paper section 7).
        """
        assert meta.index <= self.log.applying, (meta.index, self.log.applying)
        self._snapshot_asked = False
        if meta.index >= self._snapshot_from:
            self._snapshot_from = meta.index
            self._applied_bytes = 0
        keep_from = self._keep_from_snapshot(meta.index)
        self.log.snapshot_taken(meta.index, meta.term, keep_from)
        return keep_from

    def snapshot_failed(self) -> None:
        """Taking the asked-for snapshot failed: ask again after another interval."""
        self._snapshot_asked = False
        self._snapshot_from = self.log.applying
        self._applied_bytes = 0

    def snapshot_unavailable(self, peer: str, index: int) -> None:
        """
        The driver cannot read snapshot C{index} any more (a newer one
        replaced it): start again with the newest.
        """
        progress = self._progress.get(peer) if self.role == LEADER else None
        if progress is not None and progress.state == SNAPSHOT and progress.pending_snapshot == index:
            progress.become_probe()
            self._send_more(peer)

    def _snapshot_due(self) -> bool:
        config = self.config
        if self._snapshot_asked or not config.snapshots:
            return False
        if self.log.applying <= self._snapshot_from:
            return False
        return bool(
            (config.snapshot_entries and self.log.applying - self._snapshot_from >= config.snapshot_entries)
            or (config.snapshot_bytes and self._applied_bytes >= config.snapshot_bytes)
        )

    def _keep_from_snapshot(self, index: int) -> int:
        return max(1, index + 1 - self.config.snapshot_trailing_entries)

    def _start_snapshot(self, peer: str) -> bool:
        """
        Send the newest snapshot to C{peer} (paper section 7) if that lets
        it continue with entries the log still has; returns whether it did.
        """
        index = self.log.snapshot_index
        if index == 0 or self.log.entries(index + 1, index + 1, 1) is None:
            return False
        progress = self._progress[peer]
        progress.become_snapshot(index)
        self._request_chunk(peer)
        return True

    def _request_chunk(self, peer: str) -> None:
        progress = self._progress[peer]
        progress.snapshot_silent = 0
        self._chunks.append(
            SnapshotChunkRequest(
                peer=peer, term=self.term, index=progress.pending_snapshot,
                offset=progress.snapshot_offset,
            )
        )

    def _on_snapshot_response(self, message: InstallSnapshotResponse) -> None:
        if self.role != LEADER or message.sender not in self._progress:
            return
        peer = message.sender
        progress = self._progress[peer]
        progress.recent_active = True
        if message.done:
            if progress.state == SNAPSHOT:
                news = progress.snapshot_done(message.match_index)
            else:
                news = progress.acknowledged(message.match_index)
            if news:
                self._maybe_commit()
            if self.role == LEADER and peer in self._progress:
                self._send_more(peer)
            return
        if progress.state != SNAPSHOT or message.index != progress.pending_snapshot:
            return
        progress.snapshot_silent = 0
        if message.offset != progress.snapshot_offset:
            progress.snapshot_offset = message.offset
            self._request_chunk(peer)

    def _on_install_snapshot(self, message: InstallSnapshot) -> None:
        """
        One chunk of the leader's snapshot (paper section 7, figure 13).
        Chunks are taken in order only; a duplicate or out-of-order one is
        answered with the offset wanted.  A snapshot the log already
        covers (its index is committed here) is refused as done: the
        leader continues with entries.  On the last chunk the log and
        configuration become the snapshot's at once; the driver makes the
        file durable before the answer leaves and restores the state
        machine before applying anything after it.
        """
        if self.role != FOLLOWER or self.leader != message.sender:
            self._become_follower(self.term, message.sender)
        self._elapsed = 0
        self.leader_commit = max(self.leader_commit, message.index)

        def reply(**kw) -> None:
            self._send(
                InstallSnapshotResponse(
                    term=self.term, sender=self.id, recipient=message.sender, index=message.index, **kw
                )
            )

        if message.index <= self.log.committed:
            self._incoming = None
            reply(done=True, match_index=self.log.committed)
            return
        key = (message.sender, message.index, message.snapshot_term)
        incoming = self._incoming
        if incoming is None or incoming[:3] != key:
            if message.offset != 0:
                reply(offset=0)
                return
            incoming = key + (0,)
        if message.offset != incoming[3]:
            reply(offset=incoming[3])
            return
        self._received.append(message)
        if not message.done:
            self._incoming = key + (message.offset + len(message.data),)
            reply(offset=self._incoming[3])
            return
        self._incoming = None
        self._install(message.meta)
        reply(done=True, match_index=message.index)

    def _install(self, meta: SnapshotMeta) -> None:
        """The last chunk arrived: the log and configuration become the snapshot's."""
        handed_unstable = self._writes_handed
        discard = self.log.restore(meta.index, meta.term)
        if discard:
            self._void_writes = handed_unstable
        tail = self.log.entries(meta.index + 1, self.log.last_index, sys.maxsize) or []
        self._configs = [(meta.index, meta.decoded_configuration())]
        self._configs.extend(
            (e.index, decode_configuration(e.data)) for e in tail if e.kind == ENTRY_CONFIG
        )
        self._snapshot_from = meta.index
        self._applied_bytes = 0
        self._restore = RestoreSnapshot(meta=meta, discard_log=discard)
        self._restoring = True
