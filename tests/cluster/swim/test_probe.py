# -*- test-case-name: tests.cluster.swim.test_probe -*-
"""L{stalwart.cluster.swim.probe}: the round-robin probe order."""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim.probe import RoundRobin


class RoundRobinTests(SynchronousTestCase):
    """SWIM 4.3: every member is probed once per round."""

    def test_each_once_per_round(self) -> None:
        """Each member comes once per round, in the same order every round."""
        order = RoundRobin()
        rng = random.Random(1)
        for name in "abcde":
            order.add(name, rng)
        first = [order.next(lambda n: True) for _ in range(5)]
        second = [order.next(lambda n: True) for _ in range(5)]
        self.assertEqual(sorted(first), list("abcde"))
        self.assertEqual(first, second)

    def test_skips_ineligible_and_removed(self) -> None:
        """Removed and ineligible members are skipped; with none eligible, None."""
        order = RoundRobin()
        rng = random.Random(2)
        for name in "abc":
            order.add(name, rng)
        order.remove("b")
        seen = {order.next(lambda n: n != "c") for _ in range(4)}
        self.assertEqual(seen, {"a"})
        self.assertIsNone(RoundRobin().next(lambda n: True))
        self.assertIsNone(order.next(lambda n: False))

    def test_add_during_round(self) -> None:
        """A member added mid-round is probed within the next full round."""
        rng = random.Random(3)
        for _ in range(50):
            order = RoundRobin()
            for name in "abcd":
                order.add(name, rng)
            order.next(lambda n: True)
            order.add("new", rng)
            self.assertIn("new", [order.next(lambda n: True) for _ in range(5)])
