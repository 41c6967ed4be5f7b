# -*- test-case-name: tests.cluster.phi.test_detector -*-
"""
The phi accrual failure detector (Hayashibara et al., 2004), as Akka's
C{PhiAccrualFailureDetector} computes it.

Given the time since the last heartbeat, phi is -log10 of the probability
that a heartbeat arrives even later than that, under a normal distribution
fitted to the recent inter-arrival times.  Phi 1 means a 10% chance that
the member is still alive and merely late, phi 8 a chance of 1 in 10^8.
The normal tail is approximated with the logistic function (Bowling et
al., "A logistic approximation to the cumulative normal distribution",
2009), which never overflows::

    y   = (elapsed - (mean + acceptable_pause)) / max(std, std_min)
    e   = exp(-y * (1.5976 + 0.070566 * y^2))
    phi = -log10(e / (1 + e))             if elapsed > mean + pause
    phi = -log10(1 - 1 / (1 + e))         otherwise

Stalwart used this with fixed thresholds (5 and 9), an unreset window and
a check only at the ping tick; here the threshold is a parameter, the
window is reset (and seeded) on revival by the caller, and
L{PhiDetector.crossing} tells the caller when to look again.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs

from stalwart.cluster.phi.history import ArrivalHistory

__all__ = ["phi", "PhiParameters", "PhiDetector"]

#: Beyond this many standard deviations the logistic tail would underflow
#: to 0 (exp(-745) is the smallest double): y is clamped there, which caps
#: phi at about 259.
_Y_MAX = 20.0


def phi(elapsed: float, mean: float, std: float) -> float:
    """
    Phi for a member last heard C{elapsed} seconds ago, whose heartbeats
    come every C{mean} seconds with standard deviation C{std} (> 0).

    Monotonic in C{elapsed}; finite (at most about 259) for any input.
    """
    if std <= 0:
        raise ValueError("std must be positive")
    y = max(-_Y_MAX, min(_Y_MAX, (elapsed - mean) / std))
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if elapsed > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


@attrs.frozen
class PhiParameters:
    """How a L{PhiDetector} turns its window into phi."""

    window_size: int = attrs.field(default=100, validator=attrs.validators.ge(2))
    """Intervals kept per member.  A longer window reacts more slowly to a
    change of pace (a member that gets busy); 100 covers tens of seconds to
    minutes of probing."""

    std_min_seconds: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    """Floor on the standard deviation: perfectly regular heartbeats would
    otherwise make phi jump to infinity a millisecond after the mean."""

    acceptable_pause_seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    """Added to the mean: a pause this long (a garbage collection, a busy
    loop) costs nothing."""

    seed_spread_seconds: Optional[float] = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    """Standard deviation of the two intervals a new window starts with;
    None for Akka's quarter of the expected interval.  A caller that knows
    the interval precisely (its own probe schedule) can start tighter."""


class PhiDetector:
    """
    Phi for one member: the window of its heartbeat inter-arrival times and
    the time of its last heartbeat.
    """

    def __init__(self, parameters: PhiParameters, expected_interval: float, now: float) -> None:
        """
        Start as if a heartbeat arrived at C{now}, with a window seeded with
        C{expected_interval} (L{ArrivalHistory.seeded}).
        """
        self.parameters = parameters
        self.history = ArrivalHistory.seeded(parameters.window_size, expected_interval,
                                             parameters.seed_spread_seconds)
        self.last = now

    def reset(self, expected_interval: float, now: float) -> None:
        """Forget the window (a member that came back): as if new at C{now}."""
        self.history = ArrivalHistory.seeded(self.parameters.window_size, expected_interval,
                                             self.parameters.seed_spread_seconds)
        self.last = now

    def heartbeat(self, now: float) -> None:
        """Record a heartbeat at C{now} (an earlier C{now}, from a clock step, counts as no interval)."""
        self.history.add(now - self.last)
        self.last = max(self.last, now)

    def _mean_std(self, extra_pause: float) -> tuple:
        parameters = self.parameters
        mean = self.history.mean + parameters.acceptable_pause_seconds + extra_pause
        return mean, max(self.history.std, parameters.std_min_seconds)

    def phi(self, now: float, extra_pause: float = 0.0) -> float:
        """
        Phi at C{now}.

        @param extra_pause: seconds added to the acceptable pause, for a
            caller that knows it is itself slow (Lifeguard local health).
        """
        mean, std = self._mean_std(extra_pause)
        return phi(max(0.0, now - self.last), mean, std)

    def crossing(self, threshold: float, extra_pause: float = 0.0) -> Optional[float]:
        """
        The time at which phi reaches C{threshold} if no heartbeat comes,
        or None for a threshold phi never reaches.  Found by bisection, to
        a millisecond.
        """
        mean, std = self._mean_std(extra_pause)
        if phi(_Y_MAX * std + mean, mean, std) < threshold:
            return None
        low, high = 0.0, _Y_MAX * std + mean
        while high - low > 0.0005:
            middle = (low + high) / 2
            if phi(middle, mean, std) >= threshold:
                high = middle
            else:
                low = middle
        return self.last + high
