"""Tests for tests/jmap."""
