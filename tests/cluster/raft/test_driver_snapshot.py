# -*- test-case-name: tests.cluster.raft.test_driver_snapshot -*-
"""
Tests for snapshots in L{stalwart.cluster.raft.driver} and
L{stalwart.cluster.raft.boot} (extended Raft paper section 7): real
segment files, SQLite state machines and snapshot files in a temporary
directory, synchronous workers and a hand-driven network.
"""

from __future__ import annotations

import os
import random
import sqlite3
from typing import Dict, List

import attrs
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.boot import open_raft_log, tail_start
from stalwart.cluster.raft.core import RaftConfig, RaftCore
from stalwart.cluster.raft.driver import RaftDriver
from stalwart.cluster.raft.hardstate import HardStateFile
from stalwart.cluster.raft.messages import (
    InstallSnapshot,
    InstallSnapshotResponse,
    SnapshotMeta,
    decode_configuration,
)
from stalwart.cluster.raft.segments.files import SegmentLog
from stalwart.store.apply import StateMachine
from stalwart.store.blobs import BlobStore
from stalwart.store.commands import Command, encode_command
from stalwart.store.snapshot import SnapshotStore


def put(ctx):
    ctx.tx.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ctx.command.args["key"], ctx.command.args["value"]))
    ctx.blobs.write(b"blob %d" % ctx.command.args["value"])
    return ctx.command.args["value"]


def command(key, value) -> bytes:
    return encode_command(Command(kind="put", args={"key": key, "value": value}))


def synchronous(f, *args):
    return maybeDeferred(f, *args)


CONFIG = RaftConfig(snapshot_entries=5, snapshot_trailing_entries=2)


class Network:
    """Delivers messages in order when flushed; C{down} nodes get nothing."""

    def __init__(self) -> None:
        self.nodes: Dict[str, "Node"] = {}
        self.queue: List = []
        self.sent: List = []
        self.down = set()

    def send(self, message) -> None:
        self.sent.append(message)
        self.queue.append(message)

    def flush(self) -> None:
        while self.queue:
            message = self.queue.pop(0)
            node = self.nodes.get(message.recipient)
            if node is not None and node.driver is not None and message.recipient not in self.down:
                node.driver.step(message)


