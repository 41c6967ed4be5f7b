"""Tests for tests/integration."""
