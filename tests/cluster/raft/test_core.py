# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
Tests for L{stalwart.cluster.raft.core}: the pure Raft state machine,
driven by hand with no clock, disk or network.
"""

from __future__ import annotations

import random
from typing import Dict, List

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import CANDIDATE, FOLLOWER, LEADER, NotLeader, RaftConfig, RaftCore
from stalwart.cluster.raft.hardstate import HardState
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import (
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    RequestVote,
    RequestVoteResponse,
)


class MemoryStorage:
    """Stable entries of one node, as the segment log would hold them."""

    def __init__(self) -> None:
        self.entries: List[Entry] = []
        self.hard_state = HardState()

    def term_at(self, index: int) -> int:
        return self.entries[index - 1].term if 0 < index <= len(self.entries) else 0

    def persist(self, ready) -> None:
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state
        if ready.entries:
            first = ready.entries[0].index
            del self.entries[first - 1 :]
            self.entries.extend(ready.entries)

    def read(self, lo: int, hi: int, bytes_max: int) -> List[Entry]:
        """Stable entries lo..hi, as the driver would read them back from segments."""
        out, size = [], 0
        for entry in self.entries[lo - 1 : hi]:
            size += entry.size()
            if out and size > bytes_max:
                break
            out.append(entry)
        return out


def make_core(
    node_id: str,
    voters,
    storage: MemoryStorage = None,
    applied: int = 0,
    seed: int = 1,
    config: RaftConfig = None,
    learners=frozenset(),
    read_replica: bool = False,
) -> RaftCore:
    storage = storage or MemoryStorage()
    tail = storage.entries[applied:]
    log = RaftLog(len(storage.entries), storage.term_at, tail, applied, read_stable=storage.read)
    core = RaftCore(
        config or RaftConfig(), node_id, log, storage.hard_state, frozenset(voters),
        random.Random(seed), learners=frozenset(learners), read_replica=read_replica,
    )
    core.storage = storage
    return core


def handle(core: RaftCore):
    """Carry out one Ready the way the driver does; returns it."""
    ready = core.ready()
    core.storage.persist(ready)
    core.advance(ready)
    return ready


class Cluster:
    """
    Nodes joined by a perfect network that delivers when told to.
    C{cut} isolates nodes both ways; C{drop} holds (sender, recipient) pairs
    whose messages are lost (one-way partitions).
    """

    def __init__(self, names, seed: int = 1, config: RaftConfig = None, learners=()) -> None:
        self.config = config or RaftConfig()
        self.nodes: Dict[str, RaftCore] = {}
        self.applied: Dict[str, List[Entry]] = {}
        self.cut = set()
        self.drop = set()
        self.sent: List = []
        for i, name in enumerate(list(names) + list(learners)):
            self.add(name, names, learners, seed=seed + i)

    def add(self, name, voters=(), learners=(), seed: int = None, read_replica: bool = False) -> RaftCore:
        if seed is None:
            seed = 99 + len(self.nodes)  # equal seeds would time out in lock step
        core = make_core(name, voters, seed=seed, config=self.config, learners=learners,
                         read_replica=read_replica)
        self.nodes[name] = core
        self.applied[name] = []
        return core

    def data(self, name) -> List[bytes]:
        """Applied client data on C{name}."""
        return [e.data for e in self.applied[name] if e.kind == ENTRY_NORMAL and e.data]

    def run(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for name, core in list(self.nodes.items()):
                while core.has_ready():
                    ready = handle(core)
                    self.applied[name].extend(ready.committed)
                    for message in ready.messages:
                        self.sent.append(message)
                        if {name, message.recipient} & self.cut:
                            continue
                        if (name, message.recipient) in self.drop:
                            continue
                        if message.recipient in self.nodes:
                            self.nodes[message.recipient].step(message)
                            moved = True
            if not moved:
                return

    def tick(self, times: int = 1, only=None) -> None:
        """Tick every node (or those in C{only}) C{times} times, delivering after each."""
        for _ in range(times):
            for name, core in self.nodes.items():
                if only is None or name in only:
                    core.tick()
            self.run()

    def elect(self, name: str) -> RaftCore:
        self.nodes[name].campaign()
        self.run()
        assert self.nodes[name].role == LEADER
        return self.nodes[name]

    def leaders(self) -> List[str]:
        return sorted(n for n, c in self.nodes.items() if c.role == LEADER)


class SingleNodeTests(SynchronousTestCase):
    def test_elects_itself(self) -> None:
        """A group of one becomes leader on campaigning: its own vote is a majority (Raft 5.2)."""
        core = make_core("a", {"a"})
        core.campaign()
        self.assertEqual((core.role, core.term, core.vote, core.leader), (LEADER, 1, "a", "a"))

    def test_noop_commits_after_durable_append(self) -> None:
        """The new leader's no-op commits once its own append is durable, not before (Raft 5.3, 8)."""
        core = make_core("a", {"a"})
        core.campaign()
        first = core.ready()
        self.assertEqual([e.kind for e in first.entries], [ENTRY_NOOP])
        self.assertEqual(first.committed, ())
        self.assertEqual(first.hard_state, HardState(term=1, vote="a"))
        core.storage.persist(first)
        core.advance(first)
        second = core.ready()
        self.assertEqual([e.index for e in second.committed], [1])

    def test_group_commit(self) -> None:
        """Proposals made while a write is in flight form the next batch together."""
        core = make_core("a", {"a"})
        core.campaign()
        handle(core)
        handle(core)
        entries = [core.propose(b"x%d" % i) for i in range(5)]
        ready = core.ready()
        self.assertEqual([e.index for e in ready.entries], [e.index for e in entries])
        core.storage.persist(ready)
        core.advance(ready)
        self.assertEqual([e.data for e in core.ready().committed], [b"x%d" % i for i in range(5)])

    def test_nothing_committed_before_persisted(self) -> None:
        """An entry proposed but not yet durable is never handed to the state machine."""
        core = make_core("a", {"a"})
        core.campaign()
        handle(core)
        handle(core)
        core.propose(b"x")
        self.assertEqual(core.ready().committed, ())

    def test_follower_refuses_proposals(self) -> None:
        """Only a leader takes proposals; others say who leads, if they know."""
        core = make_core("b", {"a", "b", "c"})
        with self.assertRaises(NotLeader) as caught:
            core.propose(b"x")
        self.assertIsNone(caught.exception.leader)

    def test_restart_reapplies_tail(self) -> None:
        """After a restart, entries after the applied index are committed and applied again once the new term's no-op commits."""
        storage = MemoryStorage()
        core = make_core("a", {"a"}, storage)
        core.campaign()
        handle(core)
        handle(core)
        core.propose(b"one")
        handle(core)
        handle(core)
        restarted = make_core("a", {"a"}, storage, applied=1)
        restarted.campaign()
        self.assertEqual(restarted.term, 2)
        handle(restarted)
        committed = handle(restarted).committed
        self.assertEqual([(e.index, e.data) for e in committed], [(2, b"one"), (3, b"")])


