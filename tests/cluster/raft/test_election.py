# -*- test-case-name: tests.cluster.raft.test_election -*-
"""
Tests for the election extensions of L{stalwart.cluster.raft.core}: PreVote,
CheckQuorum with the leader lease, and leadership transfer (Ongaro's thesis
sections 9.6, 6.2, 4.2.3 and 3.10).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRE_CANDIDATE,
    NotLeader,
    RaftConfig,
)
from stalwart.cluster.raft.messages import AppendEntries, RequestVote, RequestVoteResponse, TimeoutNow
from tests.cluster.raft.test_core import Cluster, handle, make_core

ELECTION = RaftConfig().election_ticks


def time_out(core) -> None:
    """Tick C{core} until its (randomised) election timer fires."""
    for _ in range(2 * core.config.election_ticks):
        if core.role != FOLLOWER:
            return
        core.tick()


class PreVoteTests(SynchronousTestCase):
    def test_timeout_asks_for_pre_votes_without_new_term(self) -> None:
        """
        A follower whose election timer fires asks for pre-votes for term + 1
        but stays in its term and votes for nobody (thesis 9.6).
        """
        core = make_core("a", {"a", "b", "c"})
        time_out(core)
        self.assertEqual((core.role, core.term, core.vote), (PRE_CANDIDATE, 0, None))
        ready = handle(core)
        self.assertIsNone(ready.hard_state)
        self.assertEqual(
            sorted((m.recipient, m.term, m.pre_vote) for m in ready.messages),
            [("b", 1, True), ("c", 1, True)],
        )

    def test_majority_of_pre_votes_starts_election(self) -> None:
        """Only once a majority would vote does the node raise its term and campaign (thesis 9.6)."""
        core = make_core("a", {"a", "b", "c"})
        time_out(core)
        handle(core)
        core.step(RequestVoteResponse(term=1, sender="b", recipient="a", granted=True, pre_vote=True))
        self.assertEqual((core.role, core.term, core.vote), (CANDIDATE, 1, "a"))
        votes = [m for m in handle(core).messages if isinstance(m, RequestVote)]
        self.assertEqual({(m.term, m.pre_vote) for m in votes}, {(1, False)})

    def test_refused_pre_votes_return_to_follower(self) -> None:
        """A pre-candidate refused by a majority goes back to following, term unchanged (thesis 9.6)."""
        core = make_core("a", {"a", "b", "c"})
        time_out(core)
        core.step(RequestVoteResponse(term=0, sender="b", recipient="a", granted=False, pre_vote=True))
        core.step(RequestVoteResponse(term=0, sender="c", recipient="a", granted=False, pre_vote=True))
        self.assertEqual((core.role, core.term), (FOLLOWER, 0))

    def test_granting_pre_vote_changes_nothing(self) -> None:
        """
        A voter grants a pre-vote for a later term to an up-to-date log
        without adopting that term or recording a vote (thesis 9.6).
        """
        core = make_core("b", {"a", "b", "c"})
        core.step(RequestVote(term=1, sender="a", recipient="b", last_log_index=0, last_log_term=0, pre_vote=True))
        ready = handle(core)
        self.assertIsNone(ready.hard_state)
        (response,) = ready.messages
        self.assertEqual((response.granted, response.pre_vote, response.term), (True, True, 1))
        self.assertEqual((core.term, core.vote), (0, None))

    def test_pre_vote_election_restriction(self) -> None:
        """A pre-vote is refused to a log less up to date than the voter's (Raft 5.4.1, thesis 9.6)."""
        cluster = Cluster(["a", "b", "c"], config=RaftConfig(check_quorum=False))
        cluster.elect("a")
        cluster.nodes["a"].propose(b"x")
        cluster.run()
        b = cluster.nodes["b"]
        b.step(RequestVote(term=2, sender="c", recipient="b", last_log_index=0, last_log_term=0, pre_vote=True))
        (response,) = [m for m in handle(b).messages if isinstance(m, RequestVoteResponse)]
        self.assertFalse(response.granted)

    def test_rejoining_node_does_not_disrupt_leader(self) -> None:
        """
        A node cut off for many election timeouts keeps its term, since its
        pre-votes fail; when it comes back the leader keeps leading in the
        same term and the node catches up (thesis 9.6).
        """
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        term = cluster.nodes["a"].term
        cluster.cut.add("c")
        cluster.tick(10 * ELECTION)
        self.assertEqual(cluster.nodes["c"].term, term)
        cluster.nodes["a"].propose(b"while away")
        cluster.cut.clear()
        cluster.tick(3)
        self.assertEqual(cluster.leaders(), ["a"])
        self.assertEqual({c.term for c in cluster.nodes.values()}, {term})
        self.assertEqual(cluster.data("c"), [b"while away"])

    def test_without_pre_vote_rejoining_node_disrupts(self) -> None:
        """
        The contrast: without PreVote or CheckQuorum the isolated node's
        term runs ahead, and its return deposes the healthy leader (thesis 9.6).
        """
        cluster = Cluster(["a", "b", "c"], config=RaftConfig(pre_vote=False, check_quorum=False))
        cluster.elect("a")
        term = cluster.nodes["a"].term
        cluster.cut.add("c")
        cluster.tick(10 * ELECTION, only={"a", "b", "c"})
        self.assertGreater(cluster.nodes["c"].term, term + 3)
        cluster.cut.clear()
        cluster.tick(1)
        self.assertGreater(cluster.nodes["a"].term, term)


