# -*- test-case-name: tests.cluster.raft.segments.test_recovery -*-
"""
The scan of a segment log at open (the procedure in
L{stalwart.cluster.raft.segments.format}, "Crash safety and recovery"; Raft
§5.3 relies on a log that never loses or invents a persisted entry).

L{recover} reads every segment file in order, checks every header and record,
builds the in-memory index (L{SegmentIndex}) and repairs exactly one kind of
damage, a torn tail left by a crash: it cuts the last file before the first
bad record, provided nothing valid follows.  Everything else raises
L{CorruptLogError}: data is never skipped silently.
"""

from __future__ import annotations

import os.path
import re
import zlib
from array import array
from typing import TYPE_CHECKING

import attrs
from twisted.logger import Logger

from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    CorruptLogError,
    FormatError,
    decode_record_header,
    decode_segment_header,
    parse_segment_file_name,
    record_crc,
)

if TYPE_CHECKING:
    from stalwart.cluster.raft.segments.files import FileSystem, ReadFile

__all__ = ["SegmentIndex", "recover"]

_log = Logger()

_CHUNK_BYTES = 1024 * 1024
"""How much of a file to read at a time while scanning, in bytes."""

# A record header whose term and index both fit in 32 bits and are not zero:
# bytes 8-11 and 16-19 are zero, bytes 12-15 and 20-23 are not all zero.  The
# regular expression engine finds these candidates at C speed, which lets the
# search for "a valid record after the damage" cover a whole 64 MB file.
_CANDIDATE = re.compile(rb"(?=.{8}\x00{4}(?!\x00{4}).{4}\x00{4}(?!\x00{4}).{4})", re.DOTALL)


@attrs.define
class SegmentIndex:
    """
    What is kept in memory about one segment file: no payloads, only where
    each record is and its term (about 24 bytes per record).

    @ivar base_index: index of the file's first record (its name).
    @ivar path: the file's path.
    @ivar offsets: byte offset of each record's header, by C{index - base_index}.
    @ivar lengths: payload length of each record, in bytes.
    @ivar terms: term of each record.
    @ivar end: file size in bytes: where the next record goes.
    """

    base_index: int
    path: str
    end: int
    offsets: array = attrs.Factory(lambda: array("Q"))
    lengths: array = attrs.Factory(lambda: array("Q"))
    terms: array = attrs.Factory(lambda: array("Q"))

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def last_index(self) -> int:
        """
        Index of the last record, C{base_index - 1} when the file has none.
        """
        return self.base_index + len(self.offsets) - 1

    def add(self, offset: int, length: int, term: int) -> None:
        self.offsets.append(offset)
        self.lengths.append(length)
        self.terms.append(term)
        self.end = offset + RECORD_HEADER_BYTES + length

    def cut(self, count: int) -> None:
        """
        Forget every record after the first C{count}.
        """
        if count < self.count:
            self.end = self.offsets[count]
            del self.offsets[count:], self.lengths[count:], self.terms[count:]


def recover(fs: FileSystem, directory: str) -> list[SegmentIndex]:
    """
    Check the segment files in C{directory}, cut a torn tail, and index them.

    @return: one L{SegmentIndex} per file, in log order; empty for a new log.
    @raise CorruptLogError: damage other than a torn tail.
    """
    named = sorted(
        (base, name)
        for name in fs.listdir(directory)
        if (base := parse_segment_file_name(name)) is not None
    )
    segments: list[SegmentIndex] = []
    for position, (base, name) in enumerate(named):
        path = os.path.join(directory, name)
        last = position == len(named) - 1
        reader = fs.open_read(path)
        try:
            size = reader.size()
            if last and _never_written(reader, size):
                reader.close()
                _log.warn(
                    "raft log: removing {path}: its header was never written (crash while creating it)",
                    path=path,
                )
                fs.remove(path)
                fs.fsync_dir(directory)
                break
            _check_header(reader, path, base, segments[-1] if segments else None)
            previous_term = segments[-1].terms[-1] if segments and segments[-1].count else 0
            segment, problem = _scan(reader, size, path, base, previous_term)
            if problem is not None:
                if not last:
                    raise _damaged(path, segment.end, f"{problem} in a file that is not the last one")
                found = _valid_record_after(reader, size, segment.end + 1, segment.last_index + 1)
                if found is not None:
                    raise _damaged(
                        path,
                        segment.end,
                        f"{problem} (not the tail: a valid record {found[1]} follows at offset {found[0]})",
                    )
        finally:
            reader.close()
        if problem is not None:
            _cut(fs, path, segment.end, size, problem)
        segments.append(segment)
    return segments


def _damaged(path: str, offset: int, what: str) -> CorruptLogError:
    return CorruptLogError(f"raft log damaged: {path} offset {offset}: {what}; refusing to start")


def _never_written(reader: ReadFile, size: int) -> bool:
    """
    @return: whether a file holds nothing ever written: fewer bytes than a
        header, or only zero bytes (the file grew, its blocks never reached
        the disk).  A zeroed header with anything after it is damage instead.
    """
    if size < SEGMENT_HEADER_BYTES:
        return True
    for start in range(0, size, _CHUNK_BYTES):
        if reader.read_at(start, _CHUNK_BYTES).strip(b"\x00"):
            return False
    return True


