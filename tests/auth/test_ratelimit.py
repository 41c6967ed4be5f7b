# -*- test-case-name: tests.auth.test_ratelimit -*-
"""
Tests for L{stalwart.auth.ratelimit.FailureLimiter}, driven by fake times.
"""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.ratelimit import FailureLimiter


class FailureLimiterTests(SynchronousTestCase):
    """
    Failures per key within a window block the key until the window ends.
    """

    def test_below_limit(self) -> None:
        """
        Fewer than C{failures_max} failures do not block.
        """
        limiter = FailureLimiter(failures_max=3, window_seconds=60)
        limiter.record_failure("joe", 0.0)
        limiter.record_failure("joe", 1.0)
        self.assertIsNone(limiter.retry_after("joe", 2.0))
        self.assertIsNone(limiter.retry_after("ann", 2.0))

    def test_blocked_until_window_ends(self) -> None:
        """
        The C{failures_max}th failure blocks the key until C{window_seconds}
        after its first failure.
        """
        limiter = FailureLimiter(failures_max=3, window_seconds=60)
        for now in (100.0, 110.0, 120.0):
            limiter.record_failure("joe", now)
        self.assertEqual(limiter.retry_after("joe", 120.0), 40.0)
        self.assertEqual(limiter.retry_after("joe", 159.5), 0.5)
        self.assertIsNone(limiter.retry_after("joe", 160.0))
        self.assertIsNone(limiter.retry_after("ann", 120.0))

    def test_new_window(self) -> None:
        """
        Failures in an expired window are forgotten.
        """
        limiter = FailureLimiter(failures_max=2, window_seconds=10)
        limiter.record_failure("joe", 0.0)
        limiter.record_failure("joe", 10.0)
        self.assertIsNone(limiter.retry_after("joe", 10.0))
        limiter.record_failure("joe", 11.0)
        self.assertEqual(limiter.retry_after("joe", 11.0), 9.0)

    def test_success_resets(self) -> None:
        """
        A success forgets the key's failures.
        """
        limiter = FailureLimiter(failures_max=2, window_seconds=10)
        limiter.record_failure("joe", 0.0)
        limiter.record_success("joe", 1.0)
        limiter.record_failure("joe", 2.0)
        self.assertIsNone(limiter.retry_after("joe", 2.0))
        self.assertEqual(len(limiter), 1)
        limiter.record_success("nobody", 2.0)

    def test_clock_jumps_back(self) -> None:
        """
        A time earlier than the window start is clamped: the block never
        lasts more than one window after the jump.
        """
        limiter = FailureLimiter(failures_max=2, window_seconds=10)
        limiter.record_failure("joe", 1000.0)
        limiter.record_failure("joe", 1001.0)
        self.assertEqual(limiter.retry_after("joe", 500.0), 10.0)
        self.assertIsNone(limiter.retry_after("joe", 510.0))

    def test_bounded_memory(self) -> None:
        """
        Past C{keys_max} keys, the least recently failed key is forgotten.
        """
        limiter = FailureLimiter(failures_max=2, window_seconds=100, keys_max=3)
        for i, key in enumerate(["a", "b", "c"]):
            limiter.record_failure(key, float(i))
        limiter.record_failure("a", 3.0)
        limiter.record_failure("d", 4.0)
        self.assertEqual(len(limiter), 3)
        self.assertEqual(limiter.retry_after("a", 4.0), 96.0)
        limiter.record_failure("b", 5.0)
        self.assertIsNone(limiter.retry_after("b", 5.0))
        for i in range(1000):
            limiter.record_failure(f"k{i}", 6.0)
        self.assertEqual(len(limiter), 3)

    def test_bad_parameters(self) -> None:
        """
        Limits below 1 and a non-positive window are programming errors.
        """
        self.assertRaises(ValueError, FailureLimiter, failures_max=0)
        self.assertRaises(ValueError, FailureLimiter, window_seconds=0)
        self.assertRaises(ValueError, FailureLimiter, keys_max=0)
