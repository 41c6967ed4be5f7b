"""Tests for L{stalwart.service.maker} and the services it builds."""

from twisted.trial.unittest import SynchronousTestCase


class RaftConfigTests(SynchronousTestCase):
    def test_from_keys(self) -> None:
        """raft-election-timeout becomes ticks of the driver's tick (at least two); raft-batch-max the batch limit."""
        from stalwart.service.raft import raft_config

        self.assertEqual(raft_config(1000, 1234).election_ticks, 10)
        self.assertEqual(raft_config(1000, 1234).append_batch_bytes_max, 1234)
        self.assertEqual(raft_config(250, 1).election_ticks, 2)
        self.assertEqual(raft_config(5000, 1).election_ticks, 50)
