# -*- test-case-name: tests.cluster.swim.test_probe -*-
"""
Probing (SWIM section 3.1 and 4.3): the round-robin order of targets, and
the state of one probe and of one relayed probe.

One probe of member M, started at t with interval I and ping timeout T
(both already scaled by local health)::

    t          ping(seq) -> M
    t + T      no ack: ping-req(seq) -> k others, and ping(seq) -> M again
    t + I      no ack from anyone: the probe failed; the nacks (Lifeguard)
               say whether the others could reach us at all

Round robin (SWIM section 4.3) bounds the time until every member is
probed, and keeps the acks of each member regularly spaced, which is what
the phi detector measures.  A new member goes in at a random place.
"""

from __future__ import annotations

import random
from typing import List, Optional, Set, Tuple

import attrs

__all__ = ["RoundRobin", "Probe", "Relay"]


class RoundRobin:
    """The order in which members are probed."""

    def __init__(self) -> None:
        self._order: List[str] = []
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._order

    def add(self, node_id: str, rng: random.Random) -> None:
        """Insert C{node_id} at a random place (after the cursor's past, so it is probed this round or next)."""
        assert node_id not in self._order, node_id
        at = rng.randint(0, len(self._order))
        self._order.insert(at, node_id)
        if at < self._cursor:
            self._cursor += 1

    def remove(self, node_id: str) -> None:
        at = self._order.index(node_id)
        del self._order[at]
        if at < self._cursor:
            self._cursor -= 1

    def next(self, eligible) -> Optional[str]:
        """The next node id for which C{eligible(node_id)} is true, or None."""
        for _ in range(len(self._order)):
            if self._cursor >= len(self._order):
                self._cursor = 0
            node_id = self._order[self._cursor]
            self._cursor += 1
            if eligible(node_id):
                return node_id
        return None


@attrs.define
class Probe:
    """One probe of C{target} (a node id) at C{address}."""

    seq: int
    target: str
    address: Tuple[str, int]
    started: float
    indirect_at: float
    deadline: float
    acked: bool = False
    indirect_sent: bool = False
    relays: Tuple[str, ...] = ()
    nacks: Set[str] = attrs.Factory(set)


@attrs.define
class Relay:
    """A ping sent for another member's C{PingReq}: answer it by C{deadline}."""

    requester: Tuple[str, int]
    requester_seq: int
    target: str
    deadline: float
