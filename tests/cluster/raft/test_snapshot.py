# -*- test-case-name: tests.cluster.raft.test_snapshot -*-
"""
Tests for snapshots, log compaction and InstallSnapshot in
L{stalwart.cluster.raft.core} (extended Raft paper section 7; Ongaro's
thesis chapter 5), driven by hand with an in-memory "driver" that keeps
snapshot bytes outside the core.
"""

from __future__ import annotations

import json
import random
from typing import Dict, List, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import FOLLOWER, LEADER, RaftConfig, RaftCore
from stalwart.cluster.raft.hardstate import HardState
from stalwart.cluster.raft.log import Compacted, RaftLog
from stalwart.cluster.raft.messages import (
    ENTRY_CONFIG,
    ENTRY_NORMAL,
    AppendEntries,
    Configuration,
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    SnapshotMeta,
    decode_configuration,
    encode_configuration,
)
from stalwart.cluster.raft.progress import PROBE, SNAPSHOT


class CompactingStorage:
    """
    The stable log of one node as segment files would hold it, with a
    first index above 1 once compacted: compacted indexes raise
    L{IndexError}, as L{SegmentLog} does.
    """

    def __init__(self) -> None:
        self.entries: List[Entry] = []
        self.first = 1
        #: Term of entry C{first - 1} (the snapshot's, after a restore).
        self.base_term = 0
        self.hard_state = HardState()

    @property
    def last_index(self) -> int:
        return self.first + len(self.entries) - 1

    def term_at(self, index: int) -> int:
        if index == 0:
            return 0
        if index == self.first - 1:
            return self.base_term
        if not self.first <= index <= self.last_index:
            raise IndexError(index)
        return self.entries[index - self.first].term

    def read(self, lo: int, hi: int, bytes_max: int) -> List[Entry]:
        if lo < self.first or hi > self.last_index:
            raise IndexError((lo, hi))
        out, size = [], 0
        for entry in self.entries[lo - self.first : hi - self.first + 1]:
            size += entry.size()
            if out and size > bytes_max:
                break
            out.append(entry)
        return out

    def tail(self, lo: int) -> List[Entry]:
        return self.entries[max(lo, self.first) - self.first :]

    def persist(self, ready) -> None:
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state
        if ready.entries:
            first = ready.entries[0].index
            assert self.first <= first <= self.last_index + 1, (first, self.first, self.last_index)
            del self.entries[first - self.first :]
            self.entries.extend(ready.entries)
        if ready.restore is not None:
            index = ready.restore.meta.index
            if ready.restore.discard_log or self.last_index < index:
                self.entries, self.first = [], index + 1
                self.base_term = ready.restore.meta.term
            else:
                self.compact(index + 1)

    def compact(self, keep_from: int) -> None:
        """Drop entries before C{keep_from}, as whole segment files would go."""
        drop = max(0, min(keep_from, self.last_index + 1) - self.first)
        if drop:
            self.base_term = self.entries[drop - 1].term
        del self.entries[:drop]
        self.first += drop


class Machine:
    """A state machine whose state is the list of applied client data, and its snapshots."""

    def __init__(self) -> None:
        self.applied = 0
        self.term = 0
        self.config = b""
        self.data: List[str] = []
        #: index -> (meta, bytes): the snapshot files.
        self.snapshots: Dict[int, Tuple[SnapshotMeta, bytes]] = {}
        self.incoming = bytearray()

    def apply(self, entry: Entry) -> None:
        assert entry.index == self.applied + 1, (entry.index, self.applied)
        self.applied, self.term = entry.index, entry.term
        if entry.kind == ENTRY_NORMAL and entry.data:
            self.data.append(entry.data.decode())
        if entry.kind == ENTRY_CONFIG:
            self.config = entry.data

    def take(self) -> SnapshotMeta:
        meta = SnapshotMeta(index=self.applied, term=self.term, configuration=self.config)
        self.snapshots[meta.index] = (meta, json.dumps(self.data).encode())
        return meta

    def newest(self) -> Optional[SnapshotMeta]:
        return max((m for m, _ in self.snapshots.values()), key=lambda m: m.index, default=None)

    def restore(self, meta: SnapshotMeta) -> None:
        data = bytes(self.incoming)
        self.snapshots[meta.index] = (meta, data)
        self.data = json.loads(data)
        self.applied, self.term, self.config = meta.index, meta.term, meta.configuration


