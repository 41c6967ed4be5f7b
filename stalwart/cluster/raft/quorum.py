# -*- test-case-name: tests.cluster.raft.test_quorum -*-
"""
Majority arithmetic for Raft (sections 5.2 and 5.3).

A majority of n voters is n // 2 + 1, for even n as well: with four voters
it takes three (the reference implementation's n / 2 was one short).
"""

from __future__ import annotations

from typing import Collection, Mapping, Optional

__all__ = ["majority", "quorum_index", "vote_result"]


def majority(voters: int) -> int:
    assert voters >= 1
    return voters // 2 + 1


def quorum_index(voters: Collection[str], match: Mapping[str, int]) -> int:
    """
    The highest index stored on a majority of C{voters}; a voter missing
    from C{match} counts as 0.
    """
    indexes = sorted((match.get(v, 0) for v in voters), reverse=True)
    return indexes[majority(len(indexes)) - 1]


def vote_result(voters: Collection[str], votes: Mapping[str, bool]) -> Optional[bool]:
    """True once a majority granted, False once a majority is out of reach, else None."""
    need = majority(len(voters))
    granted = sum(1 for v in voters if votes.get(v) is True)
    denied = sum(1 for v in voters if votes.get(v) is False)
    if granted >= need:
        return True
    if denied > len(voters) - need:
        return False
    return None
