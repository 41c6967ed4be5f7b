"""Tests for tests/store."""
