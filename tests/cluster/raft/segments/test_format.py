"""
Tests for L{stalwart.cluster.raft.segments.format}: segment headers, record
frames and file names.
"""

from __future__ import annotations

import struct
import zlib

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    FormatError,
    Record,
    decode_record_header,
    decode_segment_header,
    encode_record_header,
    encode_segment_header,
    parse_segment_file_name,
    record_crc,
    segment_file_name,
)


class SegmentHeaderTests(SynchronousTestCase):
    """
    The 20-byte header at the start of every segment file.
    """

    def test_layout(self) -> None:
        """
        The header is magic, version byte 1, three zero bytes, the base index
        as a big-endian u64 and a CRC-32 of those 16 bytes.
        """
        body = b"SJRS\x01\x00\x00\x00" + (4712).to_bytes(8, "big")
        self.assertEqual(encode_segment_header(4712), body + struct.pack(">I", zlib.crc32(body)))
        self.assertEqual(SEGMENT_HEADER_BYTES, 20)

    def test_round_trip(self) -> None:
        """
        Decoding an encoded header gives back its base index.
        """
        for base in [1, 2, 4711, 2**64 - 1]:
            self.assertEqual(decode_segment_header(encode_segment_header(base)), base)

    def test_rejects(self) -> None:
        """
        A wrong magic, an unknown version, a CRC mismatch or too few bytes
        raise L{FormatError} saying which.
        """
        good = encode_segment_header(7)
        cases = {
            "bad magic": b"XXXX" + good[4:],
            "version 2": good[:4] + b"\x02" + good[5:],
            "CRC mismatch": good[:15] + b"\x08" + good[16:],
            "19 bytes": good[:19],
        }
        for expected, data in cases.items():
            with self.assertRaises(FormatError) as caught:
                decode_segment_header(data)
            self.assertIn(expected, str(caught.exception))


class RecordFrameTests(SynchronousTestCase):
    """
    A record is length, CRC, term, index, payload; the CRC covers
    everything after the CRC field.
    """

    def test_layout(self) -> None:
        """
        The header is u32 payload length, u32 CRC-32 of term+index+payload,
        u64 term, u64 index, all big-endian.
        """
        record = Record(term=3, index=9, payload=b"hello")
        term_index = (3).to_bytes(8, "big") + (9).to_bytes(8, "big")
        crc = zlib.crc32(term_index + b"hello")
        self.assertEqual(
            encode_record_header(record),
            (5).to_bytes(4, "big") + crc.to_bytes(4, "big") + term_index,
        )
        self.assertEqual(RECORD_HEADER_BYTES, 24)

    def test_round_trip(self) -> None:
        """
        The decoded header has the record's length, term and index, and a
        CRC equal to L{record_crc} of the record.
        """
        record = Record(term=2**40, index=2**33, payload=b"\x00" * 100)
        header = decode_record_header(b"junk" + encode_record_header(record), 4)
        self.assertEqual(
            (header.length, header.crc, header.term, header.index),
            (100, record_crc(2**40, 2**33, record.payload), 2**40, 2**33),
        )
        self.assertFalse(header.is_zero())

    def test_crc_covers_term_index_payload(self) -> None:
        """
        Changing the term, the index or any payload byte changes the CRC, and
        a CRC computed piece by piece equals the whole one.
        """
        base = record_crc(1, 1, b"abcdef")
        self.assertNotEqual(record_crc(2, 1, b"abcdef"), base)
        self.assertNotEqual(record_crc(1, 2, b"abcdef"), base)
        self.assertNotEqual(record_crc(1, 1, b"abcdeg"), base)
        self.assertEqual(zlib.crc32(b"def", record_crc(1, 1, b"abc")), base)

    def test_zero_header(self) -> None:
        """
        Twenty-four zero bytes decode to a header that says it is zero-filled.
        """
        self.assertTrue(decode_record_header(bytes(24)).is_zero())

    def test_record_validation(self) -> None:
        """
        Terms and indexes start at 1 and fit in 64 bits; payloads are bytes.
        """
        for term, index, payload in [(0, 1, b""), (1, 0, b""), (2**64, 1, b""), (1, 1, "text")]:
            with self.assertRaises((ValueError, TypeError)):
                Record(term=term, index=index, payload=payload)

    def test_repr_hides_payload(self) -> None:
        """
        A record's repr gives the payload's size, not its bytes, which can be
        a 50 MB blob.
        """
        self.assertEqual(repr(Record(1, 2, b"x" * 1000)), "Record(term=1, index=2, payload=<1000 bytes>)")


class FileNameTests(SynchronousTestCase):
    """
    Segment files are named after their base index, zero-padded.
    """

    def test_names_sort_like_indexes(self) -> None:
        """
        Sorting the names sorts the log.
        """
        bases = [1, 9, 10, 4712, 99999, 2**63]
        names = [segment_file_name(b) for b in bases]
        self.assertEqual(sorted(names), names)
        self.assertEqual(names[0], "00000000000000000001.seg")
        self.assertEqual([parse_segment_file_name(n) for n in names], bases)

    def test_other_names(self) -> None:
        """
        Names that are not segment files parse to None, so other files in the
        directory are left alone.
        """
        for name in ["hardstate", "00000000000000000001.seg.tmp", "1.seg", "0000000000000000000a.seg"]:
            self.assertIsNone(parse_segment_file_name(name))
