"""
Tests for L{stalwart.cluster.raft.segments.memfs}: the in-memory file system
and its crash simulation.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.segments.memfs import MemoryFileSystem


class MemoryFileSystemTests(SynchronousTestCase):
    """
    L{MemoryFileSystem.crash} keeps exactly what fsync made durable.
    """

    def setUp(self) -> None:
        self.fs = MemoryFileSystem()
        self.fs.makedirs("/d")

    def write(self, path: str, data: bytes, sync: bool = True) -> None:
        handle = self.fs.open_append(path)
        handle.write(data)
        if sync:
            handle.sync()
        handle.close()

    def test_files_and_directories(self) -> None:
        """
        Appends, reads, truncation, rename and remove behave like a disk's.
        """
        self.write("/d/a", b"hello ")
        self.write("/d/a", b"world")
        reader = self.fs.open_read("/d/a")
        self.assertEqual((reader.read_at(0, 5), reader.read_at(6, 100), reader.size()), (b"hello", b"world", 11))
        handle = self.fs.open_append("/d/a")
        handle.truncate(5)
        handle.write(b"!")
        self.assertEqual(self.fs.read_bytes("/d/a"), b"hello!")
        self.fs.rename("/d/a", "/d/b")
        self.assertEqual(self.fs.listdir("/d"), ["b"])
        self.fs.remove("/d/b")
        self.assertEqual((self.fs.listdir("/d"), self.fs.exists("/d/b"), self.fs.exists("/d")), ([], False, True))
        self.assertRaises(FileNotFoundError, self.fs.open_read, "/d/b")
        self.assertRaises(FileNotFoundError, self.fs.open_append, "/nowhere/x")

    def test_unsynced_bytes_lost(self) -> None:
        """
        A crash rolls a file back to its bytes at the last sync.
        """
        self.write("/d/a", b"durable")
        self.fs.fsync_dir("/d")
        self.write("/d/a", b" lost", sync=False)
        self.fs.crash()
        self.assertEqual(self.fs.read_bytes("/d/a"), b"durable")

    def test_truncation_unsynced(self) -> None:
        """
        A truncation not followed by a sync is undone by a crash.
        """
        self.write("/d/a", b"0123456789")
        self.fs.fsync_dir("/d")
        self.fs.open_append("/d/a").truncate(3)
        self.fs.crash()
        self.assertEqual(self.fs.read_bytes("/d/a"), b"0123456789")

    def test_names_need_directory_fsync(self) -> None:
        """
        A created, renamed or removed name is durable only after the directory
        is fsynced: without it, a new file vanishes and a removed one returns.
        """
        self.write("/d/kept", b"k")
        self.write("/d/old", b"o")
        self.fs.fsync_dir("/d")
        self.write("/d/new", b"n")
        self.fs.remove("/d/old")
        self.fs.rename("/d/kept", "/d/renamed")
        self.fs.crash()
        self.assertEqual(sorted(self.fs.listdir("/d")), ["kept", "old"])

    def test_torn_write(self) -> None:
        """
        C{torn_bytes} keeps that many unsynced bytes, as data or as zeros.
        """
        for zero_fill, expected in [(False, b"synced+to"), (True, b"synced+\0\0")]:
            self.write("/d/a", b"synced+")
            self.fs.fsync_dir("/d")
            self.write("/d/a", b"torn", sync=False)
            self.fs.crash(torn_bytes=2, zero_fill=zero_fill)
            self.assertEqual(self.fs.read_bytes("/d/a"), expected)
            self.fs.remove("/d/a")
            self.fs.fsync_dir("/d")

    def test_handles_die_with_the_crash(self) -> None:
        """
        Handles opened before a crash raise instead of writing to the
        rebooted disk.
        """
        self.write("/d/a", b"x")
        self.fs.fsync_dir("/d")
        handle = self.fs.open_append("/d/a")
        reader = self.fs.open_read("/d/a")
        self.fs.crash()
        self.assertRaises(OSError, handle.write, b"y")
        self.assertRaises(OSError, reader.read_at, 0, 1)

    def test_counts_syncs(self) -> None:
        """
        File and directory syncs are counted, for tests of the sync policy.
        """
        self.write("/d/a", b"x")
        self.fs.fsync_dir("/d")
        self.assertEqual((self.fs.syncs, self.fs.dir_syncs), (1, 1))
