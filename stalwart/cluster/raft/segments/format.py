# -*- test-case-name: tests.cluster.raft.segments.test_format -*-
"""
Byte layout of the Raft log's segment files (Raft §5.3, §5.4: the log a node
keeps on stable storage before it answers an RPC).  Pure: frames and CRCs, no
I/O.  L{stalwart.cluster.raft.segments.files} writes these frames and
L{stalwart.cluster.raft.segments.recovery} checks them at open.

Storage format
==============

The log lives in one directory as a sequence of segment files.  Each file is
named after the index of its first record, zero-padded to 20 digits, so that
sorting the names sorts the log::

    00000000000000000001.seg   records 1 .. 4711
    00000000000000004712.seg   records 4712 .. 9020
    00000000000000009021.seg   records 9021 .. (active: appends go here)

Only the last file is ever written to.  A file is closed (and, before the next
one is created, made durable with fdatasync) once the next record would take
it past C{segment_bytes_max}; a single record larger than the limit gets a
file of its own.  Integers are unsigned and big-endian.

A segment file starts with a 20-byte header::

    0        4    5           8                      16           20
    +--------+----+-----------+-----------------------+------------+
    | magic  | ver| reserved  | base index (u64)      | CRC32 (u32)|
    | "SJRS" | 01 | 00 00 00  | index of 1st record   | of bytes   |
    |        |    |           | == the file's name    | 0 .. 15    |
    +--------+----+-----------+-----------------------+------------+

followed by records, back to back, without padding::

    0            4            8                      16                     24
    +------------+------------+-----------------------+-----------------------+
    | length u32 | CRC32 u32  | term (u64, >= 1)      | index (u64, >= 1)     |
    +------------+------------+-----------------------+-----------------------+
    | payload: `length` bytes, opaque to this layer                  ...      |
    +------------------------------------------------------------------------+

C{length} counts the payload only.  The CRC covers everything in the record
after the CRC field: term, index and payload.  A damaged C{length} still shows:
the CRC is then computed over the wrong bytes and does not match.

The checksum is CRC-32 (ISO-HDLC, as C{zlib.crc32}), not the CRC-32C that
DESIGN.md section 4 names: C{zlib} runs it at C speed, while CRC-32C would need
a pure-Python table (far too slow for 50 MB blob payloads) or a new dependency.
Both detect every burst error of up to 32 bits; CRC-32C is only better at some
longer patterns.  Changing it means a new version byte.

Crash safety and recovery
=========================

Appends are written without fsync; L{SegmentLog.sync} makes them durable
(fdatasync the active file, fsync the directory after files were created or
removed).  A crash can therefore leave, at the end of the last file only, a
record that is short, zero-filled (the file grew but its blocks were never
written) or that fails its CRC.  Truncations are made durable at once, newest
file first, so stale records from before a truncation never reappear after a
torn record.  At open, L{recovery} reads every file in order and checks:

 1. Names and headers: magic, version, header CRC, base index equal to the
    name, and each file starting right after the previous one ends.
 2. Every record: CRC, term >= 1 and never decreasing, index exactly one more
    than the previous one.
 3. The first record that fails is a I{torn tail} only if it is in the last
    file and no valid record follows it anywhere in that file.  The file is
    then truncated before it and fsynced, and the cut is logged.  A last file
    too short to hold its header, or whose header is all zero bytes, was
    created just before a crash and is removed.
 4. Anything else (bad CRC followed by a valid record, a file that is not the
    last one ending early, an index gap between files, a bad magic or version)
    raises L{CorruptLogError} naming the file and byte offset: the node
    refuses to start.  Data is never skipped silently.

The first file need not start at index 1 (Raft paper section 7): compaction
deletes whole files from the front once a snapshot covers them, oldest first
with a directory fsync each (L{SegmentLog.truncate_prefix}), and a follower
that installs a snapshot its log does not match removes every file, newest
first, then starts one empty file after the snapshot (L{SegmentLog.reset}).
The snapshot file is durable before either happens, so a crash in between
leaves a log that L{stalwart.cluster.raft.boot.open_raft_log} reconciles
with the snapshot at start.
"""

from __future__ import annotations

import re
import struct
import zlib

import attrs

__all__ = [
    "CorruptLogError",
    "Record",
    "RecordHeader",
    "SEGMENT_HEADER_BYTES",
    "RECORD_HEADER_BYTES",
    "PAYLOAD_BYTES_MAX",
    "FormatError",
    "encode_segment_header",
    "decode_segment_header",
    "encode_record_header",
    "decode_record_header",
    "record_crc",
    "segment_file_name",
    "parse_segment_file_name",
]

SEGMENT_MAGIC = b"SJRS"
SEGMENT_VERSION = 1

_SEGMENT_HEADER = struct.Struct(">4sB3sQI")
_SEGMENT_HEADER_BODY = struct.Struct(">4sB3sQ")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size
"""Size of a segment file's header, in bytes (20)."""

_RECORD_HEADER = struct.Struct(">IIQQ")
_TERM_INDEX = struct.Struct(">QQ")
RECORD_HEADER_BYTES = _RECORD_HEADER.size
"""Size of a record's fixed part before its payload, in bytes (24)."""

