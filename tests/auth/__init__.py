"""Tests for tests/auth."""
