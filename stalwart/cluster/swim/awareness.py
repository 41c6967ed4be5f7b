# -*- test-case-name: tests.cluster.swim.test_awareness -*-
"""
Local health (Lifeguard, Dadgar et al. 2018, section 4.3, "local health
multiplier"; memberlist's awareness.go).

A node that cannot get answers is more likely broken itself than all its
peers at once.  So it keeps a score in [0, maximum - 1]: up by one for
each expected nack that did not come back from a failed probe (or by one
for a failed probe with no relays), up by one when it has to refute a
suspicion about itself, up by one when its timers fire late (a slow event
loop), down by one for each probe answered in time.  Its timeouts are
multiplied by score + 1, so a node in trouble slows down and waits longer
instead of accusing healthy members.
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """The local health score; 0 is healthy."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self.score = 0

    def apply(self, delta: int) -> int:
        """Move the score by C{delta}, clamped to [0, maximum - 1]; return the new score."""
        self.score = max(0, min(self.maximum - 1, self.score + delta))
        return self.score

    def scale(self, seconds: float) -> float:
        """C{seconds} stretched by the current health: C{seconds * (score + 1)}."""
        return seconds * (self.score + 1)