PAYLOAD_BYTES_MAX = 2**32 - 1
"""Largest payload, in bytes: what the u32 length field can hold."""

_U64_MAX = 2**64 - 1

_NAME = re.compile(r"\A([0-9]{20})\.seg\Z")


class CorruptLogError(Exception):
    """
    Damage to the log or hard state that is not a torn tail.

    C{str(e)} is one line naming the file, the byte offset and what is wrong,
    ending in "refusing to start": the operator must look before the node
    runs again, because continuing could lose committed entries.
    """


class FormatError(ValueError):
    """
    Bytes that are not a valid header.  The message says what is wrong, for
    the caller to place in a L{CorruptLogError} or a log line.
    """


def _positive_u64(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or not 1 <= value <= _U64_MAX:
        raise ValueError(f"{attribute.name} must be an int in 1 .. 2**64-1, got {value!r}")


def _payload(instance: object, attribute: attrs.Attribute, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"payload must be bytes, got {type(value).__name__}")
    if len(value) > PAYLOAD_BYTES_MAX:
        raise ValueError(f"payload of {len(value)} bytes is over {PAYLOAD_BYTES_MAX}")


@attrs.frozen
class Record:
    """
    One Raft log entry as stored.

    @ivar term: Raft term in which the leader created the entry, >= 1.
    @ivar index: Raft log index, >= 1.
    @ivar payload: opaque bytes; the Raft layer encodes the entry kind and
        command in it.
    """

    term: int = attrs.field(validator=_positive_u64)
    index: int = attrs.field(validator=_positive_u64)
    payload: bytes = attrs.field(validator=_payload, repr=lambda p: f"<{len(p)} bytes>")


@attrs.frozen
class RecordHeader:
    """
    The fixed 24 bytes in front of a payload, decoded but not yet checked.

    @ivar length: payload size in bytes.
    @ivar crc: the stored CRC-32 of term, index and payload.
    """

    length: int
    crc: int
    term: int
    index: int

    def is_zero(self) -> bool:
        """
        @return: whether all four fields are zero: the file grew but these
            bytes were never written (a torn tail, not a record).
        """
        return self.length == 0 and self.crc == 0 and self.term == 0 and self.index == 0


def encode_segment_header(base_index: int) -> bytes:
    """
    @param base_index: index of the file's first record (>= 1).
    @return: the 20-byte header.
    """
    assert 1 <= base_index <= _U64_MAX, base_index
    body = _SEGMENT_HEADER_BODY.pack(SEGMENT_MAGIC, SEGMENT_VERSION, b"\0\0\0", base_index)
    return body + struct.pack(">I", zlib.crc32(body))


def decode_segment_header(data: bytes) -> int:
    """
    @param data: at least L{SEGMENT_HEADER_BYTES} bytes from a file's start.
    @return: the base index.
    @raise FormatError: the bytes are not a valid header (the message says why).
    """
    if len(data) < SEGMENT_HEADER_BYTES:
        raise FormatError(f"header is {len(data)} bytes, expected {SEGMENT_HEADER_BYTES}")
    magic, version, _reserved, base, crc = _SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise FormatError(f"bad magic {magic!r}, expected {SEGMENT_MAGIC!r}")
    if version != SEGMENT_VERSION:
        raise FormatError(f"unknown segment format version {version}")
    if zlib.crc32(data[: _SEGMENT_HEADER_BODY.size]) != crc:
        raise FormatError("header CRC mismatch")
    if base < 1:
        raise FormatError("base index 0")
    return base


def record_crc(term: int, index: int, payload: bytes = b"", crc: int | None = None) -> int:
    """
    CRC-32 of a record's term, index and payload.

    For a payload read in pieces, call with the first piece, then continue with
    C{zlib.crc32(piece, crc)}.

    @param crc: if given, a CRC already started (rarely needed).
    """
    start = zlib.crc32(_TERM_INDEX.pack(term, index)) if crc is None else crc
    return zlib.crc32(payload, start)


def encode_record_header(record: Record) -> bytes:
    """
    @return: the 24 bytes that go in front of C{record.payload}.  Writing the
        payload separately saves copying a large one.
    """
    crc = record_crc(record.term, record.index, record.payload)
    return _RECORD_HEADER.pack(len(record.payload), crc, record.term, record.index)


def decode_record_header(data: bytes, offset: int = 0) -> RecordHeader:
    """
    @param data: a buffer holding at least 24 bytes at C{offset}.
    """
    return RecordHeader(*_RECORD_HEADER.unpack_from(data, offset))


def segment_file_name(base_index: int) -> str:
    """
    @return: the file name of the segment whose first record is C{base_index}.
    """
    return f"{base_index:020d}.seg"


def parse_segment_file_name(name: str) -> int | None:
    """
    @return: the base index a segment file name encodes, or L{None} if C{name}
        is not a segment file name (other files in the directory are ignored).
    """
    match = _NAME.match(name)
    return int(match.group(1)) if match else None
