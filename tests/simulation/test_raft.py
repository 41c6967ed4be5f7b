"""
A small deterministic simulation of the Raft core: several nodes on a
lossy, reordering network driven by one seeded random generator, with
crashes that lose everything not yet persisted.  After every step it
checks election safety and state machine safety (Raft figure 3).

A failure names its seed; STALWART_SIM_SEEDS=N runs more seeds.
"""

from __future__ import annotations

import os
import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import LEADER, NotLeader
from tests.cluster.raft.test_core import MemoryStorage, make_core


class Simulation:
    def __init__(self, seed: int, size: int = 3) -> None:
        self.rng = random.Random(seed)
        self.names = [f"n{i}" for i in range(size)]
        self.storage = {n: MemoryStorage() for n in self.names}
        self.applied = {n: [] for n in self.names}
        self.nodes = {n: make_core(n, self.names, self.storage[n], seed=seed * 31 + i) for i, n in enumerate(self.names)}
        self.in_flight = []
        self.leaders = {}  # term -> leader id
        self.proposed = 0

    def step(self) -> None:
        rng = self.rng
        action = rng.random()
        if action < 0.3:
            rng.choice(list(self.nodes.values())).tick()
        elif action < 0.4:
            leader = [c for c in self.nodes.values() if c.role == LEADER]
            if leader:
                try:
                    leader[0].propose(b"v%d" % self.proposed)
                    self.proposed += 1
                except NotLeader:
                    pass
        elif action < 0.41:
            self.crash(rng.choice(self.names))
        elif self.in_flight:
            message = self.in_flight.pop(rng.randrange(len(self.in_flight)))
            if rng.random() > 0.1:  # 10% loss
                self.nodes[message.recipient].step(message)
            if rng.random() < 0.05:  # duplication
                self.in_flight.append(message)
        for name, core in self.nodes.items():
            while core.has_ready():
                ready = core.ready()
                self.storage[name].persist(ready)
                self.in_flight.extend(ready.messages)
                self.applied[name].extend(ready.committed)
                core.advance(ready)
            if core.role == LEADER:
                self.leaders.setdefault(core.term, name)
                assert self.leaders[core.term] == name, f"two leaders in term {core.term}"

    def crash(self, name: str) -> None:
        """Restart a node from what it persisted; its state machine is rebuilt from scratch."""
        self.applied[name] = []
        self.nodes[name] = make_core(name, self.names, self.storage[name], seed=self.rng.randrange(1 << 30))

    def check_state_machines(self) -> None:
        """Every node applied a prefix of one common sequence (state machine safety)."""
        sequences = sorted(([(e.index, e.term, e.data) for e in a] for a in self.applied.values()), key=len)
        longest = sequences[-1]
        for sequence in sequences:
            assert sequence == longest[: len(sequence)], "applied sequences diverge"
            assert [i for i, _, _ in sequence] == list(range(1, len(sequence) + 1))


class RaftSimulationTests(SynchronousTestCase):
    def test_random_runs(self) -> None:
        """Under loss, reordering, duplication and crashes: one leader per term, and applied logs never diverge (Raft 5.2, 5.4)."""
        seeds = int(os.environ.get("STALWART_SIM_SEEDS", "40"))
        progressed = 0
        for seed in range(seeds):
            sim = Simulation(seed, size=3 + seed % 3)
            try:
                for _ in range(3000):
                    sim.step()
                    sim.check_state_machines()
            except AssertionError as e:
                self.fail(f"seed {seed}: {e} (replay: Simulation({seed}, {3 + seed % 3}))")
            progressed += any(e.data for a in sim.applied.values() for e in a)
        self.assertGreater(progressed, seeds // 2, "the simulation should commit proposals in most runs")