def _check_header(reader: ReadFile, path: str, base: int, previous: SegmentIndex | None) -> None:
    try:
        header_base = decode_segment_header(reader.read_at(0, SEGMENT_HEADER_BYTES))
    except FormatError as e:
        raise _damaged(path, 0, str(e)) from None
    if header_base != base:
        raise _damaged(path, 0, f"header says the file starts at index {header_base}, its name says {base}")
    if previous is not None and base != previous.last_index + 1:
        raise _damaged(
            path, 0, f"index gap: {previous.path} ends at index {previous.last_index}, this file starts at {base}"
        )


def _cut(fs: FileSystem, path: str, end: int, size: int, problem: str) -> None:
    _log.warn(
        "raft log: cutting a torn tail off {path} at offset {offset} ({dropped} bytes): {problem}",
        path=path,
        offset=end,
        dropped=size - end,
        problem=problem,
    )
    handle = fs.open_append(path)
    try:
        handle.truncate(end)
        handle.sync()
    finally:
        handle.close()


class _Buffered:
    """
    Reads a file front to back in large chunks, so that small records do not
    cost one read call each.
    """

    def __init__(self, reader: ReadFile) -> None:
        self._reader = reader
        self._start = 0
        self._data = b""

    def get(self, offset: int, size: int) -> bytes:
        end = offset + size
        if not (self._start <= offset and end <= self._start + len(self._data)):
            self._start = offset
            self._data = self._reader.read_at(offset, max(size, _CHUNK_BYTES))
        return self._data[offset - self._start : end - self._start]

    def crc(self, offset: int, size: int, crc: int) -> int:
        """
        Continue C{crc} over C{size} bytes at C{offset}, without holding more
        than one chunk in memory.
        """
        if size <= _CHUNK_BYTES:
            return zlib.crc32(self.get(offset, size), crc)
        for start in range(offset, offset + size, _CHUNK_BYTES):
            crc = zlib.crc32(self._reader.read_at(start, min(_CHUNK_BYTES, offset + size - start)), crc)
        return crc


def _scan(
    reader: ReadFile, size: int, path: str, base: int, previous_term: int
) -> tuple[SegmentIndex, str | None]:
    """
    Index the records of one file, stopping at the first that fails.

    @return: the index of the good records, and L{None} if the file was good
        to its end, or else what is wrong with the record at C{segment.end}
        (something a torn write can produce).
    @raise CorruptLogError: a record that passes its CRC but does not fit the
        log (wrong index, decreasing term): no crash produces that.
    """
    segment = SegmentIndex(base_index=base, path=path, end=SEGMENT_HEADER_BYTES)
    buffered = _Buffered(reader)
    offset = SEGMENT_HEADER_BYTES
    while offset < size:
        expected = segment.last_index + 1
        if size - offset < RECORD_HEADER_BYTES:
            return segment, f"short record header ({size - offset} bytes) for record {expected}"
        header = decode_record_header(buffered.get(offset, RECORD_HEADER_BYTES))
        if header.is_zero():
            return segment, f"zero-filled bytes where record {expected} should be"
        payload_offset = offset + RECORD_HEADER_BYTES
        if header.length > size - payload_offset:
            return segment, (
                f"record {expected} claims {header.length} payload bytes, {size - payload_offset} left in the file"
            )
        crc = buffered.crc(payload_offset, header.length, record_crc(header.term, header.index))
        if crc != header.crc:
            return segment, f"CRC mismatch in record {expected}"
        if header.index != expected:
            raise _damaged(path, offset, f"record has index {header.index}, expected {expected}")
        term = segment.terms[-1] if segment.count else previous_term
        if header.term < max(term, 1):
            raise _damaged(path, offset, f"record {expected} has term {header.term}, after term {term}")
        segment.add(offset, header.length, header.term)
        offset = segment.end
    return segment, None


def _valid_record_after(reader: ReadFile, size: int, start: int, expected: int) -> tuple[int, int] | None:
    """
    Look for any record with a valid CRC at or after byte C{start}.

    Used on the last file's first bad record: if one is found, the bad record
    is damage in the middle of the log rather than a torn tail.

    @param expected: the index the bad record should have had; bounds the
        indexes worth checking.
    @return: (offset, index) of the first valid record found, or L{None}.
    """
    index_max = expected + size // RECORD_HEADER_BYTES
    for offset in _candidates(reader, size, start, index_max):
        header = decode_record_header(reader.read_at(offset, RECORD_HEADER_BYTES))
        payload_offset = offset + RECORD_HEADER_BYTES
        if not (1 <= header.index <= index_max and header.term >= 1):
            continue
        if header.length > size - payload_offset:
            continue
        crc = _Buffered(reader).crc(payload_offset, header.length, record_crc(header.term, header.index))
        if crc == header.crc:
            return offset, header.index
    return None


def _candidates(reader: ReadFile, size: int, start: int, index_max: int):
    """
    Yield every offset from C{start} where a record header could begin.

    When indexes stay below 2**32 (always, in practice) only offsets matching
    L{_CANDIDATE} can hold a record with a term below 2**32; otherwise
    every offset is a candidate.
    """
    last = size - RECORD_HEADER_BYTES
    if index_max >= 2**32:
        yield from range(start, last + 1)
        return
    for chunk_start in range(start, last + 1, _CHUNK_BYTES):
        data = reader.read_at(chunk_start, _CHUNK_BYTES + RECORD_HEADER_BYTES - 1)
        for match in _CANDIDATE.finditer(data, 0, min(_CHUNK_BYTES, last + 1 - chunk_start) + RECORD_HEADER_BYTES - 1):
            if match.start() < _CHUNK_BYTES:
                yield chunk_start + match.start()
