# -*- test-case-name: tests.cluster.swim.test_suspicion -*-
"""
Suspicion timeouts that shrink with independent confirmations (Lifeguard,
Dadgar et al. 2018, section 4.2, "dynamic suspicion timeout"; memberlist's
suspicion.go).

A suspicion starts with the longest timeout; every member that confirms
it independently brings the deadline closer, on a log scale, down to the
shortest timeout once C{expected} confirmations arrived::

    timeout(c) = max(shortest, longest - (longest - shortest) * log(c + 1) / log(k + 1))

with C{c} confirmations and C{k} expected (no confirmation expected: the
shortest at once).  Timeouts are kept to the millisecond.  One accuser
proves little (its own links may be bad); several agreeing make it very
likely that the member is dead.
"""

from __future__ import annotations

import math
from typing import Iterable, Set

__all__ = ["suspicion_timeout", "Suspicion"]


def suspicion_timeout(confirmations: int, expected: int, shortest: float, longest: float) -> float:
    """The suspicion timeout in seconds after C{confirmations} of C{expected} confirmations."""
    if confirmations < 0 or expected < 0 or not 0 <= shortest <= longest:
        raise ValueError("bad suspicion timeout arguments")
    if expected < 1:
        return shortest
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    timeout = math.floor((longest - fraction * (longest - shortest)) * 1000) / 1000
    return max(shortest, timeout)


class Suspicion:
    """
    One suspicion of one member at one incarnation.

    @ivar accusers: node ids that accused it; the first is not a
        confirmation, each other one is.
    """

    def __init__(self, incarnation: int, start: float, accuser: str, shortest: float, longest: float,
                 expected: int, confirmers: Iterable[str] = ()) -> None:
        self.incarnation = incarnation
        self.start = start
        self.shortest = shortest
        self.longest = longest
        self.expected = expected
        self.accuser = accuser
        self.accusers: Set[str] = {accuser}
        for confirmer in confirmers:
            self.confirm(confirmer)

    @property
    def confirmations(self) -> int:
        return len(self.accusers) - 1

    def confirm(self, accuser: str) -> bool:
        """Count C{accuser}; True if it is a new confirmation (worth passing on)."""
        if accuser in self.accusers:
            return False
        self.accusers.add(accuser)
        return True

    @property
    def deadline(self) -> float:
        """When the member is declared dead if nobody refutes first."""
        return self.start + suspicion_timeout(min(self.confirmations, self.expected), self.expected,
                                              self.shortest, self.longest)
