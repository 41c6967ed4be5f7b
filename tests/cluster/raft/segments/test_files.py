"""
Tests for L{stalwart.cluster.raft.segments.files.SegmentLog}: appending,
reading, rolling and truncating (Raft §5.3), against the in-memory file
system and against the real one in a temporary directory.
"""

from __future__ import annotations

import os.path
import threading

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.segments.files import CorruptLogError, OSFileSystem, SegmentLog
from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    Record,
    segment_file_name,
)
from stalwart.cluster.raft.segments.memfs import MemoryFileSystem


def records(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Record]:
    """
    @return: records C{lo} to C{hi} inclusive, with recognisable payloads of
        C{size} bytes.
    """
    return [Record(term=term, index=i, payload=(b"%d:" % i).ljust(size, b".")) for i in range(lo, hi + 1)]


FRAME = RECORD_HEADER_BYTES + 10
"""Bytes one record from L{records} takes in a file."""


class MemoryDisk:
    """
    Test mixin: the log on a L{MemoryFileSystem}, with raw access to files.
    """

    def make_disk(self) -> None:
        self.fs = MemoryFileSystem()
        self.directory = "/data/raft"

    def path(self, base: int) -> str:
        return os.path.join(self.directory, segment_file_name(base))

    def raw(self, path: str) -> bytes:
        return self.fs.read_bytes(path)

    def overwrite(self, path: str, offset: int, data: bytes) -> None:
        self.fs.write_bytes(path, offset, data)

    def create(self, path: str, data: bytes) -> None:
        handle = self.fs.open_append(path)
        handle.write(data)
        handle.sync()
        handle.close()
        self.fs.fsync_dir(self.directory)

    def set_size(self, path: str, size: int) -> None:
        handle = self.fs.open_append(path)
        handle.truncate(size)
        handle.sync()


