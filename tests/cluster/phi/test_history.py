# -*- test-case-name: tests.cluster.phi.test_history -*-
"""L{stalwart.cluster.phi.history}: the bounded window of inter-arrival times."""

import random
import statistics

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.phi.history import ArrivalHistory


class ArrivalHistoryTests(SynchronousTestCase):
    """Hayashibara et al. 4.1: a sliding window with O(1) mean and variance."""

    def test_bounded(self) -> None:
        """Past its size the oldest interval goes first."""
        history = ArrivalHistory(3)
        history.extend([1.0, 2.0, 3.0, 4.0])
        self.assertEqual(history.intervals(), [2.0, 3.0, 4.0])
        self.assertEqual(history.mean, 3.0)

    def test_negative_interval_is_zero(self) -> None:
        """A clock that stepped back gives an interval of 0, never a negative one."""
        history = ArrivalHistory(4)
        history.add(-5.0)
        self.assertEqual(history.intervals(), [0.0])

    def test_empty(self) -> None:
        """An empty history has mean and deviation 0; a size below 2 is refused."""
        self.assertEqual((ArrivalHistory(2).mean, ArrivalHistory(2).std), (0.0, 0.0))
        self.assertRaises(ValueError, ArrivalHistory, 1)

    def test_seeded(self) -> None:
        """A seeded history has the expected mean and, by default, a quarter of it as deviation (Akka)."""
        history = ArrivalHistory.seeded(100, 2.0)
        self.assertEqual(history.intervals(), [1.5, 2.5])
        self.assertAlmostEqual(history.mean, 2.0)
        self.assertAlmostEqual(history.std, 0.5)
        tight = ArrivalHistory.seeded(100, 0.5, spread=0.05)
        self.assertAlmostEqual(tight.std, 0.05)
        self.assertRaises(ValueError, ArrivalHistory.seeded, 10, 0.0)
        self.assertRaises(ValueError, ArrivalHistory.seeded, 10, 1.0, spread=2.0)

    def test_matches_reference(self) -> None:
        """Over random inputs, mean and deviation match statistics.fmean/pstdev of the last n intervals."""
        rng = random.Random(6)
        for _ in range(200):
            size = rng.randint(2, 30)
            history = ArrivalHistory(size)
            values = [rng.uniform(0, 10) for _ in range(rng.randint(1, 80))]
            history.extend(values)
            window = values[-size:]
            self.assertAlmostEqual(history.mean, statistics.fmean(window), places=6)
            self.assertAlmostEqual(history.std, statistics.pstdev(window), places=5)
