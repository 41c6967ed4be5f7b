# -*- test-case-name: tests.cluster.swim.test_broadcasts -*-
"""
The queue of updates waiting to be piggybacked (SWIM section 4.1,
"infection-style dissemination"; memberlist's TransmitLimitedQueue).

Each update is sent a bounded number of times, the limit growing with
log(members) so that the epidemic still reaches everyone.  Only the newest
update about each member is kept: news about a member replaces older news.
Packing takes the least-sent, then newest, updates first, so that fresh
news spreads fastest and a full packet never starves it.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from stalwart.cluster.swim.messages import Update

__all__ = ["Broadcasts"]


class Broadcasts:
    """Updates with how many times each was sent."""

    def __init__(self) -> None:
        #: node id -> [update, times sent, order of arrival]
        self._items: Dict[str, list] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, update: Update) -> None:
        """Queue C{update}, replacing any queued update about the same member."""
        self._counter += 1
        self._items[update.node_id] = [update, 0, self._counter]

    def get(self, node_id: str) -> Optional[Update]:
        item = self._items.get(node_id)
        return None if item is None else item[0]

    def take(self, budget: int, count_max: int, limit: int, size: Callable[[Update], int],
             skip: Tuple[str, ...] = ()) -> Tuple[List[Update], int]:
        """
        Updates to piggyback on one packet: the least-sent and newest first,
        as many as fit in C{budget} bytes and C{count_max} updates.  Each
        taken update counts one more sending, and is dropped once sent
        C{limit} times.

        @param skip: node ids whose news is already in the packet.
        @return: the updates and the bytes they take.
        """
        chosen: List[Update] = []
        used = 0
        for node_id, item in sorted(self._items.items(), key=lambda kv: (kv[1][1], -kv[1][2])):
            if len(chosen) >= count_max or budget - used < 3:
                break
            if node_id in skip:
                continue
            cost = size(item[0])
            if used + cost > budget:
                continue
            chosen.append(item[0])
            used += cost
            item[1] += 1
            if item[1] >= limit:
                del self._items[node_id]
        return chosen, used
