# -*- test-case-name: tests.cluster.raft.test_driver -*-
"""
Tests for L{stalwart.cluster.raft.driver}: proposals become durable
before they are answered, share fsyncs, and survive crashes exactly once.
"""

from __future__ import annotations

import random
from typing import List

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import RaftConfig, RaftCore
from stalwart.cluster.raft.driver import RaftDriver, Stopping, StorageFailed
from stalwart.cluster.raft.hardstate import HardStateFile
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import (
    ENTRY_NOOP,
    ENTRY_NORMAL,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    RequestVote,
    RequestVoteResponse,
    decode_entry_payload,
)
from stalwart.cluster.raft.segments.files import SegmentLog
from stalwart.cluster.raft.segments.memfs import MemoryFileSystem


class ManualWorker:
    """A worker thread that runs queued calls only when the test says so."""

    def __init__(self) -> None:
        self.queue: List = []

    def __call__(self, f, *args) -> Deferred:
        d = Deferred()
        self.queue.append((f, args, d))
        return d

    def run_one(self) -> None:
        f, args, d = self.queue.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)

    def run_all(self) -> None:
        while self.queue:
            self.run_one()


def synchronous(f, *args) -> Deferred:
    return maybeDeferred(f, *args)


class CountingStateMachine:
    """Applies entries by recording them; the result of an entry is its data reversed."""

    def __init__(self, applied: int = 0) -> None:
        self.last_applied = applied
        self.entries = []

    def apply(self, entries):
        assert entries[0].index == self.last_applied + 1
        self.last_applied = entries[-1].index
        self.entries.extend(e for e in entries if e.kind != ENTRY_NOOP)
        return [e.data[::-1] for e in entries]


class CountingLog:
    """Wraps a SegmentLog to count fsyncs."""

    def __init__(self, segments: SegmentLog) -> None:
        self._segments = segments
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1
        self._segments.sync()

    def __getattr__(self, name):
        return getattr(self._segments, name)


def open_driver(fs, state_machine, log_worker=synchronous, apply_worker=synchronous):
    segments = CountingLog(SegmentLog.open("/raft", fs=fs))
    hard_state_file = HardStateFile("/raft/hardstate", fs=fs)
    applied = state_machine.last_applied
    tail = [decode_entry_payload(r.term, r.index, r.payload) for r in segments.read(applied + 1, segments.last_index)] if segments.last_index > applied else []
    log = RaftLog(segments.last_index, segments.term_at, tail, applied)
    core = RaftCore(RaftConfig(), "n1", log, hard_state_file.load(), frozenset({"n1"}), random.Random(0))
    clock = Clock()
    driver = RaftDriver(core, segments, hard_state_file, state_machine, clock, log_worker, apply_worker)
    driver.start()
    return driver, segments, clock