class CheckQuorumTests(SynchronousTestCase):
    def test_leader_without_majority_steps_down(self) -> None:
        """A leader that hears from no majority for an election timeout steps down (thesis 6.2)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.cut.update({"b", "c"})
        for _ in range(2 * ELECTION):
            leader.tick()
            cluster.run()
        self.assertEqual((leader.role, leader.leader), (FOLLOWER, None))
        with self.assertRaises(NotLeader):
            leader.propose(b"x")

    def test_leader_with_majority_stays(self) -> None:
        """Losing one follower of three does not make the leader step down (thesis 6.2)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.cut.add("c")
        cluster.tick(5 * ELECTION, only={"a", "b"})
        self.assertEqual(leader.role, LEADER)

    def test_one_way_partition_steps_down(self) -> None:
        """
        A leader whose messages arrive but whose followers' replies are lost
        counts as cut off: it steps down, and a follower takes over once
        its lease on the old leader lapses (thesis 6.2, asymmetric partition).
        """
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.drop.update({("b", "a"), ("c", "a")})
        cluster.tick(2 * ELECTION, only={"a"})
        self.assertEqual(leader.role, FOLLOWER)
        cluster.drop.clear()
        cluster.tick(3 * ELECTION)
        self.assertEqual(len(cluster.leaders()), 1)

    def test_follower_in_lease_ignores_candidates(self) -> None:
        """
        A follower that heard from its leader within the election timeout
        ignores a RequestVote of a higher term: no reply, no new term
        (thesis 4.2.3).  After the timeout it considers the vote.
        """
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        b = cluster.nodes["b"]
        term = b.term
        vote = RequestVote(term=term + 1, sender="c", recipient="b", last_log_index=9, last_log_term=term)
        b.step(vote)
        self.assertEqual((b.term, handle(b).messages), (term, ()))
        for _ in range(ELECTION):
            b.tick()
        handle(b)
        b.step(vote)
        self.assertEqual(b.term, term + 1)
        (response,) = [m for m in handle(b).messages if isinstance(m, RequestVoteResponse)]
        self.assertTrue(response.granted)

    def test_transfer_vote_bypasses_lease(self) -> None:
        """A RequestVote sent because the leader handed over is considered despite the lease (thesis 3.10)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        b = cluster.nodes["b"]
        term = b.term
        b.step(RequestVote(term=term + 1, sender="c", recipient="b", last_log_index=9,
                           last_log_term=term, transfer=True))
        self.assertEqual((b.term, b.vote), (term + 1, "c"))


class TransferTests(SynchronousTestCase):
    def test_transfer_to_up_to_date_follower(self) -> None:
        """
        transfer_leadership sends TimeoutNow to a caught-up target, which
        campaigns at once and wins the next term (thesis 3.10).
        """
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        cluster.tick(1)
        self.assertEqual(cluster.nodes["a"].transfer_leadership("b"), "b")
        cluster.run()
        self.assertEqual(cluster.leaders(), ["b"])
        self.assertEqual(cluster.nodes["b"].term, 2)
        self.assertEqual(cluster.nodes["a"].leader, "b")
        self.assertIn(TimeoutNow(term=1, sender="a", recipient="b"), cluster.sent)

    def test_transfer_catches_target_up_first(self) -> None:
        """
        A lagging target first receives the missing entries; TimeoutNow goes
        only once it matches the leader's log, so it can win (thesis 3.10).
        """
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        cluster.cut.add("c")
        for i in range(5):
            cluster.nodes["a"].propose(b"%d" % i)
            cluster.run()
        cluster.cut.clear()
        cluster.sent.clear()
        cluster.nodes["a"].transfer_leadership("c")
        cluster.tick(1, only={"a"})  # c's probe was lost while cut: the heartbeat resends it
        kinds = [type(m).__name__ for m in cluster.sent if m.sender == "a" and m.recipient == "c"]
        self.assertEqual(kinds[0], "AppendEntries")
        self.assertIn("TimeoutNow", kinds)
        self.assertEqual(cluster.leaders(), ["c"])
        self.assertEqual(cluster.data("c")[:5], [b"%d" % i for i in range(5)])

    def test_default_target_is_most_up_to_date(self) -> None:
        """Without a target, the voter with the highest match index is chosen (thesis 3.10)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        cluster.cut.add("c")
        cluster.nodes["a"].propose(b"x")
        cluster.run()
        self.assertEqual(cluster.nodes["a"].transfer_leadership(), "b")

    def test_no_proposals_during_transfer(self) -> None:
        """A leader handing over refuses proposals, so the target can catch up (thesis 3.10)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        cluster.cut.add("b")
        cluster.nodes["a"].transfer_leadership("b")
        with self.assertRaises(NotLeader):
            cluster.nodes["a"].propose(b"x")

    def test_transfer_times_out(self) -> None:
        """If the target does not take over within an election timeout, the leader takes proposals again (thesis 3.10)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.drop.add(("a", "b"))
        leader.transfer_leadership("b")
        cluster.tick(ELECTION, only={"a"})
        self.assertEqual(leader.role, LEADER)
        leader.propose(b"again")

    def test_single_voter_has_no_target(self) -> None:
        """A group of one has nobody to hand over to."""
        core = make_core("a", {"a"})
        core.campaign()
        self.assertIsNone(core.transfer_leadership())
        self.assertRaises(ValueError, core.transfer_leadership, "b")

    def test_stale_timeout_now_ignored(self) -> None:
        """TimeoutNow from an old term does not start an election (Raft 5.1)."""
        cluster = Cluster(["a", "b", "c"])
        cluster.elect("a")
        b = cluster.nodes["b"]
        b.step(TimeoutNow(term=0, sender="a", recipient="b"))
        self.assertEqual(b.role, FOLLOWER)

    def test_append_from_new_leader_ends_pre_candidacy(self) -> None:
        """A pre-candidate that hears from a leader of its term follows it (Raft 5.2)."""
        core = make_core("a", {"a", "b", "c"})
        time_out(core)
        core.step(AppendEntries(term=0, sender="b", recipient="a", prev_index=0, prev_term=0, entries=(), commit=0))
        self.assertEqual((core.role, core.leader), (FOLLOWER, "b"))
