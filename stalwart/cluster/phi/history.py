# -*- test-case-name: tests.cluster.phi.test_history -*-
"""
A bounded window of heartbeat inter-arrival times, with a running sum and
sum of squares so that the mean and variance cost O(1).

Hayashibara et al., "The phi accrual failure detector" (2004), section 4.1:
the detector keeps the last I{n} inter-arrival times.  Unlike Stalwart,
which never reset its window (so statistics from before a peer's downtime
outlived it), the window here is meant to be replaced on revival
(L{ArrivalHistory.seeded}), and it is never read one slot short.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Iterable, Optional

__all__ = ["ArrivalHistory"]


class ArrivalHistory:
    """
    The last C{size} intervals, in seconds.

    @ivar size: the largest number of intervals kept; the oldest goes first.
    """

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("an arrival history needs room for at least two intervals")
        self.size = size
        self._intervals: Deque[float] = deque()
        self._sum = 0.0
        self._squares = 0.0

    @classmethod
    def seeded(cls, size: int, expected_interval: float, spread: Optional[float] = None) -> "ArrivalHistory":
        """
        A history holding two intervals around C{expected_interval} (mean
        C{expected_interval}, standard deviation C{spread}), so that phi is
        meaningful from the first heartbeat on, as Akka does with its
        C{first-heartbeat-estimate}.

        @param expected_interval: seconds between heartbeats the caller
            expects; must be positive.
        @param spread: the standard deviation to start with, at most
            C{expected_interval}; Akka's quarter of the interval by default.
        """
        if expected_interval <= 0:
            raise ValueError("the expected interval must be positive")
        if spread is None:
            spread = expected_interval / 4
        if not 0 <= spread <= expected_interval:
            raise ValueError("the spread must be within [0, expected_interval]")
        history = cls(size)
        history.add(expected_interval - spread)
        history.add(expected_interval + spread)
        return history

    def add(self, interval: float) -> None:
        """
        Record one inter-arrival time in seconds (a negative one, from a
        clock that stepped back, counts as 0).
        """
        interval = max(0.0, interval)
        if len(self._intervals) == self.size:
            old = self._intervals.popleft()
            self._sum -= old
            self._squares -= old * old
        self._intervals.append(interval)
        self._sum += interval
        self._squares += interval * interval

    def extend(self, intervals: Iterable[float]) -> None:
        """Record several intervals, oldest first."""
        for interval in intervals:
            self.add(interval)

    def __len__(self) -> int:
        return len(self._intervals)

    def intervals(self) -> list:
        """The intervals held, oldest first (a copy)."""
        return list(self._intervals)

    @property
    def mean(self) -> float:
        """Mean interval in seconds; 0 for an empty history."""
        if not self._intervals:
            return 0.0
        return self._sum / len(self._intervals)

    @property
    def variance(self) -> float:
        """Population variance in square seconds (never negative, despite rounding)."""
        if not self._intervals:
            return 0.0
        mean = self.mean
        return max(0.0, self._squares / len(self._intervals) - mean * mean)

    @property
    def std(self) -> float:
        """Population standard deviation in seconds."""
        return self.variance ** 0.5
