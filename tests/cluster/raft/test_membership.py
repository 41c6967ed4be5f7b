# -*- test-case-name: tests.cluster.raft.test_membership -*-
"""
Tests for membership in L{stalwart.cluster.raft.core}: bootstrap, learners,
and configuration changes of one server at a time through the log
(Ongaro's thesis, sections 4.1, 4.2.1 and 4.2.2).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import (
    FOLLOWER,
    LEADER,
    ConfigChangeRefused,
    NotLeader,
    RaftConfig,
)
from stalwart.cluster.raft.messages import (
    ENTRY_CONFIG,
    AppendEntries,
    Configuration,
    Entry,
    RequestVote,
    RequestVoteResponse,
    decode_configuration,
    encode_configuration,
)
from tests.cluster.raft.test_core import Cluster, MemoryStorage, handle, make_core

ELECTION = RaftConfig().election_ticks


def config_entry(term: int, index: int, voters, learners=()) -> Entry:
    data = encode_configuration(Configuration(voters=frozenset(voters), learners=frozenset(learners)))
    return Entry(term=term, index=index, data=data, kind=ENTRY_CONFIG)


def grown_cluster(*joiners, promote=True) -> Cluster:
    """a bootstraps alone; each joiner starts empty and is added (and promoted) through the log."""
    cluster = Cluster([])
    a = cluster.add("a")
    a.bootstrap()
    cluster.elect("a")
    for name in joiners:
        cluster.add(name)
        a.propose_config_change(add_learner=name)
        cluster.run()
        cluster.tick(2, only={"a"})
        if promote:
            a.propose_config_change(promote=name)
            cluster.run()
            cluster.tick(1, only={"a"})
    return cluster


class BootstrapTests(SynchronousTestCase):
    def test_bootstrap_single_voter(self) -> None:
        """
        A brand-new node with an empty log makes itself the sole voter by
        appending a configuration entry at index 1, then leads (thesis 4.1).
        """
        core = make_core("a", ())
        core.bootstrap()
        self.assertEqual(core.voters, {"a"})
        core.campaign()
        self.assertEqual(core.role, LEADER)
        first = handle(core)
        self.assertEqual([(e.index, e.kind) for e in first.entries][0], (1, ENTRY_CONFIG))
        self.assertEqual(decode_configuration(first.entries[0].data), Configuration(voters={"a"}))

    def test_bootstrap_refused_with_log_or_configuration(self) -> None:
        """Only an empty node without configuration may bootstrap: joining nodes must not (thesis 4.1)."""
        self.assertRaises(ValueError, make_core("a", {"a"}).bootstrap)
        storage = MemoryStorage()
        storage.entries = [Entry(term=1, index=1)]
        self.assertRaises(ValueError, make_core("a", (), storage).bootstrap)

    def test_joining_node_learns_configuration_from_log(self) -> None:
        """A node started with no configuration takes it from the leader's log and never campaigns (thesis 4.1)."""
        cluster = grown_cluster("b", promote=False)
        b = cluster.nodes["b"]
        self.assertEqual(b.configuration, Configuration(voters={"a"}, learners={"b"}))
        cluster.nodes["a"].propose(b"hello")
        cluster.run()
        cluster.tick(1, only={"a"})
        self.assertEqual(cluster.data("b"), [b"hello"])

    def test_grow_to_three_and_survive_leader_loss(self) -> None:
        """
        Growing 1 -> 3 one server at a time gives three voters; with the
        first one cut off the other two elect a leader (thesis 4.1, 4.2.1).
        """
        cluster = grown_cluster("b", "c")
        self.assertEqual({n: c.voters for n, c in cluster.nodes.items()},
                         {n: {"a", "b", "c"} for n in "abc"})
        cluster.cut.add("a")
        cluster.tick(3 * ELECTION, only={"b", "c"})
        self.assertEqual(len([n for n in "bc" if cluster.nodes[n].role == LEADER]), 1)


