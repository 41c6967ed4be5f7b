"""Tests for tests/cluster/raft."""
