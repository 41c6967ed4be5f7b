"""Tests for tests/service."""
