# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
The Raft consensus core: a pure state machine in the style of etcd-io/raft.

Inputs are L{RaftCore.tick}, L{RaftCore.step} (a message from a peer) and
L{RaftCore.propose}; the output is a L{Ready} batch that the driver carries
out, then acknowledges with L{RaftCore.advance}.  The core owns no clock,
socket, file or global randomness.

Implemented from the extended Raft paper: leader election (section 5.2),
log replication with the consistency check and fast back-off (5.3), the
election restriction and the commit rule for entries of the current term
only (5.4), and the no-op entry a new leader appends (8).  A group of one
voter is the single-node server: it elects itself at once and commits as
soon as its own append is durable.
"""

from __future__ import annotations

import random
from typing import Dict, FrozenSet, List, Optional

import attrs

from stalwart.cluster.raft.hardstate import HardState
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import (
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    Message,
    Ready,
    RequestVote,
    RequestVoteResponse,
)
from stalwart.cluster.raft.quorum import quorum_index, vote_result

__all__ = ["RaftConfig", "RaftCore", "NotLeader", "FOLLOWER", "CANDIDATE", "LEADER"]

FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"


@attrs.frozen
class RaftConfig:
    election_ticks: int = attrs.field(default=10, validator=attrs.validators.ge(2))
    """Ticks without hearing from a leader before campaigning; the actual
    timeout is drawn uniformly from [election_ticks, 2 * election_ticks) so
    that candidates rarely collide (Raft 5.2).  With 100 ms ticks the default
    is the issue's 1000 ms."""

    heartbeat_ticks: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Ticks between leader heartbeats; must be well below election_ticks."""

    append_batch_bytes_max: int = attrs.field(
        default=10 * 1024 * 1024, validator=attrs.validators.ge(1)
    )
    """Largest AppendEntries payload; bigger batches amortise round trips,
    smaller ones bound a follower's memory per message."""

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_ticks >= self.election_ticks:
            raise ValueError("heartbeat_ticks must be below election_ticks")


class NotLeader(Exception):
    """A proposal reached a node that does not lead; C{leader} is its best guess or None."""

    def __init__(self, leader: Optional[str]) -> None:
        super().__init__(leader)
        self.leader = leader


@attrs.define
class _Progress:
    """The leader's view of one peer (Raft figure 2, nextIndex/matchIndex)."""

    match: int = 0
    next: int = 1