class DriverTests(SynchronousTestCase):
    def test_answer_after_apply(self) -> None:
        """A proposal fires with the state machine's result for its entry."""
        machine = CountingStateMachine()
        driver, _, _ = open_driver(MemoryFileSystem(), machine)
        self.assertEqual(self.successResultOf(driver.propose(b"abc")), b"cba")
        self.assertEqual([e.data for e in machine.entries], [b"abc"])

    def test_not_answered_before_durable(self) -> None:
        """Nothing is acknowledged while its fsync has not completed."""
        log_worker = ManualWorker()
        driver, segments, _ = open_driver(MemoryFileSystem(), CountingStateMachine(), log_worker=log_worker)
        log_worker.run_all()  # the no-op of the first term
        d = driver.propose(b"x")
        self.assertNoResult(d)
        self.assertEqual(len(log_worker.queue), 1)
        log_worker.run_all()
        self.assertEqual(self.successResultOf(d), b"x")

    def test_group_commit(self) -> None:
        """Proposals made while one fsync runs share the next one."""
        log_worker = ManualWorker()
        driver, segments, _ = open_driver(MemoryFileSystem(), CountingStateMachine(), log_worker=log_worker)
        log_worker.run_all()
        first = driver.propose(b"first")
        rest = [driver.propose(b"%d" % i) for i in range(50)]
        before = segments.syncs
        log_worker.run_all()
        self.assertEqual(segments.syncs - before, 2)
        self.assertEqual(self.successResultOf(first), b"tsrif")
        self.assertEqual([self.successResultOf(d) for d in rest], [(b"%d" % i)[::-1] for i in range(50)])

    def test_storage_failure_stops_writes(self) -> None:
        """A failed log write fails every waiting proposal and refuses later ones."""
        log_worker = ManualWorker()
        driver, segments, _ = open_driver(MemoryFileSystem(), CountingStateMachine(), log_worker=log_worker)
        log_worker.run_all()
        d = driver.propose(b"x")

        def broken():
            raise OSError(5, "Input/output error")

        segments.sync = broken
        log_worker.run_all()
        self.failureResultOf(d, StorageFailed)
        self.failureResultOf(driver.propose(b"y"), StorageFailed)
        self.assertFalse(driver.is_leader)

    def test_apply_failure_stops_writes(self) -> None:
        """A state machine that cannot write (disk full) fails the proposal and refuses later ones."""

        class Broken(CountingStateMachine):
            def apply(self, entries):
                if any(e.data for e in entries):
                    raise OSError(28, "No space left on device")
                return super().apply(entries)

        driver, _, clock = open_driver(MemoryFileSystem(), Broken())
        self.failureResultOf(driver.propose(b"x"), StorageFailed)
        self.failureResultOf(driver.propose(b"y"), StorageFailed)
        self.successResultOf(driver.stop())

    def test_readies_queued_share_one_fsync(self) -> None:
        """Every Ready queued while the log thread is busy is written with a single fsync."""
        log_worker = ManualWorker()
        driver, segments, clock = open_driver(MemoryFileSystem(), CountingStateMachine(), log_worker=log_worker)
        log_worker.run_all()
        results = [driver.propose(b"a")]
        for i in range(5):
            results.append(driver.propose(b"%d" % i))
            clock.advance(0)  # one Ready per reactor turn
        before = segments.syncs
        log_worker.run_all()
        self.assertEqual(segments.syncs - before, 1)
        self.assertEqual(len([self.successResultOf(d) for d in results]), 6)

    def test_stop_waits_for_write(self) -> None:
        """Stopping waits for the write in progress; proposals after that are refused."""
        log_worker = ManualWorker()
        driver, _, clock = open_driver(MemoryFileSystem(), CountingStateMachine(), log_worker=log_worker)
        log_worker.run_all()
        d = driver.propose(b"x")
        stopped = driver.stop()
        self.assertNoResult(stopped)
        self.failureResultOf(driver.propose(b"y"), Stopping)
        log_worker.run_all()
        clock.advance(0)
        self.successResultOf(stopped)
        self.assertEqual(self.successResultOf(d), b"x")

    def test_read_barrier(self) -> None:
        """A read barrier fires once everything committed so far is applied."""
        apply_worker = ManualWorker()
        driver, _, _ = open_driver(MemoryFileSystem(), CountingStateMachine(), apply_worker=apply_worker)
        barrier = driver.read_barrier()  # the new term's no-op is not applied yet
        self.assertNoResult(barrier)
        apply_worker.run_all()
        self.assertEqual(self.successResultOf(barrier), 1)
        driver.propose(b"x")
        barrier = driver.read_barrier()
        self.assertNoResult(barrier)
        apply_worker.run_all()
        self.assertEqual(self.successResultOf(barrier), 2)

    def test_crash_keeps_acknowledged_once(self) -> None:
        """
        After a crash that loses every unsynced byte, every acknowledged
        proposal is in the log and applied exactly once after restart.
        """
        fs = MemoryFileSystem()
        rng = random.Random(3)
        total = 0
        for round_ in range(20):
            log_worker = ManualWorker()
            machine = CountingStateMachine()
            driver, _, _ = open_driver(fs, machine, log_worker=log_worker)
            acknowledged = []
            for i in range(rng.randint(1, 40)):
                d = driver.propose(b"r%d-%d" % (round_, i))
                d.addCallback(lambda result: acknowledged.append(result[::-1]))
                if rng.random() < 0.3 and log_worker.queue:
                    log_worker.run_one()
            fs.crash(torn_bytes=rng.randint(0, 30))
            machine = CountingStateMachine()
            open_driver(fs, machine)
            data = [e.data for e in machine.entries]
            for value in acknowledged:
                self.assertIn(value, data)
            self.assertEqual(len(data), len(set(data)), "an entry was applied twice")
            total += len(acknowledged)
        self.assertGreater(total, 20, "the test should acknowledge writes before crashing")


