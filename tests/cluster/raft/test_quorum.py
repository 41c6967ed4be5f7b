"""Tests for L{stalwart.cluster.raft.quorum}."""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.quorum import majority, quorum_index, vote_result


class MajorityTests(SynchronousTestCase):
    def test_table(self) -> None:
        """A majority is more than half, for odd and even sizes (Raft 5.2): 4 voters need 3."""
        self.assertEqual([majority(n) for n in range(1, 8)], [1, 2, 2, 3, 3, 4, 4])

    def test_quorum_index_against_reference(self) -> None:
        """quorum_index is the largest index that a majority has reached, on random inputs."""
        rng = random.Random(7)
        for _ in range(500):
            voters = [f"n{i}" for i in range(rng.randint(1, 7))]
            match = {v: rng.randint(0, 20) for v in voters if rng.random() < 0.9}
            reference = max(
                i for i in range(0, 21)
                if sum(1 for v in voters if match.get(v, 0) >= i) > len(voters) / 2
            )
            self.assertEqual(quorum_index(voters, match), reference)

    def test_vote_result(self) -> None:
        """An election is won with a majority of grants and lost once a majority is out of reach."""
        voters = ["a", "b", "c", "d"]
        self.assertIsNone(vote_result(voters, {"a": True, "b": True}))
        self.assertTrue(vote_result(voters, {"a": True, "b": True, "c": True}))
        self.assertFalse(vote_result(voters, {"a": True, "b": False, "c": False}))
