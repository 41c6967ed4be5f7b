"""Tests for tests."""
