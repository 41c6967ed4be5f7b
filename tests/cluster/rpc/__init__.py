"""Tests for stalwart.cluster.rpc."""