class Node:
    def __init__(self, name, voters, learners=(), config=None, seed=1) -> None:
        self.name = name
        self.storage = CompactingStorage()
        self.machine = Machine()
        self.config = config or RaftConfig()
        self.voters, self.learners, self.seed = frozenset(voters), frozenset(learners), seed
        self.core: RaftCore = None
        self.start()

    def start(self) -> None:
        """(Re)start from what is durable: storage, the machine and its newest snapshot."""
        storage, machine = self.storage, self.machine
        meta = machine.newest()
        snapshot_index = meta.index if meta else 0
        keep_from = max(1, snapshot_index + 1 - self.config.snapshot_trailing_entries)
        lo = max(storage.first + (0 if storage.first - 1 == snapshot_index else 1), keep_from)
        lo = min(lo, machine.applied + 1)
        log = RaftLog(
            storage.last_index, storage.term_at, storage.tail(lo), machine.applied,
            read_stable=None, snapshot_index=snapshot_index, snapshot_term=meta.term if meta else 0,
        )
        config = decode_configuration(machine.config) if machine.config else Configuration(
            voters=self.voters, learners=self.learners)
        self.core = RaftCore(self.config, self.name, log, storage.hard_state, config.voters,
                             random.Random(self.seed), learners=config.learners)

    def chunk(self, request, size: int) -> InstallSnapshot:
        meta, data = self.machine.snapshots[request.index]
        piece = data[request.offset : request.offset + size]
        return InstallSnapshot(
            term=request.term, sender=self.name, recipient=request.peer, index=meta.index,
            snapshot_term=meta.term, configuration=meta.configuration, offset=request.offset,
            data=piece, done=request.offset + len(piece) >= len(data),
        )

    def handle(self, chunk_bytes: int) -> Tuple[List, object]:
        """Carry out one Ready in the driver's order; returns (messages to send, ready)."""
        core, machine = self.core, self.machine
        ready = core.ready()
        for entry in ready.committed:
            machine.apply(entry)
        for message in ready.received:
            if message.offset == 0:
                machine.incoming = bytearray()
            machine.incoming += message.data
        self.storage.persist(ready)
        if ready.restore is not None:
            machine.restore(ready.restore.meta)
        out = list(ready.messages)
        out.extend(self.chunk(request, chunk_bytes) for request in ready.chunks)
        core.advance(ready)
        if ready.take_snapshot:
            keep_from = core.snapshot_taken(machine.take())
            self.storage.compact(keep_from)
        return out, ready


class SnapshotCluster:
    """Nodes on a perfect network; C{down} nodes neither send nor receive."""

    def __init__(self, names, config: RaftConfig, chunk_bytes: int = 7) -> None:
        self.config = config
        self.chunk_bytes = chunk_bytes
        self.nodes: Dict[str, Node] = {}
        self.down = set()
        self.sent: List = []
        for i, name in enumerate(names):
            self.nodes[name] = Node(name, names, config=config, seed=1 + i)

    def run(self, rounds: int = 200, drop=lambda m: False) -> None:
        for _ in range(rounds):
            moved = False
            for name, node in list(self.nodes.items()):
                if name in self.down:
                    continue
                while node.core.has_ready():
                    messages, _ = node.handle(self.chunk_bytes)
                    for message in messages:
                        self.sent.append(message)
                        if message.recipient in self.down or drop(message):
                            continue
                        self.nodes[message.recipient].core.step(message)
                        moved = True
            if not moved:
                return

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            for name, node in self.nodes.items():
                if name not in self.down:
                    node.core.tick()
            self.run()

    def elect(self, name: str) -> RaftCore:
        self.nodes[name].core.campaign()
        self.run()
        assert self.nodes[name].core.role == LEADER
        return self.nodes[name].core

    def propose(self, leader: RaftCore, count: int, prefix: str = "x") -> None:
        for i in range(count):
            leader.propose(f"{prefix}{i}".encode())
            self.run()


