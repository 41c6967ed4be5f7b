# -*- test-case-name: tests.store.test_snapshot -*-
"""
Tests for L{stalwart.store.snapshot}: state machine snapshots for Raft log
compaction and InstallSnapshot (extended Raft paper section 7).
"""

from __future__ import annotations

import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import ENTRY_CONFIG, Configuration, Entry, SnapshotMeta, encode_configuration
from stalwart.store.apply import StateMachine
from stalwart.store.blobs import BlobStore
from stalwart.store.commands import Command, encode_command
from stalwart.store.snapshot import SnapshotError, SnapshotStore


def put(ctx):
    ctx.tx.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ctx.command.args["key"], ctx.command.args["value"]))
    if "blob" in ctx.command.args:
        ctx.blobs.write(ctx.command.args["blob"].encode())
    return ctx.command.args["value"]


def entry(index, term=1, **args):
    return Entry(term=term, index=index, data=encode_command(Command(kind="put", args=args)))


CONFIG = encode_configuration(Configuration(voters={"a", "b"}))


class SnapshotTests(SynchronousTestCase):
    def node(self, name):
        directory = os.path.join(self.base, name)
        os.makedirs(directory, exist_ok=True)
        machine = StateMachine(os.path.join(directory, "state.db"), BlobStore(os.path.join(directory, "blobs")),
                               {"put": put})
        self.addCleanup(machine.close)
        return machine, SnapshotStore(os.path.join(directory, "raft", "snapshots"))

    def setUp(self) -> None:
        self.base = self.mktemp()
        self.leader, self.leader_snapshots = self.node("leader")
        self.leader.apply([
            entry(1, key="a", value=1, blob="first blob"),
            Entry(term=2, index=2, data=CONFIG, kind=ENTRY_CONFIG),
            entry(3, term=2, key="b", value=2, blob="second blob"),
        ])

    def value(self, machine, key):
        row = sqlite3.connect(machine.db_path).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def transfer(self, meta, chunk_bytes=100, corrupt=None):
        """Send the leader's snapshot to a follower in chunks; returns the follower's store."""
        follower, store = self.node("follower")
        offset = 0
        while True:
            data, total = self.leader_snapshots.read_chunk(meta.index, offset, chunk_bytes)
            if corrupt is not None and offset <= corrupt < offset + len(data):
                data = bytearray(data)
                data[corrupt - offset] ^= 0xFF
                data = bytes(data)
            store.write_chunk(offset, data)
            offset += len(data)
            if offset >= total:
                return follower, store

    def test_round_trip(self) -> None:
        """
        A snapshot taken on one node and sent in chunks restores on another:
        rows, blobs, last_applied, its term and the configuration (paper 7).
        """
        meta = self.leader_snapshots.take(self.leader)
        self.assertEqual(meta, SnapshotMeta(index=3, term=2, configuration=CONFIG))
        self.assertEqual(self.leader_snapshots.newest(), meta)
        follower, store = self.transfer(meta)
        store.finish_incoming(meta)
        self.assertEqual(store.restore(follower, meta.index), meta)
        self.assertEqual((follower.last_applied, follower.last_applied_term, follower.configuration), (3, 2, CONFIG))
        self.assertEqual((self.value(follower, "a"), self.value(follower, "b")), (1, 2))
        self.assertEqual(follower.blobs.read(self.leader.blobs.write(b"second blob")), b"second blob")
        follower.apply([entry(4, term=2, key="c", value=3)])
        self.assertEqual(self.value(follower, "c"), 3)

    def test_corrupt_chunk_refused(self) -> None:
        """A flipped byte anywhere is refused before anything is installed, with a one-line reason."""
        meta = self.leader_snapshots.take(self.leader)
        size = os.path.getsize(self.leader_snapshots.path(meta.index))
        for position in (0, 20, size // 2, size - 1):
            follower, store = self.transfer(meta, corrupt=position)
            error = self.assertRaises(SnapshotError, store.finish_incoming, meta)
            self.assertNotIn("\n", str(error))
            self.assertIsNone(store.newest())
            self.assertEqual(follower.last_applied, 0)
            follower.close()
            os.remove(follower.db_path)

    def test_torn_file_refused(self) -> None:
        """A snapshot file cut short (a torn write) is refused and the state is unchanged."""
        meta = self.leader_snapshots.take(self.leader)
        path = self.leader_snapshots.path(meta.index)
        os.truncate(path, os.path.getsize(path) - 10)
        follower, store = self.node("follower")
        follower.apply([entry(1, key="mine", value=9)])
        self.assertRaises(SnapshotError, store.verify, path)
        os.rename(path, os.path.join(store.directory, os.path.basename(path)))
        error = self.assertRaises(SnapshotError, store.restore, follower, meta.index)
        self.assertIn("torn", str(error))
        self.assertEqual((follower.last_applied, self.value(follower, "mine")), (1, 9))

    def test_restore_replaces_newer_local_state(self) -> None:
        """
        A follower whose state diverged is replaced wholly (its rows are
        gone), in one transaction that other connections see at once.
        """
        meta = self.leader_snapshots.take(self.leader)
        follower, store = self.transfer(meta)
        store.finish_incoming(meta)
        reader = sqlite3.connect(follower.db_path)
        follower.apply([entry(1, key="stray", value=7)])
        self.assertEqual(reader.execute("SELECT value FROM meta WHERE key = 'stray'").fetchone(), (7,))
        store.restore(follower, meta.index)
        self.assertIsNone(reader.execute("SELECT value FROM meta WHERE key = 'stray'").fetchone())
        self.assertEqual(reader.execute("SELECT value FROM meta WHERE key = 'last_applied'").fetchone(), (3,))

    def test_wrong_snapshot_refused(self) -> None:
        """A complete file that is not the announced snapshot is refused."""
        meta = self.leader_snapshots.take(self.leader)
        follower, store = self.transfer(meta)
        self.assertRaises(SnapshotError, store.finish_incoming, SnapshotMeta(index=4, term=2, configuration=CONFIG))

    def test_keeps_newest_two(self) -> None:
        """Older snapshots are pruned: the newest two stay, so a transfer of the previous one can finish."""
        taken = []
        for index in range(4, 8):
            self.leader.apply([entry(index, term=2, key=f"k{index}", value=index)])
            taken.append(self.leader_snapshots.take(self.leader).index)
        names = sorted(n for n in os.listdir(self.leader_snapshots.directory) if n.endswith(".snap"))
        self.assertEqual(len(names), 2)
        self.assertEqual(self.leader_snapshots.newest().index, 7)
        self.assertRaises(FileNotFoundError, self.leader_snapshots.read_chunk, 4, 0, 10)
        self.assertEqual(self.leader_snapshots.meta(6).index, 6)

    def test_chunks_resume_and_restart(self) -> None:
        """The incoming file takes chunks at increasing offsets; offset 0 starts it over."""
        meta = self.leader_snapshots.take(self.leader)
        follower, store = self.node("follower")
        data, total = self.leader_snapshots.read_chunk(meta.index, 0, 50)
        store.write_chunk(0, b"garbage that will be replaced")
        store.write_chunk(0, data)
        rest, _ = self.leader_snapshots.read_chunk(meta.index, 50, total)
        store.write_chunk(50, rest)
        store.finish_incoming(meta)
        self.assertEqual(store.restore(follower, 3), meta)
