# -*- test-case-name: tests.cluster.raft.test_driver_cluster -*-
"""
Three real L{RaftDriver}s on a simulated network, to check the driver's own
ordering (a leader's AppendEntries leave before its fsync, everything else
after it: thesis 10.2.1) against crashes.  tests/simulation/test_raft.py
checks the core over many more seeds, with a driver of its own that
always writes before it sends; this one runs the real driver.

Each node's log writes run only when the run says so (L{ManualWorker}), so
a crash loses every write still queued, as a power cut loses what was not
fsynced; messages are lost, delayed and reordered.  The state machine
survives a crash, as SQLite does.  After every event: the state machines
agree on every index they have applied (Raft's state machine safety), and
a restarted node never finds its state machine ahead of its own log.  At
the end, with the faults stopped, every acknowledged proposal is applied
on every node.
"""

from __future__ import annotations

import random
from typing import Dict, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import RaftConfig, RaftCore
from stalwart.cluster.raft.driver import RaftDriver
from stalwart.cluster.raft.hardstate import HardStateFile
from stalwart.cluster.raft.log import RaftLog
from stalwart.cluster.raft.messages import ENTRY_NORMAL, decode_entry_payload
from stalwart.cluster.raft.segments.files import SegmentLog
from stalwart.cluster.raft.segments.memfs import MemoryFileSystem
from tests.cluster.raft.test_driver import ManualWorker, synchronous

NAMES = ("n1", "n2", "n3")


class DurableMachine:
    """A state machine that survives crashes, recording what it applied by index."""

    def __init__(self) -> None:
        self.last_applied = 0
        self.applied: Dict[int, bytes] = {}

    def apply(self, entries):
        assert entries[0].index == self.last_applied + 1, (entries[0].index, self.last_applied)
        for entry in entries:
            self.applied[entry.index] = entry.data if entry.kind == ENTRY_NORMAL else b""
        self.last_applied = entries[-1].index
        return [e.data for e in entries]


class Node:
    def __init__(self, name: str, clock: Clock, network: List) -> None:
        self.name = name
        self.fs = MemoryFileSystem()
        self.machine = DurableMachine()
        self._clock = clock
        self._network = network
        self.start()

    def start(self) -> None:
        segments = SegmentLog.open("/raft", fs=self.fs)
        hard_state_file = HardStateFile("/raft/hardstate", fs=self.fs)
        applied = self.machine.last_applied
        assert applied <= segments.last_index, f"{self.name}: state machine at {applied}, log at {segments.last_index}"
        tail = [decode_entry_payload(r.term, r.index, r.payload) for r in segments.read(applied + 1, segments.last_index)]
        def read_stable(lo, hi, bytes_max):
            # What the service gives a leader (RaftService._read_stable), without the byte limit.
            return [decode_entry_payload(r.term, r.index, r.payload) for r in segments.read(lo, hi)]

        log = RaftLog(segments.last_index, segments.term_at, tail, applied, read_stable=read_stable)
        core = RaftCore(RaftConfig(pre_vote=True), self.name, log, hard_state_file.load(), frozenset(NAMES),
                        random.Random(self.name))
        self.log_worker = ManualWorker()
        self.driver = RaftDriver(core, segments, hard_state_file, self.machine, self._clock, self.log_worker,
                                 synchronous, send=self._network.append)
        self.driver.start()

    def crash(self) -> None:
        """A power cut: queued writes are lost, the process and its timers are gone."""
        driver = self.driver
        driver._ticker.stop()
        if driver._pump_call is not None and driver._pump_call.active():
            driver._pump_call.cancel()
        driver._send = lambda message: None
        self.fs.crash()
        self.start()


class DriverClusterTests(SynchronousTestCase):
    def run_seed(self, seed: int) -> int:
        rng = random.Random(seed)
        clock = Clock()
        network: List = []
        nodes = {name: Node(name, clock, network) for name in NAMES}
        acknowledged: List[bytes] = []
        proposals = 0

        def check_agreement() -> None:
            for index in set().union(*(n.machine.applied for n in nodes.values())):
                values = {n.machine.applied[index] for n in nodes.values() if index in n.machine.applied}
                self.assertEqual(len(values), 1, f"seed {seed}: nodes applied different entries at {index}")

        def deliver(faults: bool) -> None:
            message = network.pop(rng.randrange(len(network)) if faults else 0)
            if faults and rng.random() < 0.1:
                return
            nodes[message.recipient].driver.step(message)

        for step in range(3000):
            faults = step < 2400
            roll = rng.random()
            if network and roll < 0.45:
                deliver(faults)
            elif roll < 0.75:
                node = rng.choice(list(nodes.values()))
                if node.log_worker.queue:
                    node.log_worker.run_one()
            elif roll < 0.85:
                clock.advance(0.1 if rng.random() < 0.5 else 0)
            elif roll < 0.97 and faults:
                leaders = [n for n in nodes.values() if n.driver.is_leader]
                if leaders:
                    data = b"%d-%d" % (seed, proposals)
                    proposals += 1
                    d = leaders[0].driver.propose(data)
                    d.addCallbacks(acknowledged.append, lambda failure: None)
            elif faults and rng.random() < 0.3:
                rng.choice(list(nodes.values())).crash()
            check_agreement()

        # Heal: no more faults, until every node has applied everything committed.
        for _ in range(20000):
            if network:
                deliver(False)
            for node in nodes.values():
                node.log_worker.run_all()
            clock.advance(0.1 if not network else 0)
            check_agreement()
            if all(set(acknowledged) <= set(n.machine.applied.values()) for n in nodes.values()):
                break
        for node in nodes.values():
            missing = set(acknowledged) - set(node.machine.applied.values())
            self.assertEqual(missing, set(), f"seed {seed}: {node.name} lacks acknowledged entries")
        return len(acknowledged)

    def test_acknowledged_writes_survive_crashes(self) -> None:
        """
        Raft 5.4 with the driver's pipelining: over random runs with crashes,
        lost and reordered messages, the nodes never apply different entries
        at one index, never apply past their own durable log, and every
        acknowledged proposal ends up applied everywhere.
        """
        total = sum(self.run_seed(seed) for seed in range(12))
        self.assertGreater(total, 300, "the runs should acknowledge proposals")