def config(**kw) -> RaftConfig:
    kw.setdefault("snapshot_entries", 10)
    kw.setdefault("snapshot_trailing_entries", 2)
    return RaftConfig(**kw)


class CompactionPolicyTests(SynchronousTestCase):
    def test_snapshot_asked_every_n_entries(self) -> None:
        """
        The core asks for a snapshot once snapshot_entries were applied
        since the last one, and only once until it is taken (paper 7).
        """
        cluster = SnapshotCluster(["a"], config(snapshot_entries=5))
        node = cluster.nodes["a"]
        leader = cluster.elect("a")
        asked = []
        for i in range(12):
            leader.propose(b"p%d" % i)
            while leader.has_ready():
                _, ready = node.handle(7)
                if ready.take_snapshot:
                    asked.append(node.machine.applied)
        self.assertEqual(asked, [5, 10])
        self.assertEqual(leader.log.snapshot_index, 10)

    def test_snapshot_asked_by_bytes(self) -> None:
        """snapshot_bytes asks for a snapshot once the applied entries hold that many bytes."""
        cluster = SnapshotCluster(["a"], RaftConfig(snapshot_bytes=3 * (24 + 100)))
        node = cluster.nodes["a"]
        leader = cluster.elect("a")
        for i in range(3):
            leader.propose(b"x" * 100)
            cluster.run()
        self.assertEqual(node.machine.newest().index, 4)  # the no-op and three entries

    def test_disabled_by_default(self) -> None:
        """With the default configuration the core never asks for a snapshot."""
        cluster = SnapshotCluster(["a"], RaftConfig())
        leader = cluster.elect("a")
        cluster.propose(leader, 30)
        self.assertEqual(cluster.nodes["a"].machine.snapshots, {})

    def test_compaction_keeps_trailing_window(self) -> None:
        """
        After a snapshot at S the log keeps S + 1 - trailing onwards: the
        term of the snapshot index stays known, older entries are gone.
        """
        cluster = SnapshotCluster(["a"], config(snapshot_entries=10, snapshot_trailing_entries=3))
        leader = cluster.elect("a")
        cluster.propose(leader, 9)
        node = cluster.nodes["a"]
        self.assertEqual(leader.log.snapshot_index, 10)
        self.assertEqual(node.storage.first, 8)
        self.assertEqual(leader.log.first_index, 8)
        self.assertEqual(leader.log.term(10), 1)
        self.assertIsNone(leader.log.entries(5, 10, 1 << 20))
        self.assertRaises(Compacted, leader.log.term, 5)

    def test_failed_snapshot_asked_again_later(self) -> None:
        """A failed snapshot is asked for again after another interval, not at once."""
        cluster = SnapshotCluster(["a"], config(snapshot_entries=3))
        leader = cluster.elect("a")
        node = cluster.nodes["a"]
        asked = 0
        for i in range(7):
            leader.propose(b"q%d" % i)
            while leader.has_ready():
                ready = leader.ready()
                for entry in ready.committed:
                    node.machine.apply(entry)
                node.storage.persist(ready)
                leader.advance(ready)
                if ready.take_snapshot:
                    asked += 1
                    leader.snapshot_failed()
        self.assertEqual(asked, 2)


