# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
The Raft core's configuration (L{RaftConfig}): timeouts in ticks, flow
control limits, and the snapshot and compaction policy (extended Raft
paper section 7).  L{stalwart.cluster.raft.core} re-exports it.
"""

from __future__ import annotations

import attrs

__all__ = ["RaftConfig"]


@attrs.frozen
class RaftConfig:
    election_ticks: int = attrs.field(default=10, validator=attrs.validators.ge(2))
    """Ticks without hearing from a leader before campaigning; the actual
    timeout is drawn uniformly from [election_ticks, 2 * election_ticks) so
    that candidates rarely collide (Raft 5.2).  With 100 ms ticks the default
    is the issue's 1000 ms.  Also the leader's check-quorum period and the
    length of a follower's lease."""

    heartbeat_ticks: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Ticks between leader heartbeats; must be well below election_ticks."""

    append_batch_bytes_max: int = attrs.field(
        default=10 * 1024 * 1024, validator=attrs.validators.ge(1)
    )
    """Largest AppendEntries payload; bigger batches amortise round trips,
    smaller ones bound a follower's memory per message."""

    inflight_appends_max: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    """Unanswered AppendEntries per follower in replicate state.  With the
    batch limit this bounds the bytes queued for a slow follower
    (64 x 10 MiB at worst, far less in practice since a batch only holds
    what was proposed since the last one); more hides more latency."""

    pre_vote: bool = True
    """Ask for pre-votes before a real election (thesis 9.6), so a node cut
    off from the cluster does not raise the term and depose a healthy
    leader when it comes back."""

    check_quorum: bool = True
    """A leader that has not heard from a majority within election_ticks
    steps down, and followers that heard from a leader within election_ticks
    ignore candidates (thesis 6.2, 4.2.3): a minority leader stops taking
    writes and serving reads within one election timeout."""

    promote_lag_entries_max: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    """A learner is promoted to voter only when its log is at most this many
    entries behind the leader's (thesis 4.2.1): a voter that lags far would
    leave the cluster unavailable while it catches up.  1000 entries are a
    fraction of a second of replication."""

    snapshot_entries: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Ask for a snapshot of the state machine once this many entries were
    applied since the last one (paper section 7); 0 never asks for one by
    count.  Snapshots bound the log on disk and in memory and let a new
    member catch up without replaying history, but each one copies the
    whole state.  0 by default because only a driver given a snapshot
    store can take them; 10,000 suits a mail server (a snapshot every few
    minutes under load)."""

    snapshot_bytes: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """Also ask for one once the entries applied since the last one hold
    this many bytes; 0 has no byte trigger.  Entries carry whole messages,
    so counting bytes bounds memory and disk where counting entries
    cannot; 64 MiB is a sensible value."""

    snapshot_trailing_entries: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    """Entries kept before the newest snapshot, on disk and in memory, so
    that a follower lagging by fewer gets entries rather than the whole
    snapshot.  Larger windows cost memory; 1000 entries cover a follower
    that missed a second or two."""

    @property
    def snapshots(self) -> bool:
        """Whether the compaction policy ever asks for a snapshot."""
        return bool(self.snapshot_entries or self.snapshot_bytes)

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_ticks >= self.election_ticks:
            raise ValueError("heartbeat_ticks must be below election_ticks")
