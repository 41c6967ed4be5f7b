"""Tests for tests/cluster/raft/segments."""
