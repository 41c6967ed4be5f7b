# -*- test-case-name: tests.simulation.test_swim -*-
"""
A deterministic simulation of SWIM gossip (issue 6): 3 to 50
L{stalwart.cluster.swim.members.Membership} cores on a simulated UDP
network driven by one C{twisted.internet.task.Clock} and one seeded
C{random.Random}.

The network loses, delays (so reorders) and duplicates packets, and can be
cut one way (a node that can send but not receive, or the reverse).  Nodes
crash (fall silent) and leave.  The checks, from SWIM (section 5) and
Lifeguard (section 5): every member learns every other from a single
seed; with no fault nobody is even suspected; a crashed member is declared
dead by everyone within a stated bound; under 10% loss over ten simulated
minutes no healthy member is declared dead; a node behind a one-way
partition never makes the majority evict one of its own.

A failure names its seed and how to replay it.  C{STALWART_SIM_SEEDS=N}
runs N seeds per test (default: a fixed few); C{STALWART_SIM_SEED=S} runs
seed S alone.  L{SimulatedCluster} is also what C{bench/gossip.py} runs.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
from typing import Callable, Dict, List, Optional, Set, Tuple

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.config import SwimConfig
from stalwart.cluster.swim.members import ALIVE, DEAD, LEFT, Membership
from stalwart.cluster.swim.messages import (
    MemberDead,
    MemberInfo,
    MemberLeft,
    MemberSuspected,
    Packet,
    Send,
)
from stalwart.cluster.swim.seal import OVERHEAD_BYTES

Address = Tuple[str, int]


class HeapClock(Clock):
    """
    A C{Clock} whose pending calls sit in a heap: a run schedules hundreds
    of thousands of deliveries and the plain C{Clock} sorts its whole list
    at each one.  Cancelled calls are skipped when they come up; C{reset}
    and C{delay} are not supported.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heap: list = []
        self._order = itertools.count()

    def callLater(self, delay, callable, *args, **kw):
        call = DelayedCall(self.seconds() + delay, callable, args, kw, lambda c: None, lambda c: None,
                           self.seconds)
        heapq.heappush(self._heap, (call.getTime(), next(self._order), call))
        return call

    def getDelayedCalls(self):
        return [call for _, _, call in self._heap if not call.cancelled and not call.called]

    def next_time(self) -> Optional[float]:
        """When the next pending call is due, or None."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        while self._heap and self._heap[0][0] <= self.rightNow:
            _, _, call = heapq.heappop(self._heap)
            if not call.cancelled:
                call.called = 1
                call.func(*call.args, **call.kw)


class SimNode:
    """One simulated member: its core, its timer and what it reported."""

    def __init__(self, index: int, config: SwimConfig, rng: random.Random, seeds: List[Address]) -> None:
        self.index = index
        self.address: Address = (f"10.0.{index // 250}.{index % 250 + 1}", 7911)
        self.info = MemberInfo(node_id=f"node-{index:02d}", rpc_address=self.address,
                               jmap_url=f"https://node-{index:02d}.example.org/")
        self.core = Membership(config, self.info, random.Random(rng.getrandbits(64)), seeds)
        self.timer = None
        self.running = False
        #: Crashed or left on purpose: not expected in anyone's view.
        self.down = False
        #: (time, event) in the order reported
        self.events: List[Tuple[float, object]] = []

    @property
    def node_id(self) -> str:
        return self.info.node_id


class SimulatedCluster:
    """
    Members on an in-memory network.

    @param loss: probability that a packet is lost.
    @param duplicate: probability that a packet is delivered twice.
    @param delay: (min, max) one-way delay in seconds, drawn uniformly.
    @param measure: encode every packet, check its size and count bytes
        (slower).
    """

    def __init__(self, seed: int, size: int, config: Optional[SwimConfig] = None, loss: float = 0.0,
                 duplicate: float = 0.0, delay: Tuple[float, float] = (0.0005, 0.005),
                 measure: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = HeapClock()
        self.config = config or SwimConfig()
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.measure = measure
        self.bytes_sent: Dict[int, int] = {}
        self.packets_sent = 0
        #: (source address, destination address) pairs that drop everything
        self.blocked: Set[Tuple[Address, Address]] = set()
        first = SimNode(0, self.config, self.rng, [])
        self.nodes: List[SimNode] = [first] + [
            SimNode(i, self.config, self.rng, [first.address]) for i in range(1, size)]
        self._by_address = {node.address: node for node in self.nodes}
        self.on_event: Optional[Callable[[SimNode, object], None]] = None

    @property
    def now(self) -> float:
        return self.clock.seconds()

    # Driving.

    def start(self, node: SimNode, at: Optional[float] = None) -> None:
        """Start C{node} at time C{at} (now by default)."""
        node.down = False

        def go() -> None:
            node.running = True
            self._wake(node)
        self.clock.callLater(max(0.0, (at if at is not None else self.now) - self.now), go)

    def start_all(self, spread: float = 1.0) -> None:
        """Start every node at a random time in the next C{spread} seconds, the seed first."""
        self.start(self.nodes[0])
        for node in self.nodes[1:]:
            self.start(node, self.now + self.rng.uniform(0, spread))

    def crash(self, node: SimNode) -> None:
        """Stop C{node} without a word: it neither sends nor receives any more."""
        node.running = False
        node.down = True
        if node.timer is not None and node.timer.active():
            node.timer.cancel()
        node.timer = None

    def leave(self, node: SimNode) -> None:
        """C{node} leaves gracefully, then stops."""
        self._perform(node, node.core.leave(self.now))
        self.crash(node)

    def isolate(self, node: SimNode, inbound: bool = True, outbound: bool = False) -> None:
        """Cut C{node}'s inbound and/or outbound traffic with every other node."""
        for other in self.nodes:
            if other is not node:
                if inbound:
                    self.blocked.add((other.address, node.address))
                if outbound:
                    self.blocked.add((node.address, other.address))

    def heal(self) -> None:
        self.blocked.clear()

    def run_until(self, until: float) -> None:
        """Run every event up to simulated time C{until}."""
        clock = self.clock
        due = clock.next_time()
        while due is not None and due <= until:
            clock.advance(max(0.0, due - clock.seconds()))
            due = clock.next_time()
        clock.advance(max(0.0, until - clock.seconds()))

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    # Plumbing.

    def _wake(self, node: SimNode) -> None:
        node.timer = None
        if node.running:
            self._perform(node, node.core.tick(self.now))
            self._schedule(node)

    def _schedule(self, node: SimNode) -> None:
        wake = node.core.next_wake()
        if wake is None or not node.running:
            return
        if node.timer is not None and node.timer.active():
            if node.timer.getTime() <= wake:
                return
            node.timer.cancel()
        node.timer = self.clock.callLater(max(0.0, wake - self.now), self._wake, node)

    def _perform(self, node: SimNode, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send(node, effect.address, effect.packet)
            else:
                node.events.append((self.now, effect))
                if self.on_event is not None:
                    self.on_event(node, effect)

    def _send(self, node: SimNode, address: Address, packet: Packet) -> None:
        self.packets_sent += 1
        if self.measure:
            size = len(codec.encode(packet)) + OVERHEAD_BYTES
            assert size <= self.config.udp_payload_bytes_max, size
            self.bytes_sent[node.index] = self.bytes_sent.get(node.index, 0) + size
        if (node.address, address) in self.blocked:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            if self.rng.random() >= self.loss:
                self.clock.callLater(self.rng.uniform(*self.delay), self._deliver, node.address, address, packet)

    def _deliver(self, source: Address, destination: Address, packet: Packet) -> None:
        node = self._by_address.get(destination)
        if node is not None and node.running:
            self._perform(node, node.core.receive(self.now, source, packet))
            self._schedule(node)

    # Views.

    def running(self) -> List[SimNode]:
        return [node for node in self.nodes if node.running]

    def view(self, node: SimNode) -> Dict[str, str]:
        """node id -> status, as C{node} sees the others."""
        return {m.info.node_id: m.status for m in node.core.members(self.now)}

    def converged(self, nodes: Optional[List[SimNode]] = None) -> bool:
        """Every node in C{nodes} (default: all but those crashed or left) sees every other one alive."""
        nodes = [node for node in self.nodes if not node.down] if nodes is None else nodes
        if not all(node.running for node in nodes):
            return False
        for node in nodes:
            view = self.view(node)
            if any(view.get(other.node_id) != ALIVE for other in nodes if other is not node):
                return False
        return True

    def run_until_converged(self, bound: float, step: float = 0.1) -> Optional[float]:
        """Run until L{converged} (checked every C{step} s) or C{bound}; the time it took, or None."""
        start = self.now
        while self.now - start < bound:
            self.run_for(step)
            if self.converged():
                return self.now - start
        return None

    def events_of(self, kind: type, about: Optional[str] = None) -> List[Tuple[SimNode, float, object]]:
        return [(node, at, event) for node in self.nodes for at, event in node.events
                if isinstance(event, kind) and (about is None or event.node_id == about)]

    def detection(self, victim: SimNode, crashed_at: float, bound: float, step: float = 0.01
                  ) -> Tuple[Optional[float], Optional[float]]:
        """
        Run until every running node holds C{victim} dead, at most C{bound}
        seconds: (seconds from C{crashed_at} to the first conviction, to the
        last), None where it did not happen.
        """
        first = None
        while self.now - crashed_at < bound:
            self.run_for(step)
            views = [self.view(node).get(victim.node_id) for node in self.running()]
            if first is None and DEAD in views:
                first = self.now - crashed_at
            if all(status == DEAD for status in views):
                return first, self.now - crashed_at
        return first, None


# Seeds.

def simulation_seeds(default: List[int]) -> List[int]:
    """The seeds to run: C{STALWART_SIM_SEED}, else C{STALWART_SIM_SEEDS} of them, else C{default}."""
    if os.environ.get("STALWART_SIM_SEED"):
        return [int(os.environ["STALWART_SIM_SEED"])]
    if os.environ.get("STALWART_SIM_SEEDS"):
        return list(range(int(os.environ["STALWART_SIM_SEEDS"])))
    return default


class SwimSimulationTests(SynchronousTestCase):
    """SWIM and Lifeguard behaviour over a simulated lossy network."""

    def each_seed(self, default: List[int], check: Callable[[int], None]) -> None:
        for seed in simulation_seeds(default):
            try:
                check(seed)
            except AssertionError as e:
                self.fail(f"{e}\nsimulation seed {seed} failed; replay with: STALWART_SIM_SEED={seed} "
                          f"PYTHONPATH=. python -m twisted.trial {self.id()}")

    def assert_learns_everyone(self, size: int, bound: float, seeds: List[int]) -> None:
        def check(seed: int) -> None:
            cluster = SimulatedCluster(seed, size, measure=size <= 10)
            cluster.start_all(spread=1.0)
            cluster.run_for(1.0)
            took = cluster.run_until_converged(bound)
            self.assertIsNotNone(took, f"{size} members did not all learn each other within {bound} s")
            cluster.run_for(5.0)
            self.assertEqual(cluster.events_of(MemberSuspected), [], "a healthy member was suspected")
            self.assertEqual(cluster.events_of(MemberDead), [], "a healthy member was declared dead")
        self.each_seed(seeds, check)

    def test_three_learn_everyone_from_one_seed(self) -> None:
        """SWIM 4.1: with one seed address, 3 members learn each other within 3 s; nobody is suspected."""
        self.assert_learns_everyone(3, 3.0, [1, 2, 3])

    def test_ten_learn_everyone_from_one_seed(self) -> None:
        """Ten members that know only the seed learn every member within 6 s, and nobody is suspected."""
        self.assert_learns_everyone(10, 6.0, [1, 2])

    def test_fifty_learn_everyone_from_one_seed(self) -> None:
        """Fifty members that know only the seed learn every member within 15 s, and nobody is suspected."""
        self.assert_learns_everyone(50, 15.0, [1])

    def test_crashed_member_declared_dead(self) -> None:
        """
        SWIM 4.2, Lifeguard 4.2: a member that crashes silently is declared
        dead by every other member within 3 s (first conviction within 2 s),
        and nobody else is.
        """
        def check(seed: int) -> None:
            cluster = SimulatedCluster(seed, 10)
            cluster.start_all()
            self.assertIsNotNone(cluster.run_until_converged(10.0))
            cluster.run_for(cluster.rng.uniform(5, 6))
            victim = cluster.nodes[cluster.rng.randrange(10)]
            crashed_at = cluster.now
            cluster.crash(victim)
            first, last = cluster.detection(victim, crashed_at, 3.0)
            self.assertIsNotNone(first, "nobody convicted the crashed member within 3 s")
            self.assertLess(first, 2.0)
            self.assertIsNotNone(last, "not every member convicted the crashed member within 3 s")
            dead = {event.node_id for _, _, event in cluster.events_of(MemberDead)}
            self.assertEqual(dead, {victim.node_id})
        self.each_seed([1, 2, 3], check)

    def test_no_false_positive_under_loss(self) -> None:
        """
        Lifeguard section 5: with 10% of packets lost (and 1% duplicated)
        for ten simulated minutes, no healthy member of ten is ever declared
        dead; suspicions happen and are refuted.
        """
        def check(seed: int) -> None:
            cluster = SimulatedCluster(seed, 10, loss=0.10, duplicate=0.01)
            cluster.start_all()
            self.assertIsNotNone(cluster.run_until_converged(20.0), "no convergence under loss")
            cluster.run_for(600.0)
            false = [(node.node_id, at, event) for node, at, event in cluster.events_of(MemberDead)]
            self.assertEqual(false, [], "healthy members declared dead under 10% loss")
            self.assertTrue(cluster.converged())
        self.each_seed([1], check)

    def assert_partition_evicts_no_majority(self, seed: int, inbound: bool, outbound: bool) -> None:
        cluster = SimulatedCluster(seed, 10)
        cluster.start_all()
        self.assertIsNotNone(cluster.run_until_converged(10.0))
        cluster.run_for(2.0)
        cut = cluster.nodes[cluster.rng.randrange(1, 10)]
        majority = [node for node in cluster.nodes if node is not cut]
        cluster.isolate(cut, inbound=inbound, outbound=outbound)
        cluster.run_for(60.0)
        evictions = [(node.node_id, at, event.node_id) for node, at, event in cluster.events_of(MemberDead)
                     if node is not cut and event.node_id != cut.node_id]
        self.assertEqual(evictions, [], "the majority evicted one of its own")
        for node in majority:
            self.assertIn(cluster.view(node)[cut.node_id], (DEAD,), "the cut node is still a member")
        cluster.heal()
        self.assertIsNotNone(cluster.run_until_converged(20.0), "the cut node did not come back")

    def test_one_way_partition_inbound(self) -> None:
        """
        Lifeguard 4.3: a member that can send but not receive accuses
        everybody, but its local health slows it down and the majority
        convicts it first, so no member of the majority is ever declared
        dead by the majority; after the cut heals it rejoins.
        """
        self.each_seed([1, 2], lambda seed: self.assert_partition_evicts_no_majority(seed, True, False))

    def test_one_way_partition_outbound(self) -> None:
        """A member that can receive but not send is convicted, evicts nobody, and rejoins after the cut heals."""
        self.each_seed([1], lambda seed: self.assert_partition_evicts_no_majority(seed, False, True))

    def test_graceful_leave(self) -> None:
        """A member that leaves is reported left (never dead) by every other member within 2 s."""
        def check(seed: int) -> None:
            cluster = SimulatedCluster(seed, 10, loss=0.05)
            cluster.start_all()
            self.assertIsNotNone(cluster.run_until_converged(10.0))
            leaver = cluster.nodes[3]
            cluster.leave(leaver)
            cluster.run_for(2.0)
            for node in cluster.running():
                self.assertEqual(cluster.view(node)[leaver.node_id], LEFT)
            self.assertEqual(cluster.events_of(MemberDead), [])
            self.assertEqual(len(cluster.events_of(MemberLeft, leaver.node_id)), 9)
        self.each_seed([1], check)

    def test_crashed_member_comes_back(self) -> None:
        """A member declared dead that comes back (same id, fresh incarnation 0) is alive again everywhere."""
        def check(seed: int) -> None:
            cluster = SimulatedCluster(seed, 5)
            cluster.start_all()
            self.assertIsNotNone(cluster.run_until_converged(10.0))
            victim = cluster.nodes[2]
            cluster.crash(victim)
            cluster.run_for(5.0)
            self.assertEqual(cluster.view(cluster.nodes[0])[victim.node_id], DEAD)
            victim.core = Membership(cluster.config, victim.info, random.Random(seed), [cluster.nodes[0].address])
            cluster.start(victim)
            self.assertIsNotNone(cluster.run_until_converged(10.0), "the restarted member was not readmitted")
        self.each_seed([1], check)
