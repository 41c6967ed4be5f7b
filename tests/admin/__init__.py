"""Tests for tests/admin."""
