# -*- test-case-name: tests.cluster.raft.test_replication -*-
"""
Tests for replication flow control: L{stalwart.cluster.raft.progress} and
how the core uses it (pipelining, probe after rejection, batch limits;
Raft 5.3 and thesis 10.2.2), the configuration entry encoding and reading
old entries back from stable storage.
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import RaftConfig
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import (
    AppendEntries,
    Configuration,
    Entry,
    decode_configuration,
    encode_configuration,
)
from stalwart.cluster.raft.progress import PROBE, REPLICATE, Progress
from tests.cluster.raft.test_core import Cluster, MemoryStorage


def appends_to(cluster: Cluster, recipient: str):
    return [m for m in cluster.sent if isinstance(m, AppendEntries) and m.recipient == recipient]


class ProgressTests(SynchronousTestCase):
    def test_probe_sends_one_at_a_time(self) -> None:
        """In probe state one append is outstanding until an answer (Raft 5.3)."""
        progress = Progress(next=5)
        self.assertFalse(progress.paused(8))
        progress.sent(7)
        self.assertTrue(progress.paused(8))
        self.assertEqual(progress.next, 5)

    def test_success_switches_to_replicate(self) -> None:
        """A successful probe switches to replicate, streaming from match + 1 (thesis 10.2.2)."""
        progress = Progress(next=5)
        progress.sent(7)
        self.assertTrue(progress.acknowledged(7))
        self.assertEqual((progress.state, progress.next, progress.match), (REPLICATE, 8, 7))

    def test_inflight_window(self) -> None:
        """In replicate state at most inflight_max appends are unanswered; answers free the window (thesis 10.2.2)."""
        progress = Progress(match=4, next=5, state=REPLICATE)
        for last in (5, 6, 7):
            self.assertFalse(progress.paused(3))
            progress.sent(last)
        self.assertTrue(progress.paused(3))
        self.assertEqual(progress.next, 8)
        progress.acknowledged(6)
        self.assertEqual(list(progress.inflight), [7])
        self.assertFalse(progress.paused(3))

    def test_rejection_in_replicate_goes_to_probe(self) -> None:
        """A rejection while streaming means a loss: probe again from the hint (Raft 5.3)."""
        progress = Progress(match=4, next=5, state=REPLICATE)
        progress.sent(6)
        progress.sent(8)
        self.assertTrue(progress.rejected(6, hint=6))
        self.assertEqual((progress.state, progress.next, list(progress.inflight)), (PROBE, 6, []))

    def test_stale_rejections_ignored(self) -> None:
        """Rejections of appends since superseded change nothing (reordered network)."""
        progress = Progress(match=4, next=5, state=REPLICATE)
        self.assertFalse(progress.rejected(3, hint=2))
        self.assertEqual((progress.state, progress.next), (REPLICATE, 5))
        probe = Progress(match=2, next=9)
        probe.sent(9)
        self.assertFalse(probe.rejected(5, hint=3))
        self.assertTrue(probe.rejected(8, hint=3))
        self.assertEqual(probe.next, 3)

    def test_back_off_never_below_match(self) -> None:
        """next never drops to or below a known match, whatever the hint."""
        rng = random.Random(3)
        for _ in range(500):
            match = rng.randint(0, 10)
            progress = Progress(match=match, next=match + rng.randint(1, 10),
                                state=rng.choice([PROBE, REPLICATE]))
            progress.rejected(progress.next - 1, hint=rng.randint(0, 20))
            self.assertGreater(progress.next, progress.match)


class PipelineTests(SynchronousTestCase):
    def test_inflight_bounded_for_silent_follower(self) -> None:
        """
        A follower that never answers gets at most inflight_appends_max
        appends with entries beyond the first probe (thesis 10.2.2).
        """
        cluster = Cluster(["a", "b", "c"], config=RaftConfig(inflight_appends_max=3))
        leader = cluster.elect("a")
        cluster.drop.add(("c", "a"))
        for i in range(10):
            leader.propose(b"%d" % i)
            cluster.run()
        with_entries = [m for m in appends_to(cluster, "c") if m.entries]
        self.assertEqual(len(with_entries), 3 + 1)  # the election's no-op, then the window
        self.assertEqual(len(cluster.data("a")), 10)

    def test_pipelined_appends_without_waiting(self) -> None:
        """In replicate state appends go out before earlier ones are answered (thesis 10.2.2)."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.cut.update({"b", "c"})
        for i in range(3):
            leader.propose(b"%d" % i)
            cluster.run()
        self.assertEqual(len([m for m in appends_to(cluster, "b") if m.entries]), 4)

    def test_proposals_coalesce_into_one_append(self) -> None:
        """Proposals made before the next Ready go to each follower in one AppendEntries."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.sent.clear()
        for i in range(5):
            leader.propose(b"%d" % i)
        cluster.run()
        first = appends_to(cluster, "b")[0]
        self.assertEqual([e.data for e in first.entries], [b"%d" % i for i in range(5)])

    def test_batch_bytes_bounded(self) -> None:
        """An AppendEntries carries at most append_batch_bytes_max of entries, or one entry (Raft 5.3)."""
        cluster = Cluster(["a", "b", "c"], config=RaftConfig(append_batch_bytes_max=300))
        leader = cluster.elect("a")
        cluster.cut.add("c")
        for i in range(10):
            leader.propose(bytes(100))
            cluster.run()
        cluster.cut.clear()
        cluster.sent.clear()
        cluster.tick(3, only={"a"})
        batches = [m for m in appends_to(cluster, "c") if m.entries]
        self.assertTrue(batches)
        self.assertTrue(all(sum(e.size() for e in m.entries) <= 300 for m in batches))
        self.assertEqual(len(cluster.data("c")), 10)

    def test_lost_append_recovered_by_heartbeat(self) -> None:
        """
        An append lost while streaming is detected by the next heartbeat
        (refused at next - 1), and the follower is caught up (Raft 5.3).
        """
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        cluster.tick(1)
        cluster.drop.add(("a", "c"))
        leader.propose(b"lost")
        cluster.run()
        cluster.drop.clear()
        self.assertEqual(cluster.data("c"), [])
        cluster.tick(2, only={"a"})
        self.assertEqual(cluster.data("c"), [b"lost"])

    def test_new_member_reads_old_entries(self) -> None:
        """A learner joining late gets entries the leader no longer holds in memory, read back from its log."""
        cluster = Cluster(["a", "b", "c"])
        leader = cluster.elect("a")
        for i in range(5):
            leader.propose(b"%d" % i)
            cluster.run()
        cluster.tick(1)
        self.assertGreater(leader.log._mem_first, 1, "applied entries were released from memory")
        cluster.add("d")
        leader.propose_config_change(add_learner="d")
        cluster.run()
        cluster.tick(3, only={"a"})
        self.assertEqual(cluster.data("d"), [b"%d" % i for i in range(5)])


class StableReadTests(SynchronousTestCase):
    def test_entries_span_disk_and_memory(self) -> None:
        """RaftLog.entries reads what is no longer in memory through read_stable, within the byte limit."""
        storage = MemoryStorage()
        storage.entries = [Entry(term=1, index=i, data=b"x") for i in range(1, 7)]
        log = RaftLog(6, storage.term_at, storage.entries[3:], applied=3, read_stable=storage.read)
        self.assertEqual([e.index for e in log.entries(2, 6, 10**6)], [2, 3, 4, 5, 6])
        self.assertEqual([e.index for e in log.entries(2, 6, 50)], [2, 3])
        self.assertIsNone(RaftLog(6, storage.term_at, storage.entries[3:], applied=3).entries(2, 6, 100))


class ConfigurationEncodingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """A configuration survives encoding, ids of any script included."""
        config = Configuration(voters={"n1", "nœud-2"}, learners={"replica"})
        self.assertEqual(decode_configuration(encode_configuration(config)), config)
        self.assertEqual(decode_configuration(encode_configuration(Configuration())), Configuration())

    def test_deterministic_and_versioned(self) -> None:
        """Equal configurations encode to equal bytes, starting with version 1 (STYLE 3)."""
        one = encode_configuration(Configuration(voters=["b", "a", "c"]))
        two = encode_configuration(Configuration(voters=["c", "a", "b"]))
        self.assertEqual(one, two)
        self.assertEqual(one, b"\x01\x00\x03\x00\x01a\x00\x01b\x00\x01c\x00\x00")

    def test_malformed_rejected(self) -> None:
        """Truncations, trailing bytes, unknown versions and unsorted ids raise ValueError."""
        good = encode_configuration(Configuration(voters={"a", "b"}, learners={"c"}))
        for cut in range(len(good)):
            self.assertRaises(ValueError, decode_configuration, good[:cut])
        self.assertRaises(ValueError, decode_configuration, good + b"\x00")
        self.assertRaises(ValueError, decode_configuration, b"\x02" + good[1:])
        self.assertRaises(ValueError, decode_configuration, b"\x01\x00\x02\x00\x01b\x00\x01a\x00\x00")

    def test_voters_and_learners_disjoint(self) -> None:
        """A node cannot be both voter and learner."""
        self.assertRaises(ValueError, Configuration, voters={"a"}, learners={"a"})