class ElectionTests(SynchronousTestCase):
    def test_three_node_election(self) -> None:
        """A candidate with votes from a majority leads; the others follow it (Raft 5.2)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.nodes["a"].campaign()
        cluster.run()
        roles = {n: c.role for n, c in cluster.nodes.items()}
        self.assertEqual(roles, {"a": LEADER, "b": FOLLOWER, "c": FOLLOWER})
        self.assertEqual({c.leader for c in cluster.nodes.values()}, {"a"})

    def test_one_vote_per_term(self) -> None:
        """A node grants at most one vote per term, also after a restart, since the vote is persisted (Raft 5.2, figure 2)."""
        storage = MemoryStorage()
        core = make_core("c", {"a", "b", "c"}, storage)
        core.step(RequestVote(term=5, sender="a", recipient="c", last_log_index=0, last_log_term=0))
        handle(core)
        restarted = make_core("c", {"a", "b", "c"}, storage)
        restarted.step(RequestVote(term=5, sender="b", recipient="c", last_log_index=0, last_log_term=0))
        (response,) = handle(restarted).messages
        self.assertEqual((response.term, response.granted), (5, False))

    def test_election_restriction(self) -> None:
        """A candidate whose log is less up to date is refused (Raft 5.4.1)."""
        storage = MemoryStorage()
        storage.entries = [Entry(term=1, index=1), Entry(term=2, index=2)]
        storage.hard_state = HardState(term=2)
        core = make_core("c", {"a", "c"}, storage, applied=0)
        core.step(RequestVote(term=3, sender="a", recipient="c", last_log_index=5, last_log_term=1))
        (response,) = core.ready().messages
        self.assertFalse(response.granted)
        core2 = make_core("c", {"a", "c"}, storage, applied=0)
        core2.step(RequestVote(term=3, sender="a", recipient="c", last_log_index=2, last_log_term=2))
        (response,) = core2.ready().messages
        self.assertTrue(response.granted)

    def test_higher_term_demotes_leader(self) -> None:
        """Any message with a newer term turns a leader into a follower of that term (Raft 5.1)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.nodes["a"].campaign()
        cluster.run()
        leader = cluster.nodes["a"]
        leader.step(AppendEntriesResponse(term=9, sender="b", recipient="a", success=False))
        self.assertEqual((leader.role, leader.term, leader.vote), (FOLLOWER, 9, None))

    def test_lost_election_returns_to_follower(self) -> None:
        """A candidate refused by a majority stops being a candidate."""
        core = make_core("a", {"a", "b", "c"})
        core.campaign()
        self.assertEqual(core.role, CANDIDATE)
        core.step(RequestVoteResponse(term=1, sender="b", recipient="a", granted=False))
        core.step(RequestVoteResponse(term=1, sender="c", recipient="a", granted=False))
        self.assertEqual(core.role, FOLLOWER)

    def test_election_timeout_randomised(self) -> None:
        """Followers campaign after between election_ticks and twice that without a leader (Raft 5.2)."""
        for seed in range(20):
            core = make_core("a", {"a", "b", "c"}, seed=seed)
            ticks = 0
            while core.role == FOLLOWER:
                core.tick()
                ticks += 1
            self.assertTrue(10 <= ticks < 20, ticks)