class InstallSnapshotTests(SynchronousTestCase):
    def test_follower_far_behind_gets_snapshot_then_entries(self) -> None:
        """
        A follower that was down while the leader compacted past its log
        receives the snapshot in chunks, then the entries after it
        (paper section 7, figure 13).
        """
        cluster = SnapshotCluster(["a", "b", "c"], config())
        leader = cluster.elect("a")
        cluster.propose(leader, 3)
        cluster.down.add("c")
        cluster.propose(leader, 30, prefix="y")
        self.assertGreater(leader.log.snapshot_index, 20)
        self.assertGreater(cluster.nodes["a"].storage.first, cluster.nodes["c"].storage.last_index + 1)
        cluster.down.discard("c")
        cluster.tick(3)
        c = cluster.nodes["c"]
        chunks = [m for m in cluster.sent if isinstance(m, InstallSnapshot) and m.recipient == "c"]
        self.assertGreater(len(chunks), 1)
        self.assertEqual([m.offset for m in chunks], sorted({m.offset for m in chunks}))
        self.assertEqual(c.machine.data, cluster.nodes["a"].machine.data)
        self.assertEqual(c.core.log.committed, leader.log.committed)
        self.assertEqual(leader.progress()["c"].match, leader.log.last_index)
        self.assertEqual(leader.progress()["c"].state, "replicate")
        cluster.propose(leader, 1, prefix="z")
        cluster.tick()
        self.assertEqual(c.machine.data[-1], "z0")

    def test_new_member_gets_snapshot(self) -> None:
        """
        A learner added with an empty log gets the snapshot and its
        configuration, then catches up and can be promoted (thesis 4.2.1,
        5.4.2).
        """
        cluster = SnapshotCluster(["a"], config())
        leader = cluster.elect("a")
        cluster.propose(leader, 25)
        cluster.nodes["d"] = Node("d", (), config=cluster.config, seed=9)
        leader.propose_config_change(add_learner="d")
        cluster.run()
        cluster.tick(2)
        d = cluster.nodes["d"]
        self.assertEqual(d.machine.data, cluster.nodes["a"].machine.data)
        self.assertIn("d", d.core.learners)
        self.assertEqual(d.core.log.last_index, leader.log.last_index)
        self.assertTrue(any(isinstance(m, InstallSnapshot) and m.recipient == "d" for m in cluster.sent))
        leader.propose_config_change(promote="d")
        cluster.run()
        self.assertIn("d", d.core.voters)

    def test_snapshot_restart_keeps_state(self) -> None:
        """A node restarted after installing a snapshot starts after it, with its configuration."""
        cluster = SnapshotCluster(["a", "b", "c"], config())
        leader = cluster.elect("a")
        cluster.down.add("c")
        cluster.propose(leader, 30)
        cluster.down.discard("c")
        cluster.tick(3)
        c = cluster.nodes["c"]
        c.start()
        self.assertEqual(c.core.voters, {"a", "b", "c"})
        self.assertEqual(c.core.log.committed, c.machine.applied)
        cluster.tick(2)
        cluster.propose(leader, 1, prefix="after")
        cluster.tick()
        self.assertEqual(c.machine.data, cluster.nodes["a"].machine.data)

    def test_lost_chunk_sent_again(self) -> None:
        """A chunk lost on the way is sent again after two quiet heartbeats."""
        cluster = SnapshotCluster(["a", "b", "c"], config())
        leader = cluster.elect("a")
        cluster.down.add("c")
        cluster.propose(leader, 30)
        cluster.down.discard("c")
        lost = []

        def drop(message):
            if isinstance(message, InstallSnapshot) and message.offset == 14 and not lost:
                lost.append(message)
                return True
            return False

        for _ in range(10):
            for node in cluster.nodes.values():
                node.core.tick()
            cluster.run(drop=drop)
        self.assertEqual(len(lost), 1)
        self.assertEqual(cluster.nodes["c"].machine.data, cluster.nodes["a"].machine.data)


