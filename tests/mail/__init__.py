"""Tests for stalwart.mail."""