class ReplicationTests(SynchronousTestCase):
    def test_commit_on_majority(self) -> None:
        """An entry commits once a majority stores it, and every node applies it (Raft 5.3)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.nodes["a"].campaign()
        cluster.run()
        cluster.cut.add("c")
        cluster.nodes["a"].propose(b"x")
        cluster.run()
        self.assertEqual([e.data for e in cluster.applied["a"] if e.data], [b"x"])
        # Followers learn the commit index with the next heartbeat.
        self.assertEqual([e.data for e in cluster.applied["b"] if e.data], [])
        cluster.nodes["a"].tick()
        cluster.run()
        self.assertEqual([e.data for e in cluster.applied["b"] if e.data], [b"x"])
        cluster.cut.clear()
        for _ in range(2):
            cluster.nodes["a"].tick()
            cluster.run()
        self.assertEqual([e.data for e in cluster.applied["c"] if e.data], [b"x"])

    def test_no_commit_without_majority(self) -> None:
        """With two of three nodes unreachable, nothing new commits."""
        cluster = Cluster(["a", "b", "c"])
        cluster.nodes["a"].campaign()
        cluster.run()
        cluster.cut.update({"b", "c"})
        cluster.nodes["a"].propose(b"x")
        cluster.run()
        self.assertEqual([e.data for e in cluster.applied["a"] if e.data], [])

    def test_conflicting_entries_replaced(self) -> None:
        """A follower drops entries that conflict with the leader's and takes the leader's (Raft 5.3)."""
        storage = MemoryStorage()
        storage.entries = [Entry(term=1, index=1), Entry(term=2, index=2, data=b"old"), Entry(term=2, index=3, data=b"old")]
        storage.hard_state = HardState(term=2)
        follower = make_core("b", {"a", "b"}, storage)
        follower.step(AppendEntries(term=3, sender="a", recipient="b", prev_index=1, prev_term=1,
                                    entries=(Entry(term=3, index=2, data=b"new"),), commit=2))
        ready = handle(follower)
        self.assertEqual(ready.messages[0], AppendEntriesResponse(term=3, sender="b", recipient="a", success=True, match_index=2))
        self.assertEqual([(e.term, e.data) for e in storage.entries], [(1, b""), (3, b"new")])
        # Entry 1 was already durable; entry 2 only after this Ready's write.
        self.assertEqual([e.index for e in ready.committed], [1])
        self.assertEqual([(e.index, e.data) for e in handle(follower).committed], [(2, b"new")])

    def test_consistency_check_rejects_with_hint(self) -> None:
        """A follower missing the previous entry refuses and says where to resume (Raft 5.3, fast back-off)."""
        follower = make_core("b", {"a", "b"})
        follower.step(AppendEntries(term=1, sender="a", recipient="b", prev_index=7, prev_term=1, entries=(), commit=0))
        (response,) = follower.ready().messages
        self.assertEqual((response.success, response.hint), (False, 1))

    def test_back_off_catches_up_lagging_follower(self) -> None:
        """A follower that missed many entries is brought up to date by the leader's retries."""
        cluster = Cluster(["a", "b", "c"])
        cluster.nodes["a"].campaign()
        cluster.run()
        cluster.cut.add("c")
        for i in range(30):
            cluster.nodes["a"].propose(b"%d" % i)
            cluster.run()
        cluster.cut.clear()
        for _ in range(3):
            cluster.nodes["a"].tick()
            cluster.run()
        self.assertEqual(
            [e.data for e in cluster.applied["c"] if e.data], [b"%d" % i for i in range(30)]
        )

    def test_only_current_term_commits_by_counting(self) -> None:
        """
        A leader does not commit an entry of an earlier term just because
        a majority stores it; it does once an entry of its own term is
        stored by a majority (Raft 5.4.2, figure 8).
        """
        storage = MemoryStorage()
        storage.entries = [Entry(term=2, index=1, data=b"old")]
        storage.hard_state = HardState(term=3, vote="a")
        leader = make_core("a", {"a", "b", "c"}, storage)
        leader.campaign()  # term 4
        leader.step(RequestVoteResponse(term=4, sender="b", recipient="a", granted=True))
        self.assertEqual(leader.role, LEADER)
        ready = handle(leader)  # persists the term-4 no-op at index 2
        self.assertEqual(leader.log.committed, 0)
        # b acknowledges index 1 only: a majority holds the term-2 entry.
        leader.step(AppendEntriesResponse(term=4, sender="b", recipient="a", success=True, match_index=1))
        self.assertEqual(leader.log.committed, 0)
        leader.step(AppendEntriesResponse(term=4, sender="b", recipient="a", success=True, match_index=2))
        self.assertEqual(leader.log.committed, 2)
        self.assertTrue(ready.entries)

    def test_stale_leader_told_newer_term(self) -> None:
        """An AppendEntries from an older term is refused with the current term (Raft 5.1)."""
        follower = make_core("b", {"a", "b"})
        follower.step(RequestVote(term=4, sender="c", recipient="b", last_log_index=0, last_log_term=0))
        handle(follower)
        follower.step(AppendEntries(term=2, sender="a", recipient="b", prev_index=0, prev_term=0, entries=(), commit=0))
        (response,) = follower.ready().messages
        self.assertEqual((response.term, response.success), (4, False))


