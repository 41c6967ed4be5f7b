"""
Tests for L{stalwart.cluster.raft.segments.recovery}: what a crash leaves is
repaired (a torn tail is cut), and every other damage stops the node with a
one-line L{CorruptLogError} naming the file and offset (DESIGN.md section 4).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.segments.files import CorruptLogError
from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    Record,
    encode_record_header,
    segment_file_name,
)
from tests.cluster.raft.segments.test_files import FRAME, LogFixture, MemoryDisk, RealDisk, records

LIMIT = SEGMENT_HEADER_BYTES + 3 * FRAME
"""A segment size that holds three records from L{records}."""


def offset_of(index: int, base: int = 1) -> int:
    """
    @return: where record C{index} starts in the file starting at C{base},
        for records from L{records}.
    """
    return SEGMENT_HEADER_BYTES + (index - base) * FRAME


class RecoveryTestsMixin(LogFixture):
    """
    Damage and repair on any file system: bytes are changed directly.
    """

    def written(self, hi: int, limit: int = 64 * 1024 * 1024) -> None:
        """
        Write and sync records 1 to C{hi}, then close the log.
        """
        log = self.open(limit)
        log.append(records(1, hi))
        log.sync()
        log.close()

    def assertDamaged(self, path: str, offset: int, *details: str) -> CorruptLogError:
        """
        Opening the log fails with a one-line message naming C{path},
        C{offset} and each of C{details}.
        """
        error = self.assertRaises(CorruptLogError, self.open, LIMIT)
        message = str(error)
        self.assertTrue(message.startswith("raft log damaged: "), message)
        self.assertTrue(message.endswith("refusing to start"), message)
        self.assertNotIn("\n", message)
        self.assertIn(f"{path} offset {offset}: ", message)
        for detail in details:
            self.assertIn(detail, message)
        return error

    def assertCut(self, hi: int, limit: int = 64 * 1024 * 1024) -> None:
        """
        The log opens holding records 1 to C{hi}, accepts the next appends,
        and reopens holding those too.
        """
        log = self.open(limit)
        self.assertLog(log, records(1, hi))
        log.append(records(hi + 1, hi + 2, term=2))
        log.sync()
        self.assertLog(self.reopen(log, limit), records(1, hi) + records(hi + 1, hi + 2, term=2))

    def test_torn_short_header(self) -> None:
        """
        A last record cut inside its header is a torn tail: cut off, and the
        file is truncated on disk.
        """
        self.written(5)
        self.set_size(self.path(1), offset_of(5) + 10)
        self.assertCut(4)
        self.assertEqual(len(self.raw(self.path(1))), offset_of(7))

    def test_torn_short_payload(self) -> None:
        """
        A last record whose payload runs past the end of the file is a torn
        tail.
        """
        self.written(5)
        self.set_size(self.path(1), offset_of(6) - 1)
        self.assertCut(4)

    def test_torn_zero_filled(self) -> None:
        """
        Zero bytes where the next record should be (the file grew but its
        data never reached the disk) are a torn tail.
        """
        self.written(5)
        self.overwrite(self.path(1), offset_of(5), bytes(FRAME + 100))
        self.assertCut(4)

    def test_torn_crc_mismatch_at_tail(self) -> None:
        """
        A last record failing its CRC, with nothing valid after it, is a
        torn tail.
        """
        self.written(5)
        self.overwrite(self.path(1), offset_of(6) - 2, b"!")
        self.assertCut(4)

    def test_torn_tail_in_last_of_several_segments(self) -> None:
        """
        A torn tail is cut from the last file of several.
        """
        self.written(8, LIMIT)
        self.set_size(self.path(7), offset_of(8, base=7) + 3)
        self.assertCut(7, LIMIT)

    def test_headerless_last_segment_removed(self) -> None:
        """
        A last file shorter than its header, or all zero bytes, was being
        created at the crash: it is removed.
        """
        self.written(3, LIMIT)
        for content in [b"SJRS\x01", bytes(SEGMENT_HEADER_BYTES + FRAME)]:
            self.create(self.path(4), content)
            self.assertCut(3, LIMIT)
            log = self.open(LIMIT)
            log.truncate_suffix(4)
            log.close()
            self.assertEqual(self.segment_files(), [segment_file_name(1)])

    def test_corrupt_middle_record(self) -> None:
        """
        A CRC mismatch followed by valid records is damage, not a torn tail:
        the error names the file, the offset and the record.
        """
        self.written(5)
        self.overwrite(self.path(1), offset_of(3) + RECORD_HEADER_BYTES, b"X")
        self.assertDamaged(self.path(1), offset_of(3), "CRC mismatch in record 3", "not the tail")

    def test_corrupt_length_past_end(self) -> None:
        """
        A middle record whose length field was damaged to run past the end of
        the file looks short, but the valid records after it show damage.
        """
        self.written(5)
        self.overwrite(self.path(1), offset_of(2), b"\x7f")
        self.assertDamaged(self.path(1), offset_of(2), "record 2 claims", "record 3 follows")

    def test_zeroed_middle(self) -> None:
        """
        Zero bytes in the middle of the log followed by valid records are
        damage.
        """
        self.written(5)
        self.overwrite(self.path(1), offset_of(2), bytes(2 * FRAME))
        self.assertDamaged(self.path(1), offset_of(2), "zero-filled", "record 4 follows")

    def test_damage_in_earlier_segment(self) -> None:
        """
        Any bad record in a file that is not the last, even its final one, is
        damage: finished files are synced before the next one is created.
        """
        self.written(8, LIMIT)
        self.set_size(self.path(1), offset_of(4) - 1)
        self.assertDamaged(self.path(1), offset_of(3), "record 3", "not the last one")

    def test_index_gap_between_segments(self) -> None:
        """
        A missing file in the middle leaves an index gap: damage.
        """
        self.written(9, LIMIT)
        self.fs.remove(self.path(4))
        self.assertDamaged(self.path(7), 0, "index gap", "ends at index 3", "starts at 7")

    def test_bad_magic_and_version(self) -> None:
        """
        A file with a wrong magic or an unknown version byte is refused, in
        the first file as in the last.
        """
        self.written(6, LIMIT)
        self.overwrite(self.path(4), 4, b"\x09")
        self.assertDamaged(self.path(4), 0, "unknown segment format version 9")
        self.overwrite(self.path(1), 0, b"JUNK")
        self.assertDamaged(self.path(1), 0, "bad magic")

    def test_header_base_differs_from_name(self) -> None:
        """
        A file whose header disagrees with its name is refused.
        """
        self.written(3)
        log = self.open(LIMIT)
        log.append(records(4, 4))
        log.sync()
        log.close()
        self.fs.rename(self.path(4), self.path(5))
        self.assertDamaged(self.path(5), 0, "header says the file starts at index 4")

    def test_valid_crc_wrong_index(self) -> None:
        """
        A record with a valid CRC but an unexpected index (no crash writes
        that) is damage, even at the tail.
        """
        self.written(3)
        stray = Record(term=1, index=9, payload=b"3:........")
        self.overwrite(self.path(1), offset_of(3), encode_record_header(stray) + stray.payload)
        self.assertDamaged(self.path(1), offset_of(3), "record has index 9, expected 3")

    def test_decreasing_term(self) -> None:
        """
        A valid record whose term is below its predecessor's is damage.
        """
        log = self.open()
        log.append(records(1, 2, term=3))
        log.sync()
        log.close()
        stray = Record(term=2, index=2, payload=b"2:........")
        self.overwrite(self.path(1), offset_of(2), encode_record_header(stray) + stray.payload)
        self.assertDamaged(self.path(1), offset_of(2), "record 2 has term 2, after term 3")

    def test_other_files_ignored(self) -> None:
        """
        Files that are not segment files are left alone.
        """
        self.written(2)
        handle = self.fs.open_append(self.directory + "/hardstate")
        handle.write(b"not a segment")
        handle.close()
        self.assertLog(self.open(), records(1, 2))


class RecoveryMemoryTests(RecoveryTestsMixin, MemoryDisk, SynchronousTestCase):
    """
    Recovery on the in-memory file system, plus real crashes simulated by
    L{MemoryFileSystem.crash}.
    """

    def test_crash_loses_exactly_unsynced(self) -> None:
        """
        Raft §5.3 needs synced records to survive: a crash after an unsynced
        append loses exactly the unsynced records.
        """
        log = self.open()
        log.append(records(1, 4))
        log.sync()
        log.append(records(5, 7))
        self.fs.crash()
        self.assertCut(4)

    def test_crash_before_first_sync(self) -> None:
        """
        A crash before the first sync leaves an empty log: the new file's
        directory entry was never synced.
        """
        log = self.open()
        log.append(records(1, 2))
        self.fs.crash()
        self.assertCut(0)
        self.assertEqual(self.segment_files(), [segment_file_name(1)])

    def test_crash_after_roll(self) -> None:
        """
        A crash after rolling but before a sync loses the new file and the
        records in it, and keeps the finished file whole.
        """
        log = self.open(LIMIT)
        log.append(records(1, 2))
        log.sync()
        log.append(records(3, 5))
        self.fs.crash()
        self.assertCut(3, LIMIT)

    def test_torn_crash_variants(self) -> None:
        """
        A crash that leaves part of an unsynced write, as data or as zeros,
        at any length, is cut back to the synced records.
        """
        for torn in [1, RECORD_HEADER_BYTES - 1, RECORD_HEADER_BYTES + 3, FRAME + 5, 3 * FRAME - 1]:
            for zero_fill in [False, True]:
                self.make_disk()
                log = self.open()
                log.append(records(1, 2))
                log.sync()
                log.append(records(3, 5))
                self.fs.crash(torn_bytes=torn, zero_fill=zero_fill)
                kept = 2 if zero_fill else 2 + (torn // FRAME)
                self.assertCut(kept)

    def test_truncate_suffix_durable_at_once(self) -> None:
        """
        A truncation survives a crash even without a sync, so a torn new
        record can never hide old ones after it.
        """
        log = self.open(LIMIT)
        log.append(records(1, 8))
        log.sync()
        log.truncate_suffix(3)
        log.append(records(3, 3, term=2))
        self.fs.crash(torn_bytes=RECORD_HEADER_BYTES + 2)
        self.assertCut(2, LIMIT)

    def test_truncate_prefix_durable(self) -> None:
        """
        Compaction's file removals survive a crash.
        """
        log = self.open(LIMIT)
        log.append(records(1, 8))
        log.sync()
        log.truncate_prefix(5)
        self.fs.crash()
        self.assertEqual(self.segment_files(), [segment_file_name(b) for b in (4, 7)])
        self.assertLog(self.open(LIMIT), records(4, 8))


class RecoveryDiskTests(RecoveryTestsMixin, RealDisk, SynchronousTestCase):
    """
    Recovery on the real file system, in a temporary directory.
    """