class LearnerTests(SynchronousTestCase):
    def test_learner_never_campaigns(self) -> None:
        """A learner replicates but never starts an election, even without a leader (thesis 4.2.1)."""
        cluster = Cluster(["a", "b", "c"], learners=["r"])
        cluster.elect("a")
        cluster.cut.add("a")
        r = cluster.nodes["r"]
        for _ in range(5 * ELECTION):
            r.tick()
        self.assertEqual((r.role, r.term), (FOLLOWER, 1))

    def test_learner_not_in_quorum(self) -> None:
        """
        With one of two other voters unreachable, a learner's acknowledgement
        does not make a majority: nothing commits (thesis 4.2.1).
        """
        cluster = Cluster(["a", "b", "c"], learners=["r"])
        leader = cluster.elect("a")
        cluster.tick(1)
        cluster.cut.update({"b", "c"})
        leader.propose(b"x")
        cluster.run()
        self.assertEqual(leader.progress()["r"].match, leader.log.last_index)
        self.assertEqual(cluster.data("a"), [])

    def test_learner_receives_committed_entries(self) -> None:
        """A learner applies everything the voters commit (thesis 4.2.1)."""
        cluster = Cluster(["a", "b", "c"], learners=["r"])
        leader = cluster.elect("a")
        leader.propose(b"x")
        cluster.run()
        cluster.tick(1)
        self.assertEqual(cluster.data("r"), [b"x"])

    def test_read_replica_never_votes(self) -> None:
        """
        A read replica refuses every vote and pre-vote and never campaigns,
        even if a configuration wrongly lists it as a voter.
        """
        core = make_core("r", {"a", "r"}, read_replica=True)
        for _ in range(5 * ELECTION):
            core.tick()
        self.assertEqual(core.role, FOLLOWER)
        core.step(RequestVote(term=1, sender="a", recipient="r", last_log_index=0, last_log_term=0, pre_vote=True))
        core.step(RequestVote(term=1, sender="a", recipient="r", last_log_index=0, last_log_term=0))
        self.assertEqual([m.granted for m in handle(core).messages], [False, False])