class ReadIndexTests(SynchronousTestCase):
    """L{RaftCore.read_index}: how far a node must have applied before it serves a read."""

    def test_leader_reads_at_commit_and_own_noop(self) -> None:
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        self.assertEqual(leader.read_index(), leader.log.committed)
        self.assertGreaterEqual(leader.read_index(), leader.term_start)
        leader.propose(b"x")
        cluster.run()
        self.assertEqual(leader.read_index(), leader.log.last_index)

    def test_follower_reads_at_leaders_commit(self) -> None:
        """A follower's target is the leader's commit as heard, even beyond its own log."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.drop.add(("a", "c"))
        leader.propose(b"x")
        cluster.run()
        cluster.tick(1, only={"a"})
        cluster.drop.clear()
        # c missed the entry; the next AppendEntries tells it the commit index.
        follower = cluster.nodes["c"]
        follower.step(AppendEntries(term=leader.term, sender="a", recipient="c", prev_index=leader.log.last_index,
                                    prev_term=leader.term, entries=(), commit=leader.log.committed))
        self.assertEqual(follower.read_index(), leader.log.committed)
        self.assertLess(follower.log.committed, leader.log.committed)

    def test_follower_without_leader_cannot_tell(self) -> None:
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        follower = cluster.nodes["b"]
        self.assertIsNotNone(follower.read_index())
        cluster.cut.add("b")
        for _ in range(follower.config.election_ticks):
            follower.tick()
        self.assertIsNone(follower.read_index())


class LeaderUnreachableTests(SynchronousTestCase):
    """L{RaftCore.leader_unreachable}: a lost connection to the leader speeds up failover, safely."""

    def test_crashed_leader_replaced_within_ticks(self) -> None:
        """Both followers lose the leader's connection: a new leader within a few ticks, not an election timeout."""
        cluster = Cluster(["a", "b", "c"])
        old = cluster.elect("a")
        cluster.cut.add("a")
        for name in ("b", "c"):
            cluster.nodes[name].leader_unreachable("a")
        cluster.tick(4, only={"b", "c"})
        self.assertEqual(len([n for n in ("b", "c") if cluster.nodes[n].role == LEADER]), 1)
        self.assertLess(4, old.config.election_ticks)

    def test_one_follower_cannot_depose_a_healthy_leader(self) -> None:
        """Only b lost its connection: c still hears the leader and refuses b's pre-vote (thesis 9.6)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        term = leader.term
        cluster.nodes["b"].leader_unreachable("a")
        self.assertIsNone(cluster.nodes["b"].read_index())  # no reads on a leader it cannot reach
        cluster.tick(4, only={"b"})
        self.assertEqual((leader.role, leader.term), (LEADER, term))
        self.assertEqual(cluster.nodes["b"].term, term)

    def test_other_nodes_ignored(self) -> None:
        """A lost connection to a node that is not the leader changes nothing."""
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        follower = cluster.nodes["b"]
        follower.leader_unreachable("c")
        self.assertEqual(follower.leader, "a")