class FollowerChunkTests(SynchronousTestCase):
    """The follower side alone, with hand-made chunks (paper section 7)."""

    def setUp(self) -> None:
        self.node = Node("b", ["a", "b"], config=config())
        self.core = self.node.core
        self.config_bytes = encode_configuration(Configuration(voters={"a", "b"}))

    def chunk(self, offset, data, done=False, index=50, term=3, sender="a"):
        return InstallSnapshot(term=3, sender=sender, recipient="b", index=index, snapshot_term=term,
                               configuration=self.config_bytes, offset=offset, data=data, done=done)

    def responses(self, ready):
        return [m for m in ready.messages if isinstance(m, InstallSnapshotResponse)]

    def test_chunks_in_order_then_restore(self) -> None:
        """Accepted chunks go to the driver in order; the last brings the restore."""
        self.core.step(self.chunk(0, b"abc"))
        self.core.step(self.chunk(3, b"def", done=True))
        ready = self.core.ready()
        self.assertEqual([m.data for m in ready.received], [b"abc", b"def"])
        self.assertEqual(ready.restore.meta, SnapshotMeta(50, 3, self.config_bytes))
        self.assertTrue(ready.restore.discard_log)
        self.assertEqual([(r.offset, r.done, r.match_index) for r in self.responses(ready)],
                         [(3, False, 0), (0, True, 50)])
        self.assertEqual((self.core.log.committed, self.core.log.last_index, self.core.log.last_term), (50, 50, 3))
        self.assertEqual(self.core.role, FOLLOWER)
        self.assertEqual(self.core.leader, "a")

    def test_duplicate_and_stale_chunks_ignored(self) -> None:
        """A chunk repeated or out of order is not written; the answer names the offset wanted."""
        self.core.step(self.chunk(0, b"abc"))
        self.core.step(self.chunk(0, b"abc"))
        self.core.step(self.chunk(6, b"ghi"))
        self.core.step(self.chunk(3, b"def"))
        ready = self.core.ready()
        self.assertEqual([m.offset for m in ready.received], [0, 3])
        self.assertEqual([r.offset for r in self.responses(ready)], [3, 3, 3, 6])
        self.assertIsNone(ready.restore)

    def test_chunk_of_another_snapshot_starts_over_only_at_zero(self) -> None:
        """A chunk of a different snapshot is taken only from offset 0."""
        self.core.step(self.chunk(0, b"abc"))
        self.core.step(self.chunk(3, b"xyz", index=60))
        self.core.step(self.chunk(0, b"new", index=60))
        ready = self.core.ready()
        self.assertEqual([(m.index, m.offset) for m in ready.received], [(50, 0), (60, 0)])
        self.assertEqual([r.offset for r in self.responses(ready)], [3, 0, 3])

    def test_snapshot_older_than_commit_ignored(self) -> None:
        """A snapshot the follower's commit index already covers changes nothing (paper 7)."""
        entries = tuple(Entry(term=3, index=i) for i in range(1, 61))
        self.core.step(AppendEntries(term=3, sender="a", recipient="b", prev_index=0, prev_term=0,
                                     entries=entries, commit=60))
        self.node.handle(7)
        self.core.step(self.chunk(0, b"abc", done=True))
        ready = self.core.ready()
        self.assertEqual(ready.received, ())
        self.assertIsNone(ready.restore)
        self.assertEqual([(r.done, r.match_index) for r in self.responses(ready)], [(True, 60)])
        self.assertEqual(self.core.log.last_index, 60)

    def test_matching_log_kept(self) -> None:
        """
        If the log holds the snapshot's last entry, the entries after it
        stay (paper section 7: "retain log entries following it").
        """
        entries = tuple(Entry(term=3, index=i) for i in range(1, 61))
        self.core.step(AppendEntries(term=3, sender="a", recipient="b", prev_index=0, prev_term=0,
                                     entries=entries, commit=10))
        self.node.handle(7)
        self.core.step(self.chunk(0, b"abc", done=True))
        ready = self.core.ready()
        self.assertFalse(ready.restore.discard_log)
        self.assertEqual(self.core.log.last_index, 60)
        self.assertEqual(self.core.log.committed, 50)

    def test_stale_term_chunk_answered_with_term(self) -> None:
        """A chunk from an old leader is refused with the current term (Raft 5.1)."""
        self.core.step(AppendEntries(term=5, sender="a", recipient="b", prev_index=0, prev_term=0,
                                     entries=(), commit=0))
        self.core.ready()
        self.core.step(self.chunk(0, b"abc"))
        ready = self.core.ready()
        self.assertEqual(ready.received, ())
        self.assertEqual([(r.term, r.done) for r in self.responses(ready)], [(5, False)])

    def test_writes_in_flight_before_discard_stay_void(self) -> None:
        """
        Entries still being written when a restore discards the log are not
        marked durable by their late advance (they were deleted with it).
        """
        entries = tuple(Entry(term=2, index=i) for i in range(1, 6))
        self.core.step(AppendEntries(term=2, sender="a", recipient="b", prev_index=0, prev_term=0,
                                     entries=entries, commit=0))
        in_flight = self.core.ready()
        self.core.step(self.chunk(0, b"abc", done=True, index=50, term=3))
        self.core.step(AppendEntries(term=3, sender="a", recipient="b", prev_index=50, prev_term=3,
                                     entries=(Entry(term=3, index=51),), commit=50))
        restore = self.core.ready()
        self.core.advance(in_flight)
        self.assertEqual(self.core.log.stable_last, 50)
        self.core.advance(restore)
        self.assertEqual(self.core.log.stable_last, 51)


