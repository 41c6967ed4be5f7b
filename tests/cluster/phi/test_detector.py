# -*- test-case-name: tests.cluster.phi.test_detector -*-
"""L{stalwart.cluster.phi.detector}: phi as Akka's PhiAccrualFailureDetector computes it."""

import math
import random
import statistics

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.phi.detector import PhiDetector, PhiParameters, phi


def reference_phi(elapsed, intervals, std_min, pause):
    """Phi written the plainest way, from the whole list of intervals."""
    mean = statistics.fmean(intervals) + pause
    std = max(statistics.pstdev(intervals), std_min)
    y = (elapsed - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y ** 3 / y)) if y else 1.0
    if elapsed > mean:
        return -math.log10(e / (1 + e))
    return -math.log10(1 - 1 / (1 + e))


class PhiTests(SynchronousTestCase):
    """The phi formula (Hayashibara et al. 2004, with the logistic approximation)."""

    def test_known_values(self) -> None:
        """Akka's table: mean 1000 ms, deviation 100 ms."""
        table = {0: 0.0, 500: 0.1, 1000: 0.3, 1200: 1.6, 1400: 4.7, 1600: 10.8, 1700: 15.3}
        for elapsed_ms, expected in table.items():
            self.assertLessEqual(abs(phi(elapsed_ms / 1000, 1.0, 0.1) - expected), 0.1, elapsed_ms)

    def test_monotonic_and_finite(self) -> None:
        """Phi never decreases with elapsed time and stays finite however long the silence."""
        values = [phi(t / 100, 1.0, 0.1) for t in range(0, 100000, 7)]
        self.assertEqual(values, sorted(values))
        self.assertTrue(all(math.isfinite(v) for v in values))
        self.assertLess(values[-1], 300)
        self.assertRaises(ValueError, phi, 1.0, 1.0, 0.0)

    def test_matches_reference(self) -> None:
        """Over random windows and times (|y| < 15), the detector agrees with the plain reference."""
        rng = random.Random(8)
        for _ in range(500):
            parameters = PhiParameters(window_size=1000, std_min_seconds=rng.uniform(0.01, 0.5),
                                       acceptable_pause_seconds=rng.choice([0.0, rng.uniform(0, 1)]))
            intervals = [rng.uniform(0.1, 3.0) for _ in range(rng.randint(1, 40))]
            detector = PhiDetector(parameters, 1.0, 0.0)
            detector.history.extend(intervals)
            everything = [0.75, 1.25] + intervals
            mean = statistics.fmean(everything) + parameters.acceptable_pause_seconds
            std = max(statistics.pstdev(everything), parameters.std_min_seconds)
            elapsed = max(0.0, mean + rng.uniform(-15, 15) * std)
            expected = reference_phi(elapsed, everything, parameters.std_min_seconds,
                                     parameters.acceptable_pause_seconds)
            self.assertLessEqual(abs(detector.phi(elapsed) - expected), 1e-6 + 1e-6 * expected)


class PhiDetectorTests(SynchronousTestCase):
    """The per-member detector: window, reset on revival, crossing time."""

    def test_regular_heartbeats(self) -> None:
        """Heartbeats every second: phi is low at the usual time and high well after it."""
        detector = PhiDetector(PhiParameters(std_min_seconds=0.1), 1.0, 0.0)
        for t in range(1, 30):
            detector.heartbeat(float(t))
        self.assertLess(detector.phi(29.9), 1.0)
        self.assertGreater(detector.phi(31.0), 8.0)

    def test_irregular_heartbeats_get_more_time(self) -> None:
        """A member whose heartbeats come irregularly reaches a given phi later."""
        regular = PhiDetector(PhiParameters(), 1.0, 0.0)
        irregular = PhiDetector(PhiParameters(), 1.0, 0.0)
        rng = random.Random(3)
        t_regular = t_irregular = 0.0
        for _ in range(50):
            t_regular += 1.0
            t_irregular += rng.uniform(0.5, 1.5)
            regular.heartbeat(t_regular)
            irregular.heartbeat(t_irregular)
        self.assertGreater(irregular.crossing(8.0) - irregular.last, regular.crossing(8.0) - regular.last)

    def test_reset(self) -> None:
        """Reset forgets the window (revival): only the seeded intervals remain."""
        detector = PhiDetector(PhiParameters(), 1.0, 0.0)
        detector.history.extend([9.0] * 20)
        detector.reset(0.5, 100.0)
        self.assertEqual(len(detector.history), 2)
        self.assertAlmostEqual(detector.history.mean, 0.5)
        self.assertEqual(detector.last, 100.0)

    def test_crossing(self) -> None:
        """crossing() is when phi reaches the threshold (to a millisecond), None if it never does."""
        detector = PhiDetector(PhiParameters(std_min_seconds=0.1), 1.0, 10.0)
        at = detector.crossing(8.0)
        self.assertGreaterEqual(detector.phi(at), 8.0)
        self.assertLess(detector.phi(at - 0.002), 8.0)
        self.assertIsNone(detector.crossing(1000.0))
        later = detector.crossing(8.0, extra_pause=1.0)
        self.assertLessEqual(abs(later - at - 1.0), 0.002)

    def test_clock_step_back(self) -> None:
        """A heartbeat before the last one (clock stepped back) adds a zero interval, never a negative one."""
        detector = PhiDetector(PhiParameters(), 1.0, 10.0)
        detector.heartbeat(5.0)
        self.assertEqual(detector.history.intervals()[-1], 0.0)
        self.assertEqual(detector.last, 10.0)