class RaftCore:
    def __init__(
        self,
        config: RaftConfig,
        node_id: str,
        log: RaftLog,
        hard_state: HardState,
        voters: FrozenSet[str],
        rng: random.Random,
        learners: FrozenSet[str] = frozenset(),
    ) -> None:
        self.config = config
        self.id = node_id
        self.log = log
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.voters = frozenset(voters)
        self.learners = frozenset(learners)
        self.role = FOLLOWER
        self.leader: Optional[str] = None
        #: Index of the no-op this node appended on becoming leader: until
        #: it is applied, local state may lack entries committed by earlier
        #: leaders (Raft 8, read-only operations).
        self.term_start = 0
        self._rng = rng
        self._handed = hard_state
        self._messages: List[Message] = []
        self._votes: Dict[str, bool] = {}
        self._progress: Dict[str, _Progress] = {}
        self._elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._random_timeout()

    # -- inputs ------------------------------------------------------------

    def campaign(self) -> None:
        """Start an election now (Raft 5.2); a learner never does."""
        if self.id not in self.voters:
            return
        self.term += 1
        self.vote = self.id
        self.role = CANDIDATE
        self.leader = None
        self._votes = {self.id: True}
        self._reset_timer()
        if self._tally():
            return
        for peer in self._peers(self.voters):
            self._send(
                RequestVote(
                    term=self.term,
                    sender=self.id,
                    recipient=peer,
                    last_log_index=self.log.last_index,
                    last_log_term=self.log.last_term,
                )
            )

    def tick(self) -> None:
        if self.role == LEADER:
            self._heartbeat_elapsed += 1
            if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
                self._heartbeat_elapsed = 0
                for peer in self._peers(self._progress):
                    self._send_append(peer)
            return
        self._elapsed += 1
        if self._elapsed >= self._timeout:
            self.campaign()

    def propose(self, data: bytes) -> Entry:
        """
        Append a command to the leader's log; returns the entry, whose term
        and index identify it when it is applied.
        @raise NotLeader: this node cannot take proposals now.
        """
        if self.role != LEADER:
            raise NotLeader(self.leader)
        entry = Entry(term=self.term, index=self.log.last_index + 1, data=data, kind=ENTRY_NORMAL)
        self._append_as_leader([entry])
        return entry

    def step(self, message: Message) -> None:
        if message.term > self.term:
            leader = message.sender if isinstance(message, AppendEntries) else None
            self._become_follower(message.term, leader)
        if isinstance(message, RequestVote):
            self._on_request_vote(message)
        elif message.term < self.term:
            # Stale: tell an old leader about the newer term (Raft 5.1).
            if isinstance(message, AppendEntries):
                self._send(
                    AppendEntriesResponse(
                        term=self.term, sender=self.id, recipient=message.sender, success=False
                    )
                )
        elif isinstance(message, AppendEntries):
            self._on_append(message)
        elif isinstance(message, AppendEntriesResponse):
            self._on_append_response(message)
        elif isinstance(message, RequestVoteResponse):
            self._on_vote_response(message)

    # -- output ------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._messages
            or self._hard_state_changed()
            or self.log.unstable_entries()
            or self.log.next_committed()
        )

    def ready(self) -> Ready:
        """
        Hand out what is to be done.  Its contents are not handed out again,
        so the driver may queue several Readies for writing before the
        first is durable; it must carry them out in order and call
        L{advance} for each in order.
        """
        hard_state = self._hard_state() if self._hard_state_changed() else None
        if hard_state is not None:
            self._handed = hard_state
        entries = tuple(self.log.unstable_entries())
        if entries:
            self.log.hand_to(entries[-1].index)
        messages, self._messages = tuple(self._messages), []
        committed = tuple(self.log.next_committed())
        if committed:
            self.log.applying_to(committed[-1].index, self._keep_from())
        return Ready(hard_state=hard_state, entries=entries, messages=messages, committed=committed)

    def advance(self, ready: Ready) -> None:
        """C{ready}'s hard state and entries are durable and its messages sent."""
        if ready.entries:
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role == LEADER:
                self._progress_of(self.id).match = self.log.stable_last
                self._maybe_commit()

    # -- handlers ----------------------------------------------------------

    def _on_request_vote(self, message: RequestVote) -> None:
        grant = (
            message.term == self.term
            and self.vote in (None, message.sender)
            and self.log.is_up_to_date(message.last_log_index, message.last_log_term)
        )
        if grant:
            self.vote = message.sender
            self._reset_timer()
        self._send(
            RequestVoteResponse(
                term=self.term, sender=self.id, recipient=message.sender, granted=grant
            )
        )

    def _on_vote_response(self, message: RequestVoteResponse) -> None:
        if self.role != CANDIDATE or message.sender not in self.voters:
            return
        self._votes[message.sender] = message.granted
        self._tally()

    def _tally(self) -> bool:
        result = vote_result(self.voters, self._votes)
        if result is True:
            self._become_leader()
        elif result is False:
            self._become_follower(self.term, None)
        return result is not None

    def _on_append(self, message: AppendEntries) -> None:
        if self.role != FOLLOWER or self.leader != message.sender:
            self._become_follower(self.term, message.sender)
        self._elapsed = 0
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
            if prev > self.log.last_index:
                reply(success=False, hint=self.log.last_index + 1)
                return
            if self.log.term(prev) != message.prev_term:
                reply(success=False, hint=self._conflict_hint(prev, message.prev_term))
                return
        new = [e for e in entries if self.log.term(e.index) != e.term]
        if new:
            self.log.append(entries[entries.index(new[0]) :])
        last_new = prev + len(entries) if entries else prev
        self.log.commit_to(min(message.commit, last_new))
        reply(success=True, match_index=last_new)

    def _conflict_hint(self, prev: int, prev_term: int) -> int:
        """
        Fast back-off (Raft 5.3, end): skip every entry of our conflicting
        term, and any with a term above the leader's, in one round trip.
        """
        index = prev
        while index > self.log.committed and self.log.term(index) > prev_term:
            index -= 1
        return max(index, 1)

    def _on_append_response(self, message: AppendEntriesResponse) -> None:
        if self.role != LEADER or message.sender not in self._progress:
            return
        progress = self._progress[message.sender]
        if message.success:
            if message.match_index > progress.match:
                progress.match = message.match_index
                progress.next = max(progress.next, progress.match + 1)
                self._maybe_commit()
            if progress.next <= self.log.last_index:
                self._send_append(message.sender)
        else:
            progress.next = max(progress.match + 1, min(progress.next - 1, message.hint or 1))
            self._send_append(message.sender)

    # -- role changes ------------------------------------------------------

    def _become_follower(self, term: int, leader: Optional[str]) -> None:
        if term > self.term:
            self.term = term
            self.vote = None
        self.role = FOLLOWER
        self.leader = leader
        self._progress = {}
        self._reset_timer()

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader = self.id
        self._heartbeat_elapsed = 0
        next_index = self.log.last_index + 1
        self._progress = {
            peer: _Progress(match=0, next=next_index)
            for peer in self._peers(self.voters | self.learners)
        }
        self._progress[self.id] = _Progress(match=self.log.stable_last, next=next_index)
        self.term_start = next_index
        # Raft 8: a no-op of our own term lets us commit earlier entries.
        self._append_as_leader(
            [Entry(term=self.term, index=next_index, data=b"", kind=ENTRY_NOOP)]
        )

    # -- helpers -----------------------------------------------------------

    def _append_as_leader(self, entries: List[Entry]) -> None:
        self.log.append(entries)
        for peer in self._peers(self._progress):
            progress = self._progress[peer]
            # Optimistic pipelining: only send when the peer was caught up,
            # otherwise its pending response triggers the next batch.
            if progress.next == entries[0].index:
                self._send_append(peer)

    def _send_append(self, peer: str) -> None:
        progress = self._progress[peer]
        prev = progress.next - 1
        entries = self.log.entries(
            progress.next, self.log.last_index, self.config.append_batch_bytes_max
        )
        if entries is None:
            # Needs entries no longer in memory (cluster issue: read from
            # the segment log or send a snapshot); heartbeat meanwhile.
            entries = []
            prev = progress.match
        self._send(
            AppendEntries(
                term=self.term,
                sender=self.id,
                recipient=peer,
                prev_index=prev,
                prev_term=self.log.term(prev),
                entries=tuple(entries),
                commit=self.log.committed,
            )
        )
        if entries:
            progress.next = entries[-1].index + 1

    def _maybe_commit(self) -> None:
        matches = {peer: p.match for peer, p in self._progress.items() if peer in self.voters}
        index = quorum_index(self.voters, matches)
        # Raft 5.4.2: only entries of the current term commit by counting.
        if index > self.log.committed and self.log.term(index) == self.term:
            self.log.commit_to(index)

    def _keep_from(self) -> int:
        """
        Lowest index still needed in memory: the first entry some follower
        is not known to hold (C{next} is optimistic, C{match} is not).
        A peer that stays away pins memory; the cluster issue bounds this
        by reading old entries from the segment log or sending a snapshot.
        """
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

    def _progress_of(self, peer: str) -> _Progress:
        return self._progress.setdefault(peer, _Progress())

    def _hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote)

    def _hard_state_changed(self) -> bool:
        return (self.term, self.vote) != (self._handed.term, self._handed.vote)

    def _random_timeout(self) -> int:
        return self.config.election_ticks + self._rng.randrange(self.config.election_ticks)

    def _reset_timer(self) -> None:
        self._elapsed = 0
        self._timeout = self._random_timeout()
