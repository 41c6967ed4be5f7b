"""Tests for L{stalwart.store.apply}: exactly-once, deterministic application."""

import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import ENTRY_NOOP, Entry
from stalwart.store.apply import StateMachine
from stalwart.store.blobs import BlobStore
from stalwart.store.commands import Command, encode_command
from stalwart.store.refusal import Refused


def put(ctx):
    ctx.tx.execute("INSERT INTO meta VALUES (?, ?)", (ctx.command.args["key"], ctx.command.args["value"]))
    return ctx.command.args["value"]


def put_then_refuse(ctx):
    put(ctx)
    raise Refused("nope", "refused after writing")


def put_then_bug(ctx):
    put(ctx)
    return {}["missing"]


def disk_error(ctx):
    raise sqlite3.OperationalError("disk I/O error")


HANDLERS = {"put": put, "refuse": put_then_refuse, "bug": put_then_bug, "disk": disk_error}


def entry(index, kind, **args):
    return Entry(term=1, index=index, data=encode_command(Command(kind=kind, args=args)))


class StateMachineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "state.db")
        self.machine = self.open()

    def open(self) -> StateMachine:
        machine = StateMachine(self.path, BlobStore(os.path.join(self.dir, "blobs")), HANDLERS)
        self.addCleanup(machine.close)
        return machine

    def value(self, key):
        row = sqlite3.connect(self.path).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def test_results_and_last_applied(self) -> None:
        """A batch returns one result per entry and moves last_applied, durably across reopening."""
        results = self.machine.apply([entry(1, "put", key="a", value=1), Entry(term=1, index=2, kind=ENTRY_NOOP)])
        self.assertEqual(results, [1, None])
        self.assertEqual(self.open().last_applied, 2)

    def test_refusal_rolls_back_entry_only(self) -> None:
        """A refused entry leaves no trace; the entries around it are applied."""
        results = self.machine.apply([
            entry(1, "put", key="a", value=1),
            entry(2, "refuse", key="b", value=2),
            entry(3, "put", key="c", value=3),
        ])
        self.assertEqual(results[1], Refused("nope", "refused after writing"))
        self.assertEqual((self.value("a"), self.value("b"), self.value("c")), (1, None, 3))

    def test_handler_bug_is_server_fail(self) -> None:
        """A bug in a handler becomes that entry's serverFail result, rolled back, and is logged."""
        results = self.machine.apply([entry(1, "bug", key="a", value=1), entry(2, "put", key="b", value=2)])
        self.assertEqual(results[0].code, "serverFail")
        self.assertEqual((self.value("a"), self.value("b")), (None, 2))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_local_error_aborts_batch(self) -> None:
        """An I/O error of this node is raised and nothing of the batch is kept, so it is applied again later."""
        with self.assertRaises(sqlite3.OperationalError):
            self.machine.apply([entry(1, "put", key="a", value=1), entry(2, "disk")])
        self.assertEqual((self.value("a"), self.machine.last_applied, self.open().last_applied), (None, 0, 0))

    def test_unknown_and_garbage(self) -> None:
        """An undecodable entry or unknown command kind is refused deterministically."""
        results = self.machine.apply([Entry(term=1, index=1, data=b"\x09junk"), entry(2, "nosuch")])
        self.assertEqual([r.code for r in results], ["badCommand", "unknownCommand"])
        self.assertEqual(self.machine.last_applied, 2)

    def test_in_order_only(self) -> None:
        """Applying anything but the next index is a bug and asserts."""
        with self.assertRaises(AssertionError):
            self.machine.apply([entry(2, "put", key="a", value=1)])

    def test_raft_entries_are_not_commands(self) -> None:
        """No-ops and configuration entries move last_applied and change nothing else."""
        from stalwart.cluster.raft.messages import ENTRY_CONFIG, Configuration, encode_configuration

        config = encode_configuration(Configuration(voters=frozenset({"n1"}), learners=frozenset()))
        results = self.machine.apply([Entry(term=1, index=1, kind=ENTRY_NOOP), Entry(term=1, index=2, kind=ENTRY_CONFIG, data=config)])
        self.assertEqual(results, [None, None])
        self.assertEqual(self.machine.last_applied, 2)

    def test_removed_members_kept(self) -> None:
        """Members a configuration drops are remembered (across reopening) until one adds them again."""
        from stalwart.cluster.raft.messages import ENTRY_CONFIG, Configuration, encode_configuration

        def config(index, voters, learners=()):
            data = encode_configuration(Configuration(voters=frozenset(voters), learners=frozenset(learners)))
            return Entry(term=1, index=index, kind=ENTRY_CONFIG, data=data)

        self.machine.apply([config(1, {"a"}), config(2, {"a"}, {"b"}), config(3, {"a", "b"}), config(4, {"a"})])
        self.assertEqual(self.open().removed_members, {"b"})
        self.machine.apply([config(5, {"a"}, {"c"}), config(6, {"a"})])
        self.assertEqual(self.open().removed_members, {"b", "c"})
        self.machine.apply([config(7, {"a"}, {"b"})])
        self.assertEqual(self.open().removed_members, {"c"})

    def test_configuration_and_term_kept(self) -> None:
        """The newest applied configuration and the applied entry's term survive reopening (a restart starts from them)."""
        from stalwart.cluster.raft.messages import ENTRY_CONFIG, Configuration, encode_configuration

        self.assertEqual((self.machine.configuration, self.machine.last_applied_term, self.machine.cluster_id), (None, 0, None))
        first = encode_configuration(Configuration(voters=frozenset({"n1"}), learners=frozenset()))
        second = encode_configuration(Configuration(voters=frozenset({"n1"}), learners=frozenset({"n2"})))
        self.machine.apply([Entry(term=1, index=1, kind=ENTRY_CONFIG, data=first),
                            Entry(term=2, index=2, kind=ENTRY_CONFIG, data=second),
                            Entry(term=3, index=3, kind=ENTRY_NOOP)])
        reopened = self.open()
        self.assertEqual((self.machine.configuration, self.machine.last_applied_term), (second, 3))
        self.assertEqual((reopened.configuration, reopened.last_applied_term), (second, 3))
        self.assertEqual((self.machine.cluster_id, reopened.cluster_id), ("n1", "n1"))
        self.assertEqual(reopened.removed_members, frozenset())
        # A failed batch changes neither.
        with self.assertRaises(sqlite3.OperationalError):
            self.machine.apply([Entry(term=4, index=4, kind=ENTRY_CONFIG, data=first), entry(5, "disk")])
        self.assertEqual((self.open().configuration, self.open().last_applied_term), (second, 3))


class BlobSyncTests(SynchronousTestCase):
    def test_blobs_synced_before_commit(self) -> None:
        """Blob files written by a batch are made durable while its transaction is still open, once per batch."""
        directory = self.mktemp()
        os.makedirs(directory)
        seen = []

        class SpyBlobs(BlobStore):
            def sync(self):
                seen.append((list(self._unsynced), machine._conn.in_transaction))
                super().sync()

        def upload(ctx):
            return ctx.blobs.write(ctx.command.body)

        machine = StateMachine(os.path.join(directory, "state.db"), SpyBlobs(os.path.join(directory, "blobs")), {"up": upload})
        self.addCleanup(machine.close)
        entries = [Entry(term=1, index=i, data=encode_command(Command(kind="up", body=b"blob %d" % i))) for i in (1, 2)]
        blob_ids = machine.apply(entries)
        self.assertEqual(len(seen), 1)
        paths, in_transaction = seen[0]
        self.assertTrue(in_transaction)
        self.assertEqual(sorted(paths), sorted(machine.blobs.path(b) for b in blob_ids))
        self.assertEqual(machine.blobs._unsynced, [])
        self.assertEqual(machine.blobs.read(blob_ids[0]), b"blob 1")
