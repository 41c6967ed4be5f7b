# -*- test-case-name: tests.cluster.swim.test_suspicion -*-
"""L{stalwart.cluster.swim.suspicion}: Lifeguard's dynamic suspicion timeout."""

import math
import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim.suspicion import Suspicion, suspicion_timeout


def reference(c, k, shortest, longest):
    """Lifeguard 4.2 written plainly, in whole milliseconds."""
    if k < 1:
        return shortest
    ms = math.floor(1000 * (longest - (longest - shortest) * math.log(c + 1) / math.log(k + 1)))
    return max(shortest, ms / 1000)


class SuspicionTimeoutTests(SynchronousTestCase):
    """Lifeguard 4.2: the timeout falls on a log scale from longest to shortest."""

    def test_known_values(self) -> None:
        """k=3 from 2 s to 30 s: 30, 16 (half way on the log scale), 7.81, then 2."""
        table = {0: 30.0, 1: 16.0, 2: 7.81, 3: 2.0, 4: 2.0}
        for confirmations, expected in table.items():
            self.assertEqual(suspicion_timeout(confirmations, 3, 2.0, 30.0), expected)
        self.assertEqual(suspicion_timeout(0, 0, 2.0, 30.0), 2.0)

    def test_matches_reference(self) -> None:
        """Over random inputs the timeout equals the plain formula and stays within [shortest, longest]."""
        rng = random.Random(2)
        for _ in range(2000):
            shortest = rng.uniform(0, 5)
            longest = shortest * rng.uniform(1, 10)
            c, k = rng.randint(0, 10), rng.randint(0, 6)
            got = suspicion_timeout(c, k, shortest, longest)
            self.assertEqual(got, reference(c, k, shortest, longest))
            self.assertTrue(shortest <= got <= longest + 1e-9)

    def test_bad_arguments(self) -> None:
        """Negative counts and a shortest above the longest are refused."""
        self.assertRaises(ValueError, suspicion_timeout, -1, 3, 1.0, 2.0)
        self.assertRaises(ValueError, suspicion_timeout, 0, 3, 2.0, 1.0)


class SuspicionTests(SynchronousTestCase):
    """One suspicion: independent confirmations bring its deadline closer."""

    def test_confirmations(self) -> None:
        """The first accuser is not a confirmation; each new accuser is, once."""
        suspicion = Suspicion(4, 100.0, "a", 1.0, 6.0, 2)
        self.assertEqual(suspicion.deadline, 106.0)
        self.assertTrue(suspicion.confirm("b"))
        self.assertFalse(suspicion.confirm("b"))
        self.assertFalse(suspicion.confirm("a"))
        self.assertEqual(suspicion.confirmations, 1)
        self.assertLess(suspicion.deadline, 106.0)
        suspicion.confirm("c")
        suspicion.confirm("d")
        self.assertEqual(suspicion.deadline, 101.0)

    def test_initial_confirmers(self) -> None:
        """Relays that nacked count from the start."""
        suspicion = Suspicion(0, 0.0, "me", 0.5, 3.0, 3, confirmers=("r1", "r2", "r3"))
        self.assertEqual(suspicion.deadline, 0.5)
