# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
The Raft consensus core: a pure state machine in the style of etcd-io/raft.

Inputs are L{RaftCore.tick}, L{RaftCore.step} (a message from a peer),
L{RaftCore.propose}, L{RaftCore.propose_config_change} and
L{RaftCore.transfer_leadership}; the output is a L{Ready} batch that the
driver carries out, then acknowledges with L{RaftCore.advance}.  The core
owns no clock, socket, file or global randomness.

Implemented from the extended Raft paper: leader election (section 5.2),
log replication with the consistency check and fast back-off (5.3), the
election restriction and the commit rule for entries of the current term
only (5.4), and the no-op entry a new leader appends (8), and log compaction with InstallSnapshot (7).  From Ongaro's
thesis: PreVote (9.6), CheckQuorum and the leader lease that makes
followers ignore disruptive candidates (6.2, 4.2.3), membership changes of
one server at a time through the log with non-voting learners (4.1, 4.2.1,
4.2.2), leadership transfer (3.10), and pipelined replication with flow
control (10.2.2; see L{stalwart.cluster.raft.progress}).

A group of one voter is the single-node server: it elects itself at once
and commits as soon as its own append is durable.

Configuration.  The current configuration is the last C{ENTRY_CONFIG}
entry in the log, committed or not (thesis 4.1: a server uses the newest
configuration in its log); if a conflicting leader truncates that entry the
previous one applies again.  The configuration as of the applied index is
the state machine's business: the driver passes the one it recovered as
C{voters}/C{learners}, and the core scans the unapplied tail for newer ones.

