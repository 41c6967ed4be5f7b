"""Tests of the SWIM gossip cores and shell."""