class ConfigChangeTests(SynchronousTestCase):
    def test_takes_effect_on_append(self) -> None:
        """A follower uses a new configuration as soon as it appends it, before it commits (thesis 4.1)."""
        follower = make_core("b", {"a", "b"})
        follower.step(AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                    entries=(config_entry(1, 1, {"a", "b"}, {"c"}),), commit=0))
        self.assertEqual(follower.learners, {"c"})
        self.assertEqual(follower.log.committed, 0)

    def test_replaced_configuration_reverts(self) -> None:
        """
        An uncommitted configuration entry replaced by a new leader's
        conflicting entry stops applying: the previous configuration is back (thesis 4.1).
        """
        follower = make_core("b", {"a", "b", "c"})
        follower.step(AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                    entries=(config_entry(1, 1, {"a", "b", "c"}, {"d"}),), commit=0))
        handle(follower)
        self.assertEqual(follower.learners, {"d"})
        follower.step(AppendEntries(term=2, sender="c", recipient="b", prev_index=0, prev_term=0,
                                    entries=(Entry(term=2, index=1),), commit=0))
        self.assertEqual(follower.configuration, Configuration(voters={"a", "b", "c"}))

    def test_restart_recovers_configuration(self) -> None:
        """
        After a restart the configuration is the one the driver passes (as
        of the applied index) overridden by configuration entries in the
        unapplied tail (thesis 4.1).
        """
        storage = MemoryStorage()
        storage.entries = [config_entry(1, 1, {"a"}), Entry(term=1, index=2), config_entry(1, 3, {"a"}, {"b"})]
        core = make_core("a", (), storage, applied=0)
        self.assertEqual(core.configuration, Configuration(voters={"a"}, learners={"b"}))
        core = make_core("a", {"a"}, storage, applied=2)
        self.assertEqual(core.configuration, Configuration(voters={"a"}, learners={"b"}))
        core = make_core("a", {"a"}, storage, applied=3, learners={"b"})
        self.assertEqual(core.configuration, Configuration(voters={"a"}, learners={"b"}))

    def test_one_change_at_a_time(self) -> None:
        """A leader refuses a second change while the first is uncommitted (thesis 4.1)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.cut.update({"b", "c"})
        leader.propose_config_change(add_learner="d")
        with self.assertRaises(ConfigChangeRefused):
            leader.propose_config_change(add_learner="e")
        cluster.cut.clear()
        cluster.tick(1, only={"a"})
        leader.propose_config_change(add_learner="e")

    def test_change_waits_for_commit_in_term(self) -> None:
        """A new leader refuses changes until an entry of its term commits (thesis 4.1, Ongaro's 2015 fix)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.cut.update({"b", "c"})
        leader = cluster.nodes["a"]
        leader.campaign()
        cluster.cut.clear()
        leader.step(RequestVoteResponse(term=1, sender="b", recipient="a", granted=True))
        self.assertEqual(leader.role, LEADER)
        with self.assertRaises(ConfigChangeRefused):
            leader.propose_config_change(add_learner="d")

    def test_invalid_changes(self) -> None:
        """Changes that make no sense are refused; exactly one change per call."""
        cluster = Cluster(["a", "b"], learners=["r"])
        leader = cluster.elect("a")
        cluster.tick(1)
        self.assertRaises(ConfigChangeRefused, leader.propose_config_change, add_learner="b")
        self.assertRaises(ConfigChangeRefused, leader.propose_config_change, promote="b")
        self.assertRaises(ConfigChangeRefused, leader.propose_config_change, remove="z")
        self.assertRaises(ValueError, leader.propose_config_change)
        self.assertRaises(ValueError, leader.propose_config_change, add_learner="x", remove="b")
        self.assertRaises(NotLeader, cluster.nodes["b"].propose_config_change, add_learner="x")
        single = make_core("s", {"s"})
        single.campaign()
        handle(single)
        handle(single)
        self.assertRaises(ConfigChangeRefused, single.propose_config_change, remove="s")

    def test_promotion_requires_catching_up(self) -> None:
        """
        A learner further behind than promote_lag_entries_max is not
        promoted; once caught up it is, and then counts for the quorum (thesis 4.2.1).
        """
        cluster = Cluster(["a", "b", "c"], config=RaftConfig(promote_lag_entries_max=3))
        leader = cluster.elect("a")
        cluster.tick(1)
        cluster.cut.add("d")
        cluster.add("d")
        leader.propose_config_change(add_learner="d")
        for i in range(6):
            leader.propose(b"%d" % i)
        cluster.run()
        cluster.tick(1, only={"a"})
        self.assertRaises(ConfigChangeRefused, leader.propose_config_change, promote="d")
        cluster.cut.clear()
        cluster.tick(2, only={"a"})
        leader.propose_config_change(promote="d")
        cluster.run()
        cluster.tick(1, only={"a"})
        self.assertEqual(leader.voters, {"a", "b", "c", "d"})
        # Four voters need three: a and d alone cannot commit.
        cluster.cut.update({"b", "c"})
        leader.propose(b"two of four")
        cluster.run()
        self.assertNotIn(b"two of four", cluster.data("a"))
        cluster.cut.clear()
        cluster.tick(1, only={"a"})
        self.assertIn(b"two of four", cluster.data("a"))

    def test_removed_follower_gets_nothing_more(self) -> None:
        """A removed member leaves the quorum and the leader stops replicating to it (thesis 4.1)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.tick(1)
        leader.propose_config_change(remove="c")
        cluster.run()
        cluster.tick(1, only={"a"})
        self.assertEqual(leader.voters, {"a", "b"})
        self.assertNotIn("c", leader.progress())
        cluster.sent.clear()
        leader.propose(b"after")
        cluster.run()
        cluster.tick(2, only={"a"})
        self.assertFalse([m for m in cluster.sent if m.recipient == "c"])
        self.assertEqual(cluster.data("b"), [b"after"])

    def test_removed_leader_steps_down_after_commit(self) -> None:
        """
        A leader that removes itself keeps leading (without counting its own
        vote) until the change commits, then steps down and hands over; it
        never campaigns again (thesis 4.2.2).
        """
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.tick(1)
        cluster.cut.update({"b", "c"})
        leader.propose_config_change(remove="a")
        cluster.run()
        self.assertEqual(leader.role, LEADER)
        cluster.cut.clear()
        cluster.tick(1, only={"a"})
        self.assertEqual(leader.role, FOLLOWER)
        cluster.tick(5 * ELECTION)
        self.assertEqual(len(cluster.leaders()), 1)
        self.assertIn(cluster.leaders()[0], {"b", "c"})
        self.assertEqual(leader.role, FOLLOWER)