Snapshots (paper section 7, thesis chapter 5).  The core decides when the
state machine should be snapshotted (L{RaftConfig.snapshot_entries},
L{RaftConfig.snapshot_bytes}: C{Ready.take_snapshot}), learns that it was
(L{RaftCore.snapshot_taken}, which says how much of the log may go), and
keeps in memory only the entries after the snapshot minus a trailing
window.  A follower that needs compacted entries gets the snapshot
instead: the core asks the driver for one chunk at a time
(C{Ready.chunks}), and the follower hands accepted chunks back to its own
driver (C{Ready.received}, then C{Ready.restore}).  The bytes never pass
through the core's state.
"""

from __future__ import annotations

import random
import sys
from typing import Dict, FrozenSet, List, Optional, Tuple

from stalwart.cluster.raft.config import RaftConfig
from stalwart.cluster.raft.hardstate import HardState
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import (
    ENTRY_CONFIG,
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AppendEntries,
    AppendEntriesResponse,
    Configuration,
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    Ready,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
    decode_configuration,
    encode_configuration,
)
from stalwart.cluster.raft.progress import PROBE, REPLICATE, SNAPSHOT, PeerProgress, Progress
from stalwart.cluster.raft.quorum import quorum_index, vote_result
from stalwart.cluster.raft.roles import CANDIDATE, FOLLOWER, LEADER, PRE_CANDIDATE
from stalwart.cluster.raft.snapshotting import Snapshotting

__all__ = [
    "RaftConfig", "RaftCore", "NotLeader", "ConfigChangeRefused",
    "FOLLOWER", "PRE_CANDIDATE", "CANDIDATE", "LEADER",
]



class NotLeader(Exception):
    """
    A proposal reached a node that does not lead, or a leader handing over
    (L{RaftCore.transfer_leadership}); C{leader} is the best guess or None.
    """

    def __init__(self, leader: Optional[str]) -> None:
        super().__init__(leader)
        self.leader = leader


class ConfigChangeRefused(Exception):
    """A configuration change cannot be made now; C{reason} says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RaftCore(Snapshotting):
    def __init__(
        self,
        config: RaftConfig,
        node_id: str,
        log: RaftLog,
        hard_state: HardState,
        voters: FrozenSet[str],
        rng: random.Random,
        learners: FrozenSet[str] = frozenset(),
        read_replica: bool = False,
    ) -> None:
        """
        @param voters: the voters as of the applied index (the state
            machine keeps the last applied configuration); empty for a node
            that joins an existing cluster and for a brand-new one that
            will L{bootstrap}.  Configuration entries in the log's tail
            override it.
        @param learners: the learners as of the applied index.
        @param read_replica: never vote or campaign, even if a
            configuration lists this node as a voter; the shell must never
            promote a read replica.
        """
        self.config = config
        self.id = node_id
        self.log = log
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.read_replica = read_replica
        self.role = FOLLOWER
        self.leader: Optional[str] = None
        #: Index of the no-op this node appended on becoming leader: until
        #: it is applied, local state may lack entries committed by earlier
        #: leaders (Raft 8, read-only operations).
        self.term_start = 0
        #: The leader's commit index in its last AppendEntries: what a
        #: follower's state must reach before it serves a read.
        self.leader_commit = 0
        self._rng = rng
        self._handed = hard_state
        self._messages: List[Message] = []
        self._votes: Dict[str, bool] = {}
        self._progress: Dict[str, Progress] = {}
        self._broadcast = False
        self._transferee: Optional[str] = None
        self._elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._random_timeout()
        #: (index, configuration) for the configuration in force from each
        #: index on; the first is as of the applied index.
        self._configs: List[Tuple[int, Configuration]] = [
            (log.applying, Configuration(voters=voters, learners=learners))
        ]
        tail = log.entries(log.applying + 1, log.last_index, sys.maxsize) or []
        self._configs.extend(
            (e.index, decode_configuration(e.data)) for e in tail if e.kind == ENTRY_CONFIG
        )
        self._init_snapshots(log)

    # -- configuration -----------------------------------------------------

    @property
    def configuration(self) -> Configuration:
        return self._configs[-1][1]

    @property
    def voters(self) -> FrozenSet[str]:
        return self.configuration.voters

    @property
    def learners(self) -> FrozenSet[str]:
        return self.configuration.learners

    def bootstrap(self) -> None:
        """
        Make a brand-new node the sole voter of a new cluster by appending
        the first configuration entry (index 1, term 1); then L{campaign}
        (the driver does for a group of one).  A node that joins an
        existing cluster must not bootstrap: it starts with no
        configuration and learns it from the leader's log.
        """
        if self.log.last_index != 0 or self.configuration.members:
            raise ValueError("bootstrap needs an empty log and no configuration")
        self.term = max(self.term, 1)
        config = Configuration(voters=frozenset({self.id}))
        self._append_entries(
            [Entry(term=1, index=1, data=encode_configuration(config), kind=ENTRY_CONFIG)]
        )

    # -- inputs ------------------------------------------------------------

    def campaign(self) -> None:
        """Start a real election now, without pre-votes (Raft 5.2); a learner never does."""
        self._campaign(pre_vote=False, transfer=False)

    def tick(self) -> None:
        if self.role == LEADER:
            self._tick_leader()
            return
        self._elapsed += 1
        if self._elapsed >= self._timeout and self._promotable():
            self._campaign(pre_vote=self.config.pre_vote, transfer=False)

    def propose(self, data: bytes) -> Entry:
        """
        Append a command to the leader's log; returns the entry, whose term
        and index identify it when it is applied.
        @raise NotLeader: this node cannot take proposals now.
        """
        self._check_proposals()
        entry = Entry(term=self.term, index=self.log.last_index + 1, data=data, kind=ENTRY_NORMAL)
        self._append_as_leader([entry])
        return entry

    def propose_config_change(
        self,
        add_learner: Optional[str] = None,
        promote: Optional[str] = None,
        remove: Optional[str] = None,
    ) -> Entry:
        """
        Change the configuration by one server (thesis 4.1): add a new
        member as a learner, promote a caught-up learner to voter, or remove
        a member.  The change is in force as soon as it is appended; it is
        done when the returned entry is applied.  A leader that removes
        itself keeps leading until the entry commits, then steps down
        (thesis 4.2.2).
        @raise NotLeader: this node cannot take proposals now.
        @raise ConfigChangeRefused: the change is invalid or must wait.
        @raise ValueError: not exactly one of the arguments was given.
        """
        if [add_learner, promote, remove].count(None) != 2:
            raise ValueError("give exactly one of add_learner, promote, remove")
        self._check_proposals()
        if self.log.committed < self.term_start:
            # Ongaro, raft-dev 2015: a single-server change is only safe
            # once the leader has committed an entry of its own term.
            raise ConfigChangeRefused("the leader has not committed an entry of its term yet")
        if self._configs[-1][0] > self.log.committed:
            raise ConfigChangeRefused("another configuration change is not committed yet")
        new = self._changed_configuration(add_learner, promote, remove)
        entry = Entry(
            term=self.term, index=self.log.last_index + 1,
            data=encode_configuration(new), kind=ENTRY_CONFIG,
        )
        self._append_as_leader([entry])
        return entry

    def transfer_leadership(self, to: Optional[str] = None) -> Optional[str]:
        """
        Hand leadership to voter C{to} (by default the most up-to-date
        one): stop taking proposals, bring it up to date, then tell it to
        campaign at once (thesis 3.10).  If it has not taken over within an
        election timeout, this node resumes taking proposals.  Returns the
        target, or None when there is no other voter.
        @raise NotLeader: this node does not lead.
        @raise ValueError: C{to} is not another voter.
        """
        if self.role != LEADER:
            raise NotLeader(self.leader)
        others = sorted(self.voters - {self.id})
        if to is None:
            if not others:
                return None
            to = max(others, key=lambda peer: self._progress[peer].match)
        elif to not in others:
            raise ValueError(f"{to!r} is not another voter")
        self._transferee = to
        self._elapsed = 0
        if self._progress[to].match == self.log.last_index:
            self._send(TimeoutNow(term=self.term, sender=self.id, recipient=to))
        else:
            self._send_more(to)
        return to

    def step(self, message: Message) -> None:
        if message.term > self.term:
            if isinstance(message, RequestVote):
                if not message.transfer and self._in_lease():
                    return  # thesis 4.2.3: a leader is alive, ignore the candidate
                if not message.pre_vote:
                    self._become_follower(message.term, None)
            elif not (isinstance(message, RequestVoteResponse) and message.pre_vote and message.granted):
                # A granted pre-vote carries the term we would campaign in.
                leader = message.sender if isinstance(message, (AppendEntries, TimeoutNow, InstallSnapshot)) else None
                self._become_follower(message.term, leader)
        elif message.term < self.term:
            self._reply_stale(message)
            return
        if isinstance(message, RequestVote):
            self._on_request_vote(message)
        elif isinstance(message, RequestVoteResponse):
            self._on_vote_response(message)
        elif isinstance(message, AppendEntries):
            self._on_append(message)
        elif isinstance(message, AppendEntriesResponse):
            self._on_append_response(message)
        elif isinstance(message, TimeoutNow):
            if self.role != LEADER:
                self._campaign(pre_vote=False, transfer=True)
        elif isinstance(message, InstallSnapshot):
            self._on_install_snapshot(message)
        elif isinstance(message, InstallSnapshotResponse):
            self._on_snapshot_response(message)

    # -- output ------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._messages
            or self._broadcast
            or self._hard_state_changed()
            or self.log.unstable_entries()
            or (self.log.next_committed() and not self._restoring)
            or self._received
            or self._restore is not None
            or self._chunks
            or self._snapshot_due()
        )

    def ready(self) -> Ready:
        """
        Hand out what is to be done.  Its contents are not handed out again,
        so the driver may queue several Readies for writing before the
        first is durable; it must carry them out in order and call
        L{advance} for each in order.
        """
        self._flush_broadcast()
        hard_state = self._hard_state() if self._hard_state_changed() else None
        if hard_state is not None:
            self._handed = hard_state
        entries = tuple(self.log.unstable_entries())
        if entries:
            self.log.hand_to(entries[-1].index)
            self._writes_handed += 1
        messages, self._messages = tuple(self._messages), []
        committed = () if self._restoring else tuple(self.log.next_committed())
        if committed:
            self.log.applying_to(committed[-1].index, self._keep_from())
            self._applied_bytes += sum(e.size() for e in committed)
        take_snapshot = self._snapshot_due()
        if take_snapshot:
            self._snapshot_asked = True
        received, self._received = tuple(self._received), []
        chunks, self._chunks = tuple(self._chunks), []
        restore, self._restore = self._restore, None
        return Ready(
            hard_state=hard_state, entries=entries, messages=messages, committed=committed,
            received=received, restore=restore, chunks=chunks, take_snapshot=take_snapshot,
        )

    def advance(self, ready: Ready) -> None:
        """
        C{ready}'s hard state and entries are durable and its messages sent;
        its snapshot restore, if any, is queued before anything applied later.
        """
        if ready.restore is not None and self._restore is None:
            self._restoring = False
        if ready.entries:
            self._writes_handed -= 1
            if self._void_writes:
                # Written before a snapshot restore discarded the log.
                self._void_writes -= 1
                return
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role == LEADER:
                self._progress[self.id].match = self.log.stable_last
                self._maybe_commit()

    def progress(self) -> Dict[str, PeerProgress]:
        """
        The leader's view of every other member (empty on a non-leader):
        the shell promotes a learner (not a read replica) once its C{match}
        is within C{promote_lag_entries_max} of C{log.last_index}, and
        reports lag in the cluster status.
        """
        if self.role != LEADER:
            return {}
        return {
            peer: p.snapshot(learner=peer in self.learners)
            for peer, p in self._progress.items()
            if peer != self.id
        }

    def leader_unreachable(self, node_id: str) -> None:
        """
        The transport lost its connection to C{node_id}: if that is this
        follower's leader, stop trusting it (no lease, no reads) and stand
        for election within a few ticks instead of a whole election
        timeout.  A crashed leader's connections all drop at once, so its
        followers agree quickly; if only this node lost it, the others
        still hold their lease and refuse its pre-vote (thesis 9.6), so a
        healthy leader is not disturbed.  The few random ticks make it
        unlikely that two followers split the vote.
        """
        if self.role != FOLLOWER or self.leader != node_id:
            return
        self.leader = None
        self._elapsed = max(self._elapsed, self._timeout - 1 - self._rng.randrange(3))

    def read_index(self) -> Optional[int]:
        """
        The index local state must have applied before serving a read, or
        None if this node cannot tell (DESIGN.md section 3, reads).  A
        leader: its commit index, and at least the no-op of its term
        (Raft 8).  A follower or learner: the leader's commit index as last
        heard, if it heard from a leader within one election timeout; a
        node cut off from its leader may be arbitrarily stale.
        """
        if self.role == LEADER:
            return max(self.log.committed, self.term_start)
        if self.leader is not None and self._elapsed < self.config.election_ticks:
            return self.leader_commit
        return None

    # -- elections ---------------------------------------------------------

    def _promotable(self) -> bool:
        return self.id in self.voters and not self.read_replica

    def _in_lease(self) -> bool:
        """Heard from a leader within the minimum election timeout (thesis 4.2.3)."""
        return (
            self.config.check_quorum
            and self.leader is not None
            and self._elapsed < self.config.election_ticks
        )

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if not self._promotable():
            return
        self._transferee = None
        self._progress = {}
        self.leader = None
        if pre_vote:
            # Thesis 9.6: ask whether we could win term + 1, changing nothing.
            self.role = PRE_CANDIDATE
            term = self.term + 1
        else:
            self.term += 1
            self.vote = self.id
            self.role = CANDIDATE
            term = self.term
        self._votes = {self.id: True}
        self._reset_timer()
        if self._tally():
            return
        for peer in self._peers(self.voters):
            self._send(
                RequestVote(
                    term=term, sender=self.id, recipient=peer,
                    last_log_index=self.log.last_index, last_log_term=self.log.last_term,
                    pre_vote=pre_vote, transfer=transfer,
                )
            )

    def _on_request_vote(self, message: RequestVote) -> None:
        if message.pre_vote:
            may_vote = message.term > self.term or (self.vote is None and self.leader is None)
        else:
            may_vote = self.vote == message.sender or (self.vote is None and self.leader is None)
        grant = (
            may_vote
            and not self.read_replica
            and self.log.is_up_to_date(message.last_log_index, message.last_log_term)
        )
        if grant and not message.pre_vote:
            self.vote = message.sender
            self._reset_timer()
        self._send(
            RequestVoteResponse(
                term=message.term if grant and message.pre_vote else self.term,
                sender=self.id, recipient=message.sender,
                granted=grant, pre_vote=message.pre_vote,
            )
        )

    def _on_vote_response(self, message: RequestVoteResponse) -> None:
        if message.sender not in self.voters:
            return
        if self.role == PRE_CANDIDATE:
            # Grants carry the term we would run in; refusals, ours.
            expected = self.term + 1 if message.granted else self.term
            if not message.pre_vote or message.term != expected:
                return
        elif self.role != CANDIDATE or message.pre_vote:
            return
        self._votes[message.sender] = message.granted
        self._tally()

    def _tally(self) -> bool:
        result = vote_result(self.voters, self._votes)
        if result is True:
            if self.role == PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result is False:
            self._become_follower(self.term, None)
        return result is not None

    def _reply_stale(self, message: Message) -> None:
        """Tell the sender of an old-term message about the newer term (Raft 5.1)."""
        if isinstance(message, InstallSnapshot):
            self._send(
                InstallSnapshotResponse(
                    term=self.term, sender=self.id, recipient=message.sender, index=message.index,
                )
            )
        elif isinstance(message, AppendEntries):
            self._send(
                AppendEntriesResponse(
                    term=self.term, sender=self.id, recipient=message.sender,
                    success=False, reject_index=message.prev_index,
                )
            )
        elif isinstance(message, RequestVote):
            self._send(
                RequestVoteResponse(
                    term=self.term, sender=self.id, recipient=message.sender,
                    granted=False, pre_vote=message.pre_vote,
                )
            )

    # -- replication: follower side ----------------------------------------

    def _on_append(self, message: AppendEntries) -> None:
        if self.role != FOLLOWER or self.leader != message.sender:
            self._become_follower(self.term, message.sender)
        self._elapsed = 0
        self.leader_commit = max(self.leader_commit, message.commit)
        reply = lambda **kw: self._send(  # noqa: E731
            AppendEntriesResponse(term=self.term, sender=self.id, recipient=message.sender, **kw)
        )
        if message.prev_index < self.log.committed:
            # Already committed here, so it matches (log matching, 5.3);
            # skip what we have to avoid asserting on replaced history.
            skip = self.log.committed - message.prev_index
            entries = message.entries[skip:]
            prev = self.log.committed
        else:
            entries, prev = message.entries, message.prev_index
            if prev > self.log.last_index or self.log.term(prev) != message.prev_term:
                reply(success=False, hint=self._conflict_hint(prev, message.prev_term),
                      reject_index=message.prev_index)
                return
        new = [e for e in entries if self.log.term(e.index) != e.term]
        if new:
            self._append_entries(entries[entries.index(new[0]) :])
        last_new = prev + len(entries) if entries else prev
        self.log.commit_to(min(message.commit, last_new))
        reply(success=True, match_index=last_new)

    def _conflict_hint(self, prev: int, prev_term: int) -> int:
        """
        Fast back-off (Raft 5.3, end): skip every entry of our conflicting
        term, and any with a term above the leader's, in one round trip.
        """
        if prev > self.log.last_index:
            return self.log.last_index + 1
        index = prev
        while index > self.log.committed and self.log.term(index) > prev_term:
            index -= 1
        return max(index, 1)

    # -- replication: leader side ------------------------------------------

    def _tick_leader(self) -> None:
        self._elapsed += 1
        if self._elapsed >= self.config.election_ticks:
            self._elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                self._become_follower(self.term, None)  # thesis 6.2
                return
            for peer, progress in self._progress.items():
                progress.recent_active = peer == self.id
            self._transferee = None  # the transfer timed out: resume
        self._heartbeat_elapsed += 1
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            for peer in self._peers(self._progress):
                self._send_heartbeat(peer)

    def _quorum_active(self) -> bool:
        active = {peer: True for peer, p in self._progress.items() if p.recent_active}
        active[self.id] = True
        return vote_result(self.voters, active) is True

    def _on_append_response(self, message: AppendEntriesResponse) -> None:
        if self.role != LEADER or message.sender not in self._progress:
            return
        peer = message.sender
        progress = self._progress[peer]
        progress.recent_active = True
        if message.success:
            if progress.acknowledged(message.match_index):
                self._maybe_commit()
            if (
                self._transferee == peer
                and self.role == LEADER
                and progress.match == self.log.last_index
            ):
                self._send(TimeoutNow(term=self.term, sender=self.id, recipient=peer))
        elif not progress.rejected(message.reject_index, message.hint):
            return
        if self.role == LEADER and peer in self._progress:
            self._send_more(peer)

    def _append_as_leader(self, entries: List[Entry]) -> None:
        self._append_entries(entries)
        # Sent from ready(): everything proposed before the driver next
        # asks goes to each follower in one AppendEntries.
        self._broadcast = True

    def _flush_broadcast(self) -> None:
        if self._broadcast and self.role == LEADER:
            for peer in self._peers(self._progress):
                self._send_more(peer)
        self._broadcast = False

    def _send_more(self, peer: str) -> None:
        """Send what flow control allows (probe: one append; replicate: a window)."""
        progress = self._progress[peer]
        while not progress.paused(self.config.inflight_appends_max) and progress.next <= self.log.last_index:
            if not self._send_append(peer):
                break

    def _send_heartbeat(self, peer: str) -> None:
        """
        Heartbeats also recover from lost appends: in probe state the probe
        is sent again; in replicate state an empty append at C{next - 1}
        succeeds if everything in flight arrived and is refused otherwise.
        """
        progress = self._progress[peer]
        if progress.state == SNAPSHOT:
            progress.snapshot_silent += 1
            if progress.snapshot_silent >= 2:
                self._request_chunk(peer)  # a chunk or its answer was lost
            # Keep the follower's election timer quiet during the transfer.
            self._send_entries(peer, progress.match, ())
        elif progress.state == PROBE:
            progress.probe_sent = False
            self._send_append(peer)
        elif not progress.paused(self.config.inflight_appends_max) and progress.next <= self.log.last_index:
            self._send_more(peer)
        elif not self.log.has_term(progress.next - 1):
            if not self._start_snapshot(peer):
                self._send_entries(peer, progress.match, ())
        else:
            self._send_entries(peer, progress.next - 1, ())

    def _send_append(self, peer: str) -> bool:
        """One AppendEntries from C{next}; returns whether it carried entries."""
        progress = self._progress[peer]
        prev = progress.next - 1
        entries = self.log.entries(progress.next, self.log.last_index, self.config.append_batch_bytes_max)
        if entries is None or not self.log.has_term(prev):
            # Compacted, or no longer in memory and not readable back.
            if not self._start_snapshot(peer):
                self._send_entries(peer, progress.match, ())  # heartbeat at a known match
            return False
        self._send_entries(peer, prev, tuple(entries))
        progress.sent(entries[-1].index if entries else prev)
        return bool(entries)

    def _send_entries(self, peer: str, prev: int, entries: Tuple[Entry, ...]) -> None:
        if not self.log.has_term(prev):
            return  # compacted: the follower gets the snapshot instead
        self._send(
            AppendEntries(
                term=self.term, sender=self.id, recipient=peer,
                prev_index=prev, prev_term=self.log.term(prev),
                entries=entries, commit=self.log.committed,
            )
        )

    def _maybe_commit(self) -> None:
        matches = {peer: p.match for peer, p in self._progress.items()}
        index = quorum_index(self.voters, matches)
        # Raft 5.4.2: only entries of the current term commit by counting.
        if index > self.log.committed and self.log.term(index) == self.term:
            self.log.commit_to(index)
            if self.id not in self.voters and self._configs[-1][0] <= index:
                self._step_down_removed()

    def _step_down_removed(self) -> None:
        """
        Our own removal committed (thesis 4.2.2): hand over to the most
        up-to-date voter so the cluster need not wait an election timeout.
        """
        voters = self._peers(self.voters)
        if voters:
            best = max(voters, key=lambda peer: (self._progress[peer].match, peer))
            self._send(TimeoutNow(term=self.term, sender=self.id, recipient=best))
        self._become_follower(self.term, None)

    # -- role and configuration changes ------------------------------------

    def _become_follower(self, term: int, leader: Optional[str]) -> None:
        if term > self.term:
            self.term = term
            self.vote = None
        self.role = FOLLOWER
        self.leader = leader
        self._progress = {}
        self._transferee = None
        self._reset_timer()

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader = self.id
        self._heartbeat_elapsed = 0
        self._elapsed = 0
        next_index = self.log.last_index + 1
        self._progress = {}
        self._sync_progress()
        self._progress[self.id] = Progress(
            match=self.log.stable_last, next=next_index, state=REPLICATE, recent_active=True
        )
        self.term_start = next_index
        # Raft 8: a no-op of our own term lets us commit earlier entries.
        self._append_as_leader(
            [Entry(term=self.term, index=next_index, data=b"", kind=ENTRY_NOOP)]
        )

    def _append_entries(self, entries: List[Entry]) -> None:
        """Every append goes through here: configurations apply on append."""
        first = entries[0].index
        self.log.append(entries)
        changed = False
        if self._configs[-1][0] >= first:
            # A conflicting leader replaced an uncommitted configuration.
            self._configs = [c for c in self._configs if c[0] < first]
            assert self._configs, "the applied configuration cannot be replaced"
            changed = True
        for entry in entries:
            if entry.kind == ENTRY_CONFIG:
                self._configs.append((entry.index, decode_configuration(entry.data)))
                changed = True
        while len(self._configs) > 1 and self._configs[1][0] <= self.log.committed:
            del self._configs[0]
        if changed and self.role == LEADER:
            self._sync_progress()

    def _sync_progress(self) -> None:
        """Track every member but ourselves; forget removed ones."""
        members = self.configuration.members
        for peer in self._peers(members):
            if peer not in self._progress:
                self._progress[peer] = Progress(next=self.log.last_index + 1, recent_active=True)
        for peer in [p for p in self._progress if p not in members and p != self.id]:
            del self._progress[peer]
        if self._transferee is not None and self._transferee not in self.voters:
            self._transferee = None

    def _changed_configuration(self, add_learner, promote, remove) -> Configuration:
        current = self.configuration
        if add_learner is not None:
            if add_learner in current.members:
                raise ConfigChangeRefused(f"{add_learner} is already a member")
            return Configuration(voters=current.voters, learners=current.learners | {add_learner})
        if promote is not None:
            if promote not in current.learners:
                raise ConfigChangeRefused(f"{promote} is not a learner")
            if self._progress[promote].match + self.config.promote_lag_entries_max < self.log.last_index:
                raise ConfigChangeRefused(f"{promote} has not caught up yet")
            return Configuration(voters=current.voters | {promote}, learners=current.learners - {promote})
        if remove not in current.members:
            raise ConfigChangeRefused(f"{remove} is not a member")
        if current.voters == {remove}:
            raise ConfigChangeRefused("cannot remove the last voter")
        return Configuration(voters=current.voters - {remove}, learners=current.learners - {remove})

    # -- helpers -----------------------------------------------------------

    def _check_proposals(self) -> None:
        if self.role != LEADER:
            raise NotLeader(self.leader)
        if self._transferee is not None:
            raise NotLeader(None)  # handing over: the client retries shortly

    def _keep_from(self) -> int:
        """
        Lowest index still needed in memory.  With snapshots: the trailing
        window before the newest one, on every node, since any node may
        lead and must then send entries after the snapshot (older ones are
        in it).  Without: the first entry some follower is not known to
        hold (C{next} is optimistic, C{match} is not); a peer that stays
        away pins memory unless the log can read entries back
        (C{read_stable}).
        """
        if self.config.snapshots:
            return self._keep_from_snapshot(self.log.snapshot_index)
        if self.role != LEADER:
            return self.log.last_index + 1
        return min(
            (p.match + 1 for peer, p in self._progress.items() if peer != self.id),
            default=self.log.last_index + 1,
        )

    def _peers(self, members) -> List[str]:
        return sorted(m for m in members if m != self.id)

    def _send(self, message: Message) -> None:
        self._messages.append(message)

    def _hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote)

    def _hard_state_changed(self) -> bool:
        return (self.term, self.vote) != (self._handed.term, self._handed.vote)

    def _random_timeout(self) -> int:
        return self.config.election_ticks + self._rng.randrange(self.config.election_ticks)

    def _reset_timer(self) -> None:
        self._elapsed = 0
        self._timeout = self._random_timeout()