def open_member(fs, state_machine, log_worker, sent, name="n1", voters=("n1", "n2", "n3")):
    """A driver for C{name}, one of C{voters}, whose messages go to C{sent}."""
    segments = CountingLog(SegmentLog.open("/raft", fs=fs))
    hard_state_file = HardStateFile("/raft/hardstate", fs=fs)
    log = RaftLog(segments.last_index, segments.term_at, [], 0)
    core = RaftCore(RaftConfig(), name, log, hard_state_file.load(), frozenset(voters), random.Random(0))
    driver = RaftDriver(core, segments, hard_state_file, state_machine, Clock(), log_worker, synchronous,
                        send=sent.append)
    driver.start()
    return driver, segments


class PipelinedSendTests(SynchronousTestCase):
    """
    Thesis 10.2.1: a leader sends AppendEntries while it writes the same
    entries; every message that promises something about this node's disk
    (a vote, an acknowledgement) still waits for the fsync.
    """

    def elect(self, log_worker, sent):
        """n1 of three voters campaigns, writes its vote, and wins with n2's."""
        driver, segments = open_member(MemoryFileSystem(), CountingStateMachine(), log_worker, sent)
        driver.core.campaign()
        driver._pump_soon()
        self.assertEqual(sent, [], "RequestVote leaves only once the vote is durable (Raft 5.2)")
        log_worker.run_all()
        self.assertEqual({type(m) for m in sent}, {RequestVote})
        del sent[:]
        driver.step(RequestVoteResponse(term=1, sender="n2", recipient="n1", granted=True, pre_vote=False))
        self.assertTrue(driver.is_leader)
        return driver, segments

    def appends(self, sent, peer):
        return [m for m in sent if isinstance(m, AppendEntries) and m.recipient == peer]

    def test_append_entries_leave_before_fsync(self) -> None:
        """The new leader's no-op, then a proposal, go to both followers before its own fsync runs."""
        log_worker, sent = ManualWorker(), []
        driver, segments = self.elect(log_worker, sent)
        for peer in ("n2", "n3"):
            self.assertEqual([e.kind for m in self.appends(sent, peer) for e in m.entries], [ENTRY_NOOP])
        self.assertTrue(log_worker.queue, "the no-op is not written yet")
        log_worker.run_all()
        for peer in ("n2", "n3"):
            driver.step(AppendEntriesResponse(term=1, sender=peer, recipient="n1", success=True, match_index=1))
        del sent[:]
        syncs = segments.syncs
        d = driver.propose(b"x")
        self.assertEqual(segments.syncs, syncs)
        self.assertTrue(log_worker.queue, "the proposal is not written yet")
        for peer in ("n2", "n3"):
            self.assertEqual([e.data for m in self.appends(sent, peer) for e in m.entries], [b"x"])
        self.assertNoResult(d)
        log_worker.run_all()
        for peer in ("n2", "n3"):
            driver.step(AppendEntriesResponse(term=1, sender=peer, recipient="n1", success=True, match_index=2))
        self.assertEqual(self.successResultOf(d), b"x")

    def test_committed_by_followers_applied_once_durable_here(self) -> None:
        """
        Raft 5.3: both followers' copies commit an entry the leader has not
        written yet; it is applied (and answered) only once it is durable
        on the leader too, so the state machine never runs ahead of the log.
        """
        log_worker, sent = ManualWorker(), []
        driver, _ = self.elect(log_worker, sent)
        for peer in ("n2", "n3"):
            driver.step(AppendEntriesResponse(term=1, sender=peer, recipient="n1", success=True, match_index=1))
        self.assertEqual(driver.core.log.committed, 1)
        self.assertEqual(driver.applied, 0)
        log_worker.run_all()
        self.assertEqual(driver.applied, 1)

    def test_append_entries_wait_for_pending_hard_state(self) -> None:
        """
        AppendEntries of a term wait while a Ready that changes the hard
        state (the vote that term began with) is still being written, and
        leave after it, in order.
        """
        log_worker, sent = ManualWorker(), []
        driver, _ = open_member(MemoryFileSystem(), CountingStateMachine(), log_worker, sent)
        driver.core.campaign()
        driver._pump_soon()
        # A vote that overtakes our own write (a test can do what a network cannot).
        driver.step(RequestVoteResponse(term=1, sender="n2", recipient="n1", granted=True, pre_vote=False))
        driver._clock.advance(0)  # the end of the reactor turn: the leader's Ready is taken
        self.assertTrue(driver.is_leader)
        self.assertEqual(len(log_worker.queue), 1, "the vote's write is still running")
        self.assertEqual(sent, [])
        log_worker.run_all()
        kinds = [type(m) for m in sent]
        self.assertEqual(set(kinds[:2]), {RequestVote})
        self.assertEqual(set(kinds[2:]), {AppendEntries})
        self.assertEqual(len(kinds), 4)

    def test_follower_acknowledges_after_fsync(self) -> None:
        """A follower's AppendEntriesResponse leaves only once the entries it acknowledges are durable."""
        log_worker, sent = ManualWorker(), []
        driver, segments = open_member(MemoryFileSystem(), CountingStateMachine(), log_worker, sent, name="n2")
        entry = Entry(term=1, index=1, data=b"x", kind=ENTRY_NORMAL)
        driver.step(AppendEntries(term=1, sender="n1", recipient="n2", prev_index=0, prev_term=0,
                                  entries=(entry,), commit=0))
        self.assertEqual(sent, [])
        log_worker.run_all()
        [response] = sent
        self.assertIsInstance(response, AppendEntriesResponse)
        self.assertEqual((response.success, response.match_index), (True, 1))
        self.assertEqual(segments.last_index, 1)

    def test_vote_after_fsync(self) -> None:
        """A granted vote leaves only once the vote is durable (Raft 5.2, figure 2)."""
        log_worker, sent = ManualWorker(), []
        driver, _ = open_member(MemoryFileSystem(), CountingStateMachine(), log_worker, sent, name="n2")
        driver.step(RequestVote(term=1, sender="n1", recipient="n2", last_log_index=0, last_log_term=0,
                                pre_vote=False, transfer=False))
        self.assertEqual(sent, [])
        log_worker.run_all()
        [response] = sent
        self.assertTrue(response.granted)
        self.assertEqual(driver._hard_state_file.load().vote, "n1")


