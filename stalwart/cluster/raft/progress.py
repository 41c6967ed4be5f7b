# -*- test-case-name: tests.cluster.raft.test_progress -*-
"""
The leader's view of each follower's log (Raft figure 2, nextIndex and
matchIndex), with the flow control of etcd-io/raft's progress states.

A follower is in one of three states:

  - I{probe}: the leader does not know where the follower's log ends.  It
    sends one AppendEntries at a time and waits for its answer (or the next
    heartbeat's) before sending another; rejections move C{next} back with
    the follower's hint (the fast back-off of Raft 5.3).
  - I{replicate}: the last append succeeded, so the leader streams batches
    without waiting, C{next} running ahead of C{match}, with at most
    C{inflight_appends_max} unanswered appends (pipelining, thesis 10.2.2).
    A rejection means something was lost or reordered: back to probe.
  - I{snapshot}: the entries the follower needs were compacted, so the
    leader streams it snapshot C{pending_snapshot} chunk by chunk (paper
    section 7), one chunk in flight, from C{snapshot_offset}; no appends
    meanwhile.  Once the follower has installed it, back to probe from
    the snapshot's index.

Heartbeats double as loss detectors: in probe state a heartbeat resends
the probe; in replicate state it is an empty append at C{next - 1}, which
the follower rejects if an append in flight was lost, moving it to probe.

C{recent_active} records whether the follower answered since the leader's
last check-quorum round (thesis 6.2).
"""

from __future__ import annotations

from collections import deque
from typing import Deque

import attrs

__all__ = ["PROBE", "REPLICATE", "SNAPSHOT", "Progress", "PeerProgress"]

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


@attrs.frozen
class PeerProgress:
    """A snapshot of one peer's L{Progress} for the shell (status, promotion)."""

    match: int
    next: int
    state: str
    recent_active: bool
    learner: bool


@attrs.define
class Progress:
    match: int = 0
    next: int = 1
    state: str = PROBE
    probe_sent: bool = False
    recent_active: bool = False
    inflight: Deque[int] = attrs.Factory(deque)
    """Last index of each unanswered append in replicate state, in order."""
    pending_snapshot: int = 0
    """In snapshot state, the index of the snapshot being sent."""
    snapshot_offset: int = 0
    """In snapshot state, the next byte the follower asked for."""
    snapshot_silent: int = 0
    """Heartbeats since the follower last answered a chunk; a chunk or
    its answer was lost if this reaches 2, and the chunk is sent again."""

    def become_snapshot(self, index: int) -> None:
        self.state = SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_offset = 0
        self.snapshot_silent = 0
        self.probe_sent = False
        self.inflight.clear()

    def snapshot_done(self, match: int) -> bool:
        """
        The follower installed the snapshot or already had its entries:
        it matches up to C{match}; probe from there.  Returns whether
        C{match} is news.
        """
        news = match > self.match
        self.match = max(self.match, match)
        self.pending_snapshot = 0
        self.become_probe()
        return news

    def become_probe(self) -> None:
        self.state = PROBE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def paused(self, inflight_max: int) -> bool:
        """May no more appends be sent now?"""
        if self.state == PROBE:
            return self.probe_sent
        if self.state == SNAPSHOT:
            return True
        return len(self.inflight) >= inflight_max

    def sent(self, last: int) -> None:
        """An append of entries up to C{last} (or none, if C{last} < C{next}) left."""
        if self.state == PROBE:
            self.probe_sent = True
        elif last >= self.next:
            self.next = last + 1
            self.inflight.append(last)

    def acknowledged(self, match: int) -> bool:
        """
        The follower holds the leader's log up to C{match}; returns whether
        that is news.  A probe that succeeds switches to replicate.
        """
        self.probe_sent = False
        while self.inflight and self.inflight[0] <= match:
            self.inflight.popleft()
        if match <= self.match:
            return False
        self.match = match
        self.next = max(self.next, match + 1)
        if self.state == PROBE:
            self.become_replicate()
        elif self.state == SNAPSHOT and match >= self.pending_snapshot:
            self.snapshot_done(match)  # it caught up otherwise: stop sending
            self.become_replicate()
        return True

    def rejected(self, reject_index: int, hint: int) -> bool:
        """
        The follower refused an append whose previous index was
        C{reject_index}, suggesting C{hint} as the next index.  Returns
        False for a stale rejection (of an append since superseded).
        """
        if self.state == SNAPSHOT:
            return False
        if self.state == REPLICATE:
            if reject_index <= self.match:
                return False
            self.become_probe()
            self.next = max(self.match + 1, min(reject_index, hint or 1))
            return True
        if reject_index != self.next - 1:
            return False
        self.next = max(self.match + 1, min(self.next - 1, hint or 1))
        self.probe_sent = False
        return True

    def snapshot(self, learner: bool) -> PeerProgress:
        return PeerProgress(
            match=self.match, next=self.next, state=self.state,
            recent_active=self.recent_active, learner=learner,
        )