class Node:
    def __init__(self, test, network: Network, name: str, voters, chunk_bytes: int = 300) -> None:
        self.name = name
        self.network = network
        self.directory = os.path.abspath(test.mktemp())
        self.voters = frozenset(voters)
        self.chunk_bytes = chunk_bytes
        self.clock = Clock()
        self.driver = None
        network.nodes[name] = self
        test.addCleanup(self.close)
        self.start()

    def start(self) -> None:
        raft = os.path.join(self.directory, "raft")
        self.segments = SegmentLog.open(raft, segment_bytes_max=400)
        self.machine = StateMachine(os.path.join(self.directory, "state.db"),
                                    BlobStore(os.path.join(self.directory, "blobs")), {"put": put})
        self.snapshots = SnapshotStore(os.path.join(raft, "snapshots"))
        hard_state_file = HardStateFile(os.path.join(raft, "hardstate"))
        log = open_raft_log(self.segments, self.machine, self.snapshots, CONFIG)
        config = self.machine.configuration
        voters = decode_configuration(config).voters if config else self.voters
        learners = decode_configuration(config).learners if config else frozenset()
        core = RaftCore(CONFIG, self.name, log, hard_state_file.load(), voters, random.Random(1),
                        learners=learners)
        self.driver = RaftDriver(core, self.segments, hard_state_file, self.machine, self.clock,
                                 synchronous, synchronous, send=self.network.send,
                                 snapshots=self.snapshots, chunk_bytes=self.chunk_bytes)
        self.driver.start()

    def close(self) -> None:
        if self.driver is not None:
            self.driver.stop()
            self.driver = None
            self.segments.close()
            self.machine.close()

    def value(self, key):
        row = sqlite3.connect(self.machine.db_path).execute(
            "SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None


class DriverSnapshotTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.network = Network()
        self.a = Node(self, self.network, "a", {"a"})
        self.network.flush()

    def propose(self, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            self.assertEqual(self.successResultOf(self.a.driver.propose(command(f"k{i}", i))), i)
            self.network.flush()

    def heartbeats(self, times: int = 10) -> None:
        for _ in range(times):
            for node in self.network.nodes.values():
                if node.driver is not None:
                    node.clock.advance(0.1)
            self.network.flush()

    def test_snapshot_and_compaction(self) -> None:
        """
        The driver takes a snapshot when the policy says so and deletes the
        segment files before the trailing window (paper section 7).
        """
        self.propose(20)
        newest = self.a.snapshots.newest()
        self.assertGreaterEqual(newest.index, 15)
        self.assertEqual(self.a.driver.core.log.snapshot_index, newest.index)
        self.assertGreater(self.a.segments.first_index, 1)
        self.assertLessEqual(self.a.segments.first_index, newest.index + 1 - CONFIG.snapshot_trailing_entries)
        snapshot_files = [n for n in os.listdir(self.a.snapshots.directory) if n.endswith(".snap")]
        self.assertEqual(len(snapshot_files), 2)

    def test_restart_after_compaction(self) -> None:
        """A compacted node restarts from its log and snapshot and keeps taking proposals."""
        self.propose(20)
        self.a.close()
        self.a.start()
        self.network.flush()
        self.propose(3, start=20)
        self.assertEqual(self.a.value("k22"), 22)
        self.assertEqual(self.a.machine.last_applied, self.a.segments.last_index)

    def test_new_member_gets_snapshot(self) -> None:
        """
        A learner added with an empty data directory receives the snapshot
        in chunks, restores it (rows and blobs), then the entries after it
        (paper section 7; thesis 4.2.1).
        """
        self.propose(20)
        b = Node(self, self.network, "b", ())
        restored = []
        b.driver.on_restored(restored.append)
        self.a.driver.core.propose_config_change(add_learner="b")
        self.a.driver._pump()
        self.heartbeats()
        chunks = [m for m in self.network.sent if isinstance(m, InstallSnapshot)]
        self.assertGreater(len(chunks), 1)
        self.assertTrue(all(len(m.data) <= 300 for m in chunks))
        self.assertEqual([m.index for m in restored], [chunks[-1].index])
        self.propose(2, start=20)
        self.heartbeats(2)
        self.assertEqual(b.machine.last_applied, self.a.machine.last_applied)
        self.assertEqual([b.value(f"k{i}") for i in (0, 19, 21)], [0, 19, 21])
        self.assertEqual(b.machine.blobs.read(b.machine.blobs.write(b"blob 3")), b"blob 3")
        self.assertEqual(b.segments.first_index, chunks[-1].index + 1)
        self.assertEqual(b.snapshots.newest().index, chunks[-1].index)

        # b restarts from its snapshot and log alone.
        b.close()
        b.start()
        self.assertEqual(b.driver.core.learners, {"b"})
        self.propose(1, start=22)
        self.heartbeats(2)
        self.assertEqual(b.value("k22"), 22)

    def test_corrupt_transfer_changes_nothing(self) -> None:
        """
        A snapshot damaged on the way is refused when its last chunk is
        checked: the follower stops writing (like any storage failure),
        never answers that it installed it, and its log and state are
        unchanged, so a restart starts clean.
        """
        self.propose(12)
        b = Node(self, self.network, "b", ())
        send = self.network.send

        def corrupting(message):
            if isinstance(message, InstallSnapshot) and message.offset == 0 and message.data:
                data = bytearray(message.data)
                data[-1] ^= 0xFF
                message = attrs.evolve(message, data=bytes(data))
            send(message)

        self.network.send = corrupting
        self.a.driver._send = corrupting
        self.a.driver.core.propose_config_change(add_learner="b")
        self.a.driver._pump()
        self.heartbeats()
        self.assertIsNotNone(b.driver._failure)
        self.assertIn("checksum", str(b.driver._failure))
        self.assertEqual(b.machine.last_applied, 0)
        self.assertIsNone(b.snapshots.newest())
        done = [m for m in self.network.sent if isinstance(m, InstallSnapshotResponse) and m.done]
        self.assertEqual(done, [])
        self.flushLoggedErrors()

    def test_crash_between_snapshot_file_and_restore(self) -> None:
        """
        A follower whose state machine is behind its newest snapshot (it
        stopped after making the file durable) restores it at start, and
        its log is reset to continue after it.
        """
        self.propose(12)
        b = Node(self, self.network, "b", ())
        meta = self.a.snapshots.newest()
        b.close()
        offset = 0
        while True:
            data, total = self.a.snapshots.read_chunk(meta.index, offset, 100)
            b.snapshots.write_chunk(offset, data)
            offset += len(data)
            if offset >= total:
                break
        b.snapshots.finish_incoming(meta)
        b.start()
        self.assertEqual(b.machine.last_applied, meta.index)
        self.assertEqual((b.segments.first_index, b.segments.last_index), (meta.index + 1, meta.index))
        self.assertEqual(b.driver.core.log.committed, meta.index)


class TailStartTests(SynchronousTestCase):
    def test_table(self) -> None:
        """
        The in-memory tail covers the unapplied entries and, with snapshots,
        the trailing window; the entry before it always has a known term.
        """
        snap = SnapshotMeta(index=100, term=3)
        on = RaftConfig(snapshot_entries=50, snapshot_trailing_entries=10)
        off = RaftConfig()
        cases = [
            # first, applied, snapshot, config, expected
            (1, 0, None, off, 1),
            (1, 40, None, off, 41),
            (1, 40, None, on, 1),
            (81, 120, snap, on, 91),
            (95, 120, snap, on, 96),
            (101, 120, snap, on, 101),
            (101, 100, snap, on, 101),
            (81, 120, snap, off, 121),
        ]
        for first, applied, snapshot, config, expected in cases:
            self.assertEqual(tail_start(first, applied, snapshot, config), expected,
                             (first, applied, snapshot, config.snapshots))