class ClusterHooksTests(SynchronousTestCase):
    """What the cluster service uses: indexed proposals, founding, membership changes, reads without a leader."""

    def open_fresh(self):
        fs = MemoryFileSystem()
        segments = SegmentLog.open("/raft", fs=fs)
        hard_state_file = HardStateFile("/raft/hardstate", fs=fs)
        core = RaftCore(RaftConfig(), "n1", RaftLog(0, segments.term_at), hard_state_file.load(), frozenset(),
                        random.Random(0))
        driver = RaftDriver(core, segments, hard_state_file, CountingStateMachine(), Clock(), synchronous, synchronous)
        driver.start()
        return driver

    def test_propose_entry_gives_term_and_index(self) -> None:
        driver, _, _ = open_driver(MemoryFileSystem(), CountingStateMachine())
        self.assertEqual(self.successResultOf(driver.propose_entry(b"abc")), (1, 2, b"cba"))

    def test_fresh_node_neither_leads_nor_reads_until_founded(self) -> None:
        """A node with no configuration waits: no election, and reads fail with NotLeader until it founds."""
        from stalwart.cluster.raft.core import NotLeader

        driver = self.open_fresh()
        self.assertFalse(driver.is_leader)
        self.failureResultOf(driver.read_barrier(), NotLeader)
        self.failureResultOf(driver.propose(b"x"), NotLeader)
        driver.bootstrap()
        self.assertTrue(driver.is_leader)
        self.assertEqual(self.successResultOf(driver.propose_entry(b"x")), (2, 3, b"x"))
        self.assertEqual(driver.core.voters, {"n1"})

    def test_change_configuration(self) -> None:
        driver = self.open_fresh()
        driver.bootstrap()
        entry = driver.change_configuration(add_learner="n2")
        self.assertEqual(driver.core.learners, {"n2"})
        self.assertEqual(self.successResultOf(driver.wait_applied(entry.index)), entry.index)
