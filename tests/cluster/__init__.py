"""Tests for tests/cluster."""