class RealDisk(MemoryDisk):
    """
    Test mixin: the log in a temporary directory on the real file system.
    """

    def make_disk(self) -> None:
        self.fs = OSFileSystem()
        self.directory = os.path.abspath(self.mktemp())

    def raw(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def overwrite(self, path: str, offset: int, data: bytes) -> None:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def create(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    def set_size(self, path: str, size: int) -> None:
        os.truncate(path, size)


class LogFixture:
    """
    Test mixin: open logs that are closed at the end of the test.
    """

    def setUp(self) -> None:
        self.make_disk()

    def open(self, segment_bytes_max: int = 64 * 1024 * 1024) -> SegmentLog:
        log = SegmentLog.open(self.directory, segment_bytes_max=segment_bytes_max, fs=self.fs)
        self.addCleanup(log.close)
        return log

    def reopen(self, log: SegmentLog, segment_bytes_max: int = 64 * 1024 * 1024) -> SegmentLog:
        log.close()
        return self.open(segment_bytes_max)

    def assertLog(self, log: SegmentLog, expected: list[Record]) -> None:
        """
        The log holds exactly C{expected}, by L{SegmentLog.read} and
        L{SegmentLog.term_at}.
        """
        first = expected[0].index if expected else log.first_index
        self.assertEqual((log.first_index, log.last_index), (first, first + len(expected) - 1))
        if expected:
            self.assertEqual(log.read(first, log.last_index), expected)
        self.assertEqual([log.term_at(r.index) for r in expected], [r.term for r in expected])

    def segment_files(self) -> list[str]:
        return sorted(n for n in self.fs.listdir(self.directory) if n.endswith(".seg"))


class SegmentLogTestsMixin(LogFixture):
    """
    Behaviour of L{SegmentLog} on any file system.
    """

    def test_new_log(self) -> None:
        """
        A new log creates its directory, is empty with first index 1, and
        knows term 0 for index 0 only.
        """
        log = self.open()
        self.assertTrue(self.fs.exists(self.directory))
        self.assertEqual((log.first_index, log.last_index, log.term_at(0)), (1, 0, 0))
        self.assertRaises(IndexError, log.term_at, 1)
        self.assertRaises(IndexError, log.read, 1, 1)
        self.assertEqual(log.read(1, 0), [])

    def test_round_trip(self) -> None:
        """
        Appended records read back equal, with their terms, before and after
        a sync, and after reopening.
        """
        log = self.open()
        expected = records(1, 3, term=1) + records(4, 6, term=2) + [Record(term=5, index=7, payload=b"")]
        log.append(expected[:4])
        log.append(expected[4:])
        self.assertLog(log, expected)
        log.sync()
        self.assertLog(log, expected)
        self.assertEqual(log.read(3, 5), expected[2:5])
        self.assertLog(self.reopen(log), expected)

    def test_large_payload(self) -> None:
        """
        A payload larger than the write buffer (3 MiB) round-trips, between
        small records.
        """
        log = self.open()
        big = Record(term=1, index=2, payload=bytes(range(256)) * (3 * 4096))
        expected = records(1, 1) + [big] + records(3, 3)
        log.append(expected)
        log.sync()
        self.assertLog(self.reopen(log), expected)

    def test_append_must_continue_the_log(self) -> None:
        """
        Records whose indexes do not continue C{last_index + 1, + 2, ...} or
        whose terms decrease are refused with nothing written.
        """
        log = self.open()
        log.append(records(1, 2, term=3))
        bad = [
            records(4, 4, term=3),
            records(2, 2, term=3),
            records(3, 3, term=2),
            records(3, 3, term=3) + records(5, 5, term=3),
            records(3, 3, term=4) + records(4, 4, term=3),
        ]
        for batch in bad:
            self.assertRaises(ValueError, log.append, batch)
        log.append([])
        self.assertLog(log, records(1, 2, term=3))

    def test_roll_at_size_limit(self) -> None:
        """
        A new file starts when the next record would take the active one past
        C{segment_bytes_max}; each file is named after its first index.
        """
        log = self.open(segment_bytes_max=SEGMENT_HEADER_BYTES + 3 * FRAME)
        expected = records(1, 10)
        log.append(expected[:4])
        log.append(expected[4:])
        log.sync()
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (1, 4, 7, 10)])
        for name in self.segment_files():
            self.assertLessEqual(len(self.raw(os.path.join(self.directory, name))), SEGMENT_HEADER_BYTES + 3 * FRAME)
        self.assertLog(log, expected)
        self.assertLog(self.reopen(log, SEGMENT_HEADER_BYTES + 3 * FRAME), expected)

    def test_record_larger_than_limit(self) -> None:
        """
        A record larger than C{segment_bytes_max} goes into a file of its own.
        """
        log = self.open(segment_bytes_max=200)
        expected = records(1, 1) + [Record(term=1, index=2, payload=b"x" * 500)] + records(3, 3)
        log.append(expected)
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (1, 2, 3)])
        self.assertEqual(len(self.raw(self.path(2))), SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 500)
        self.assertLog(log, expected)

    def test_read_across_segments(self) -> None:
        """
        One read may span several files.
        """
        log = self.open(segment_bytes_max=SEGMENT_HEADER_BYTES + 2 * FRAME)
        expected = records(1, 9)
        log.append(expected)
        self.assertEqual(log.read(2, 8), expected[1:8])
        self.assertEqual(log.read(5, 5), [expected[4]])

    def test_truncate_suffix_in_segment(self) -> None:
        """
        Raft §5.3: dropping the records from a conflicting index on, in the
        middle of a file; appends then continue at that index, also after a
        reopen.
        """
        log = self.open()
        log.append(records(1, 6, term=1))
        log.sync()
        log.truncate_suffix(4)
        self.assertLog(log, records(1, 3, term=1))
        log.append(records(4, 5, term=2))
        log.sync()
        expected = records(1, 3, term=1) + records(4, 5, term=2)
        self.assertLog(log, expected)
        self.assertLog(self.reopen(log), expected)

    def test_truncate_suffix_across_segments(self) -> None:
        """
        Truncating into an earlier file removes the later files.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 10, term=1))
        log.sync()
        log.truncate_suffix(5)
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (1, 4)])
        log.append(records(5, 8, term=3))
        log.sync()
        expected = records(1, 4, term=1) + records(5, 8, term=3)
        self.assertLog(log, expected)
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (1, 4, 7)])
        self.assertLog(self.reopen(log, limit), expected)

    def test_truncate_suffix_at_segment_start(self) -> None:
        """
        Truncating exactly at a file's first index removes that file.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 9))
        log.truncate_suffix(4)
        self.assertEqual(self.segment_files(), [segment_file_name(1)])
        self.assertLog(self.reopen(log, limit), records(1, 3))

    def test_truncate_suffix_everything(self) -> None:
        """
        Truncating at the first index empties the log; appends start again
        at that index.
        """
        log = self.open()
        log.append(records(1, 3))
        log.truncate_suffix(1)
        self.assertLog(log, [])
        log = self.reopen(log)
        self.assertLog(log, [])
        log.append(records(1, 2, term=2))
        self.assertLog(log, records(1, 2, term=2))

    def test_truncate_suffix_bounds(self) -> None:
        """
        Truncating after the last index does nothing; before the first index
        is refused.
        """
        log = self.open()
        log.append(records(1, 3))
        log.truncate_suffix(4)
        log.truncate_suffix(40)
        self.assertLog(log, records(1, 3))
        self.assertRaises(ValueError, log.truncate_suffix, 0)

    def test_truncate_prefix(self) -> None:
        """
        Compaction removes whole files whose records are all before the
        index; C{first_index} moves to the first kept file, the term before
        it is unknown (0), and the log reopens the same.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 10))
        log.sync()
        log.truncate_prefix(6)
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (4, 7, 10)])
        self.assertLog(log, records(4, 10))
        self.assertEqual(log.term_at(3), 0)
        self.assertRaises(IndexError, log.term_at, 2)
        self.assertRaises(IndexError, log.read, 3, 4)
        log.truncate_prefix(7)
        self.assertLog(self.reopen(log, limit), records(7, 10))

    def test_truncate_prefix_keeps_last_segment(self) -> None:
        """
        The last (active) file is never removed, even when compaction passes
        all of the log.
        """
        log = self.open(segment_bytes_max=SEGMENT_HEADER_BYTES + 3 * FRAME)
        log.append(records(1, 5))
        log.truncate_prefix(100)
        self.assertEqual(self.segment_files(), [segment_file_name(4)])
        self.assertLog(log, records(4, 5))

    def test_truncate_suffix_after_prefix(self) -> None:
        """
        After compaction, truncating at the first index keeps that index as
        the start: appends continue there, also after a reopen.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 8))
        log.truncate_prefix(4)
        log.truncate_suffix(4)
        self.assertEqual((log.first_index, log.last_index, log.term_at(3)), (4, 3, 0))
        log = self.reopen(log, limit)
        self.assertEqual((log.first_index, log.last_index), (4, 3))
        log.append(records(4, 4, term=2))
        self.assertLog(log, records(4, 4, term=2))

    def test_reset(self) -> None:
        """
        Installing a snapshot the log does not match drops every file and
        continues the log after the snapshot (paper section 7): the empty
        log starts at the new index, takes appends there and reopens the
        same.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 8))
        log.sync()
        log.reset(51)
        self.assertEqual(self.segment_files(), [segment_file_name(51)])
        self.assertEqual((log.first_index, log.last_index, log.term_at(50)), (51, 50, 0))
        log = self.reopen(log, limit)
        self.assertEqual((log.first_index, log.last_index), (51, 50))
        log.append(records(51, 55, term=3))
        log.sync()
        self.assertLog(self.reopen(log, limit), records(51, 55, term=3))
        self.assertRaises(ValueError, log.append, records(57, 57, term=3))

    def test_compacted_log_reopens(self) -> None:
        """
        A log whose first file starts above index 1 (compacted, then
        appended to) opens with that first index and keeps its records.
        """
        limit = SEGMENT_HEADER_BYTES + 2 * FRAME
        log = self.open(segment_bytes_max=limit)
        log.append(records(1, 9))
        log.sync()
        log.truncate_prefix(5)
        log.append(records(10, 12, term=2))
        log.sync()
        self.assertLog(self.reopen(log, limit), records(5, 9) + records(10, 12, term=2))

    def test_closed(self) -> None:
        """
        A closed log refuses writes.
        """
        log = self.open()
        log.close()
        self.assertRaises(ValueError, log.append, records(1, 1))
        self.assertRaises(ValueError, log.sync)


class SegmentLogMemoryTests(SegmentLogTestsMixin, MemoryDisk, SynchronousTestCase):
    """
    L{SegmentLog} on the in-memory file system, plus what only it can show:
    when files are synced.
    """

    def test_append_does_not_sync(self) -> None:
        """
        Appending writes without fsync; L{SegmentLog.sync} does one fdatasync
        and, the first time, a directory fsync for the new file; syncing
        again with nothing new does nothing.
        """
        log = self.open()
        log.append(records(1, 3))
        self.assertEqual((self.fs.syncs, self.fs.dir_syncs), (0, 0))
        log.sync()
        self.assertEqual((self.fs.syncs, self.fs.dir_syncs), (1, 1))
        log.sync()
        log.append(records(4, 4))
        log.sync()
        self.assertEqual((self.fs.syncs, self.fs.dir_syncs), (2, 1))

    def test_roll_syncs_finished_segment(self) -> None:
        """
        Rolling to a new file first syncs the finished one, so only the last
        file can be torn by a crash.
        """
        log = self.open(segment_bytes_max=SEGMENT_HEADER_BYTES + 3 * FRAME)
        log.append(records(1, 4))
        self.assertEqual(self.fs.syncs, 1)
        self.assertEqual(len(self.fs.read_bytes(self.path(1))), SEGMENT_HEADER_BYTES + 3 * FRAME)

    def test_reset_crash_leaves_contiguous_log(self) -> None:
        """
        A crash at any point of a reset leaves a log that opens: a prefix
        of the old one (which the snapshot supersedes at start) or the new
        empty one.
        """
        limit = SEGMENT_HEADER_BYTES + 3 * FRAME
        for crash_after in range(1, 6):
            self.make_disk()
            log = self.open(segment_bytes_max=limit)
            log.append(records(1, 8))
            log.sync()
            syncs = [0]
            fsync_dir = self.fs.fsync_dir

            def counting(path, fsync_dir=fsync_dir, crash_after=crash_after):
                syncs[0] += 1
                fsync_dir(path)
                if syncs[0] == crash_after:
                    raise OSError("power cut")

            self.fs.fsync_dir = counting
            try:
                log.reset(20)
            except OSError:
                pass
            self.fs.crash()
            del self.fs.fsync_dir
            reopened = self.open(segment_bytes_max=limit)
            if reopened.first_index == 20:
                self.assertEqual(reopened.last_index, 19)
            else:
                self.assertEqual(reopened.first_index, 1)
                self.assertLog(reopened, records(1, reopened.last_index))

    def test_term_at_reads_no_file(self) -> None:
        """
        L{SegmentLog.term_at} and the index bounds come from memory: they work
        with the files gone.  Reading a record whose file is gone is damage.
        """
        log = self.open()
        log.append(records(1, 3, term=7))
        log.sync()
        self.fs.remove(self.path(1))
        self.assertEqual((log.term_at(2), log.last_index), (7, 3))
        error = self.assertRaises(CorruptLogError, log.read, 1, 1)
        self.assertIn(f"{self.path(1)} offset 20: file missing", str(error))


class SegmentLogDiskTests(SegmentLogTestsMixin, RealDisk, SynchronousTestCase):
    """
    L{SegmentLog} on the real file system, in a temporary directory.
    """


class SegmentLogThreadTests(LogFixture, RealDisk, SynchronousTestCase):
    """
    The index is shared between the writer thread and readers.
    """

    def test_concurrent_readers(self) -> None:
        """
        While one thread appends, syncs and rolls, another sees every index
        up to C{last_index} with its term and payload.
        """
        log = self.open(segment_bytes_max=SEGMENT_HEADER_BYTES + 50 * FRAME)
        expected = records(1, 1000, size=10)
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for start in range(0, 1000, 7):
                    log.append(expected[start : start + 7])
                    log.sync()
            except BaseException as e:
                errors.append(e)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while writer.is_alive() or log.last_index < 1000:
                last = log.last_index
                if last:
                    self.assertEqual(log.term_at(last), 1)
                    self.assertEqual(log.read(max(1, last - 20), last), expected[max(0, last - 21) : last])
                if errors:
                    break
        finally:
            writer.join()
        self.assertEqual(errors, [])
        self.assertLog(log, expected)
