"""
Tests for L{stalwart.cluster.raft.hardstate}: Raft's persistent term and vote
(Raft §5.1, Figure 2), replaced atomically.
"""

from __future__ import annotations

import os.path
import struct
import zlib

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.hardstate import HardState, HardStateFile, decode_hard_state, encode_hard_state
from stalwart.cluster.raft.segments.files import CorruptLogError, OSFileSystem
from stalwart.cluster.raft.segments.memfs import MemoryFileSystem


class _Crash(Exception):
    """The simulated power cut at a chosen step of a save."""


class CrashingFileSystem(MemoryFileSystem):
    """
    A L{MemoryFileSystem} whose named operation raises L{_Crash} instead of
    running, to stop a save at that step.
    """

    crash_at = ""

    def rename(self, source: str, destination: str) -> None:
        if self.crash_at == "rename":
            raise _Crash()
        super().rename(source, destination)

    def fsync_dir(self, path: str) -> None:
        if self.crash_at == "fsync_dir":
            raise _Crash()
        super().fsync_dir(path)


class HardStateFormatTests(SynchronousTestCase):
    """
    The file's bytes: version, term, vote flag, vote, CRC.
    """

    def test_layout(self) -> None:
        """
        Version 1, u64 term, vote flag, u16 vote length, UTF-8 vote, then a
        CRC-32 of all that.
        """
        body = b"\x01" + (7).to_bytes(8, "big") + b"\x01" + b"\x00\x02" + b"n1"
        self.assertEqual(encode_hard_state(HardState(7, "n1")), body + struct.pack(">I", zlib.crc32(body)))

    def test_round_trip(self) -> None:
        """
        Every state decodes to itself, including no vote, an empty node id and
        a non-ASCII one.
        """
        for state in [HardState(), HardState(1, None), HardState(2**64 - 1, ""), HardState(3, "nœud-é")]:
            self.assertEqual(decode_hard_state(encode_hard_state(state)), state)

    def test_rejects(self) -> None:
        """
        Damaged bytes raise L{ValueError} saying what is wrong.
        """
        good = encode_hard_state(HardState(7, "n1"))
        cases = {
            "5 bytes, too short": good[:5],
            "unknown format version 2": b"\x02" + good[1:],
            "CRC mismatch": good[:3] + b"\xff" + good[4:],
            "19 bytes, expected 18": good + b"\x00",
        }
        for expected, data in cases.items():
            with self.assertRaises(ValueError) as caught:
                decode_hard_state(data)
            self.assertIn(expected, str(caught.exception))

    def test_validation(self) -> None:
        """
        A term must be a non-negative u64 and a vote a string or None.
        """
        for term, vote in [(-1, None), (2**64, None), (1, 5)]:
            self.assertRaises(ValueError, HardState, term, vote)


class HardStateFileTestsMixin:
    """
    L{HardStateFile} on any file system.
    """

    def test_missing_file(self) -> None:
        """
        With no file yet, the state is term 0 and no vote.
        """
        self.assertEqual(HardStateFile(self.path, self.fs).load(), HardState())

    def test_round_trip(self) -> None:
        """
        A saved state loads back, and the latest save wins, also in a new
        L{HardStateFile}.
        """
        file = HardStateFile(self.path, self.fs)
        file.save(HardState(1, "a"))
        self.assertEqual(file.load(), HardState(1, "a"))
        file.save(HardState(2, None))
        self.assertEqual(HardStateFile(self.path, self.fs).load(), HardState(2, None))
        self.assertFalse(self.fs.exists(self.path + ".tmp"))

    def test_stale_temporary_file(self) -> None:
        """
        A C{.tmp} file left by a crash is ignored by load and replaced by the
        next save.
        """
        file = HardStateFile(self.path, self.fs)
        file.save(HardState(1, "a"))
        self.write(self.path + ".tmp", b"half a state")
        self.assertEqual(file.load(), HardState(1, "a"))
        file.save(HardState(2, "b"))
        self.assertEqual(file.load(), HardState(2, "b"))

    def test_corrupt_file(self) -> None:
        """
        A damaged file raises L{CorruptLogError} with one line naming the
        file and the problem.
        """
        HardStateFile(self.path, self.fs).save(HardState(5, "n2"))
        self.write(self.path, encode_hard_state(HardState(5, "n3"))[:-1] + b"\x00")
        error = self.assertRaises(CorruptLogError, HardStateFile(self.path, self.fs).load)
        self.assertEqual(
            str(error), f"raft hard state damaged: {self.path} offset 0: CRC mismatch; refusing to start"
        )


class HardStateMemoryTests(HardStateFileTestsMixin, SynchronousTestCase):
    """
    L{HardStateFile} on the in-memory file system, with crashes mid-save.
    """

    def setUp(self) -> None:
        self.fs = CrashingFileSystem()
        self.path = "/data/raft/hardstate"

    def write(self, path: str, data: bytes) -> None:
        if self.fs.exists(path):
            self.fs.remove(path)
        handle = self.fs.open_append(path)
        handle.write(data)
        handle.sync()
        self.fs.fsync_dir(os.path.dirname(path))

    def test_crash_before_rename(self) -> None:
        """
        A crash after writing the temporary file but before the rename keeps
        the old state.
        """
        HardStateFile(self.path, self.fs).save(HardState(1, "a"))
        self.fs.crash_at = "rename"
        self.assertRaises(_Crash, HardStateFile(self.path, self.fs).save, HardState(2, "b"))
        self.fs.crash()
        self.fs.crash_at = ""
        self.assertEqual(HardStateFile(self.path, self.fs).load(), HardState(1, "a"))

    def test_crash_before_directory_fsync(self) -> None:
        """
        A crash after the rename but before the directory fsync keeps a whole
        state: here the old one, as the rename was not yet durable.
        """
        HardStateFile(self.path, self.fs).save(HardState(1, "a"))
        self.fs.crash_at = "fsync_dir"
        self.assertRaises(_Crash, HardStateFile(self.path, self.fs).save, HardState(2, "b"))
        self.fs.crash()
        self.fs.crash_at = ""
        self.assertEqual(HardStateFile(self.path, self.fs).load(), HardState(1, "a"))

    def test_save_is_durable(self) -> None:
        """
        Once L{HardStateFile.save} returns, a crash keeps the new state.
        """
        HardStateFile(self.path, self.fs).save(HardState(1, "a"))
        HardStateFile(self.path, self.fs).save(HardState(2, "b"))
        self.fs.crash()
        self.assertEqual(HardStateFile(self.path, self.fs).load(), HardState(2, "b"))


class HardStateDiskTests(HardStateFileTestsMixin, SynchronousTestCase):
    """
    L{HardStateFile} on the real file system, in a temporary directory.
    """

    def setUp(self) -> None:
        self.fs = OSFileSystem()
        self.path = os.path.join(os.path.abspath(self.mktemp()), "raft", "hardstate")

    def write(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