class LeaderSnapshotProgressTests(SynchronousTestCase):
    def test_progress_states(self) -> None:
        """
        The leader switches a follower needing compacted entries to snapshot
        state, sends nothing else meanwhile, and probes after the answer
        that the snapshot is installed (paper section 7).
        """
        cluster = SnapshotCluster(["a", "b", "c"], config())
        leader = cluster.elect("a")
        cluster.down.add("b")
        cluster.propose(leader, 30)
        cluster.down.discard("b")
        leader.tick()
        cluster.run(drop=lambda m: isinstance(m, InstallSnapshot))
        chunks = [m for m in cluster.sent if isinstance(m, InstallSnapshot)]
        self.assertEqual([(c.recipient, c.index, c.offset) for c in chunks],
                         [("b", leader.log.snapshot_index, 0)])
        self.assertEqual(leader._progress["b"].state, SNAPSHOT)
        self.assertFalse(leader.has_ready())
        leader.step(InstallSnapshotResponse(term=leader.term, sender="b", recipient="a",
                                            index=leader.log.snapshot_index, done=True,
                                            match_index=leader.log.snapshot_index))
        self.assertEqual(leader._progress["b"].state, PROBE)
        appends = [m for m in leader.ready().messages if isinstance(m, AppendEntries)]
        self.assertEqual(appends[0].prev_index, leader.log.snapshot_index)

    def test_unavailable_snapshot_restarts_with_newest(self) -> None:
        """If the driver lost the snapshot being sent, the leader starts again with the newest."""
        cluster = SnapshotCluster(["a", "b", "c"], config())
        leader = cluster.elect("a")
        cluster.down.add("b")
        cluster.propose(leader, 15)
        cluster.down.discard("b")
        leader.tick()
        cluster.run(drop=lambda m: isinstance(m, InstallSnapshot))
        first = [m for m in cluster.sent if isinstance(m, InstallSnapshot)][0]
        cluster.down.add("b")
        cluster.propose(leader, 12, prefix="more")
        self.assertGreater(leader.log.snapshot_index, first.index)
        leader.snapshot_unavailable("b", first.index)
        again = leader.ready().chunks
        self.assertEqual([(c.index, c.offset) for c in again], [(leader.log.snapshot_index, 0)])


class PurityTests(SynchronousTestCase):
    def test_split_modules_are_pure(self) -> None:
        """
        The modules split out of the core (snapshot logic, configuration,
        roles) import no reactor, clock, thread, file or database, like the
        core itself (STYLE.md section 1).
        """
        import os

        import stalwart
        from tests.test_layering import FORBIDDEN, imported_names

        root = os.path.dirname(stalwart.__file__)
        for module in ("cluster/raft/snapshotting.py", "cluster/raft/config.py", "cluster/raft/roles.py"):
            for name in imported_names(os.path.join(root, module)):
                bad = name == "open()" or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
                self.assertFalse(bad, f"{module} uses {name}")
