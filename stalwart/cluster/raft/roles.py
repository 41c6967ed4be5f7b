# -*- test-case-name: tests.cluster.raft.test_election -*-
"""The roles of a Raft server (Raft 5.1, with the pre-candidate of thesis 9.6)."""

__all__ = ["FOLLOWER", "PRE_CANDIDATE", "CANDIDATE", "LEADER"]

FOLLOWER = "follower"
PRE_CANDIDATE = "pre-candidate"
CANDIDATE = "candidate"
LEADER = "leader"
