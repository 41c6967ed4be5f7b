# -*- test-case-name: tests.cluster.raft.segments.test_files -*-
"""
The Raft log on disk (Raft §5.3: a log entry is persisted before the node
acknowledges it), as append-only segment files.

The byte format and the crash-safety argument are in
L{stalwart.cluster.raft.segments.format}; the scan at open is in
L{stalwart.cluster.raft.segments.recovery}.  All file access goes through a
small L{FileSystem}: L{OSFileSystem} here, or
L{stalwart.cluster.raft.segments.memfs.MemoryFileSystem} in tests and
simulations, which can simulate a crash.
"""

from __future__ import annotations

import bisect
import os
import os.path
import threading
from typing import Protocol, Sequence

from stalwart.cluster.raft.segments.format import (
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    CorruptLogError,
    Record,
    decode_record_header,
    encode_record_header,
    encode_segment_header,
    record_crc,
    segment_file_name,
)
from stalwart.cluster.raft.segments.recovery import SegmentIndex, recover

__all__ = [
    "AppendFile",
    "CorruptLogError",
    "FileSystem",
    "OSFileSystem",
    "ReadFile",
    "SegmentLog",
]

_WRITE_BUFFER_BYTES = 1024 * 1024
"""Small records are gathered into writes of about this many bytes."""

_READ_SPAN_BYTES = 1024 * 1024
"""L{SegmentLog.read} fetches neighbouring records in reads of about this size."""


class AppendFile(Protocol):
    """A file open for appending, from L{FileSystem.open_append}."""

    def write(self, data: bytes) -> None:
        """Append all of C{data} (not durable until L{sync})."""

    def sync(self) -> None:
        """Make the bytes and the size durable (fdatasync)."""

    def truncate(self, size: int) -> None:
        """Cut the file to C{size} bytes; later writes append from there."""

    def size(self) -> int:
        """Current size in bytes."""

    def close(self) -> None:
        """Release the handle; may be called twice."""


class ReadFile(Protocol):
    """A file open for reading, from L{FileSystem.open_read}."""

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to C{size} bytes at C{offset}; fewer only at the end of the file."""

    def size(self) -> int:
        """Current size in bytes."""

    def close(self) -> None:
        """Release the handle; may be called twice."""


class FileSystem(Protocol):
    """
    The file operations the segment log and the hard state use, so that tests
    can substitute an in-memory file system that simulates crashes.
    """

    def makedirs(self, path: str) -> None:
        """Create a directory and its parents if missing."""

    def listdir(self, path: str) -> list[str]:
        """Names in a directory."""

    def exists(self, path: str) -> bool:
        """Whether a file or directory exists."""

    def open_append(self, path: str) -> AppendFile:
        """Open a file for appending, creating it empty if missing."""

    def open_read(self, path: str) -> ReadFile:
        """Open an existing file for reading (L{FileNotFoundError} if missing)."""

    def rename(self, source: str, destination: str) -> None:
        """Atomically replace C{destination} with C{source}."""

    def remove(self, path: str) -> None:
        """Delete a file."""

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (creations, renames, removals) durable."""


class _OSAppendFile:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def sync(self) -> None:
        # fdatasync skips the inode's timestamps but still flushes its size.
        getattr(os, "fdatasync", os.fsync)(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _OSReadFile:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def read_at(self, offset: int, size: int) -> bytes:
        parts = []
        while size > 0:
            data = os.pread(self._fd, size, offset)
            if not data:
                break
            parts.append(data)
            offset += len(data)
            size -= len(data)
        return b"".join(parts)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class OSFileSystem:
    """
    L{FileSystem} on the real disk, with C{os} calls.
    """

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def open_append(self, path: str) -> AppendFile:
        return _OSAppendFile(path)

    def open_read(self, path: str) -> ReadFile:
        return _OSReadFile(path)

    def rename(self, source: str, destination: str) -> None:
        os.replace(source, destination)

    def remove(self, path: str) -> None:
        os.remove(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SegmentLog:
    """
    An append-only Raft log in segment files, indexed in memory.

    Only an index is kept in memory (per record: offset, length, term); the
    payloads stay on disk, since one can be a 50 MB blob.

    Threading: L{append}, L{sync} and the C{truncate_*} methods are called from
    one writer thread.  L{term_at}, L{first_index} and L{last_index} may be
    called from the reactor thread meanwhile, and L{read} from another thread.
    A lock guards the in-memory index; it is never held during file I/O.
    """

    def __init__(self, fs: FileSystem, directory: str, segments: list[SegmentIndex], segment_bytes_max: int) -> None:
        """
        Use L{SegmentLog.open} instead.
        """
        self._fs = fs
        self._directory = directory
        self._segment_bytes_max = segment_bytes_max
        self._lock = threading.Lock()
        self._segments = segments
        self._bases = [s.base_index for s in segments]
        # Writer-thread state, never read by other threads:
        self._active: AppendFile | None = None
        self._file_dirty = False
        self._directory_dirty = False
        self._closed = False

    @classmethod
    def open(cls, directory: str, segment_bytes_max: int = 64 * 1024 * 1024, fs: FileSystem | None = None) -> SegmentLog:
        """
        Open the log in C{directory}, creating the directory if needed.

        Recovery runs first: a torn tail is cut off (and logged); any other
        damage raises.

        @param segment_bytes_max: roll to a new file when the active one would
            grow past this many bytes.  Larger files mean fewer files and
            fsyncs at roll; smaller ones let compaction free space sooner.
        @raise CorruptLogError: damage that is not a torn tail.
        """
        if segment_bytes_max < SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES:
            raise ValueError(f"segment_bytes_max {segment_bytes_max} cannot hold even an empty record")
        fs = OSFileSystem() if fs is None else fs
        fs.makedirs(directory)
        return cls(fs, directory, recover(fs, directory), segment_bytes_max)

    # --- reading (any thread) ---------------------------------------------

    @property
    def first_index(self) -> int:
        """Index of the first record kept; 1 for a new log."""
        with self._lock:
            return self._segments[0].base_index if self._segments else 1

    @property
    def last_index(self) -> int:
        """Index of the last record; C{first_index - 1} when empty (0 for a new log)."""
        with self._lock:
            return self._segments[-1].last_index if self._segments else 0

    def term_at(self, index: int) -> int:
        """
        The term of the record at C{index}, from memory (no file I/O).

        @return: 0 for index 0 and for C{first_index - 1} (the entry before the
            log's start is unknown here: the snapshot knows it).
        @raise IndexError: C{index} is neither in the log nor C{first_index - 1}.
        """
        with self._lock:
            first = self._segments[0].base_index if self._segments else 1
            last = self._segments[-1].last_index if self._segments else 0
            if index == 0 or index == first - 1:
                return 0
            if not first <= index <= last:
                raise IndexError(f"index {index} is outside the log ({first} .. {last})")
            segment = self._segments[bisect.bisect_right(self._bases, index) - 1]
            return segment.terms[index - segment.base_index]

    def read(self, lo: int, hi: int) -> list[Record]:
        """
        Read the records C{lo} to C{hi} inclusive from the files.

        @return: the records, empty if C{lo > hi}.
        @raise IndexError: part of the range is not in the log (or was
            truncated away during the read).
        @raise CorruptLogError: a record's bytes no longer match its CRC.
        """
        if lo > hi:
            return []
        spans = self._locate(lo, hi)
        records: list[Record] = []
        for path, offset, entries in spans:
            try:
                reader = self._fs.open_read(path)
            except FileNotFoundError:
                raise self._vanished(lo, hi) or CorruptLogError(
                    f"raft log damaged: {path} offset {offset}: file missing, record {entries[0][2]} was in it"
                ) from None
            try:
                size = entries[-1][0] + RECORD_HEADER_BYTES + entries[-1][1] - offset
                data = reader.read_at(offset, size)
            finally:
                reader.close()
            for record_offset, length, index in entries:
                record = _decode(data, record_offset - offset, length, index)
                if record is None:
                    raise self._vanished(lo, hi) or CorruptLogError(
                        f"raft log damaged: {path} offset {record_offset}: record {index} fails its check on read"
                    )
                records.append(record)
        return records

    def _locate(self, lo: int, hi: int) -> list[tuple[str, int, list[tuple[int, int, int]]]]:
        """
        @return: reads to make: (path, offset, [(record offset, length, index)])
            with each read about L{_READ_SPAN_BYTES} or one large record.
        """
        with self._lock:
            first = self._segments[0].base_index if self._segments else 1
            last = self._segments[-1].last_index if self._segments else 0
            if not (first <= lo and hi <= last):
                raise IndexError(f"records {lo} .. {hi} are outside the log ({first} .. {last})")
            spans: list[tuple[str, int, list[tuple[int, int, int]]]] = []
            position = bisect.bisect_right(self._bases, lo) - 1
            index = lo
            while index <= hi:
                segment = self._segments[position]
                span_offset = segment.offsets[index - segment.base_index]
                entries: list[tuple[int, int, int]] = []
                while index <= min(hi, segment.last_index):
                    i = index - segment.base_index
                    end = segment.offsets[i] + RECORD_HEADER_BYTES + segment.lengths[i]
                    if entries and end - span_offset > _READ_SPAN_BYTES:
                        break
                    entries.append((segment.offsets[i], segment.lengths[i], index))
                    index += 1
                spans.append((segment.path, span_offset, entries))
                if index > segment.last_index:
                    position += 1
            return spans

    def _vanished(self, lo: int, hi: int) -> IndexError | None:
        """
        @return: an L{IndexError} if C{lo .. hi} left the log meanwhile (a
            concurrent truncation), else L{None}.
        """
        with self._lock:
            first = self._segments[0].base_index if self._segments else 1
            last = self._segments[-1].last_index if self._segments else 0
        if first <= lo and hi <= last:
            return None
        return IndexError(f"records {lo} .. {hi} were truncated while being read")

    # --- writing (the writer thread) --------------------------------------

    def append(self, records: Sequence[Record]) -> None:
        """
        Write records after the last one, without fsync (see L{sync}).

        @param records: indexes must continue C{last_index + 1, + 2, ...};
            terms must not decrease.
        @raise ValueError: the records do not continue the log.
        """
        self._check_open()
        if not records:
            return
        last = self.last_index
        term = self.term_at(last)
        for record in records:
            if record.index != last + 1:
                raise ValueError(f"record index {record.index} does not continue the log at {last}")
            if record.term < term:
                raise ValueError(f"record {record.index} has term {record.term}, after term {term}")
            last, term = record.index, record.term
        buffer = bytearray()
        published: list[tuple[int, int, int]] = []
        for record in records:
            frame_bytes = RECORD_HEADER_BYTES + len(record.payload)
            segment = self._segments[-1] if self._segments else None
            if segment is None or (
                segment.count + len(published) > 0 and self._end(segment, published) + frame_bytes > self._segment_bytes_max
            ):
                if segment is not None:
                    self._flush(buffer, published)
                segment = self._roll(record.index)
            offset = self._end(segment, published)
            buffer += encode_record_header(record)
            if len(record.payload) > _WRITE_BUFFER_BYTES:
                self._write(buffer)
                self._active_file().write(record.payload)
            else:
                buffer += record.payload
            published.append((offset, len(record.payload), record.term))
            if len(buffer) >= _WRITE_BUFFER_BYTES:
                self._write(buffer)
        self._flush(buffer, published)

    def _end(self, segment: SegmentIndex, pending: list[tuple[int, int, int]]) -> int:
        if pending:
            offset, length, _ = pending[-1]
            return offset + RECORD_HEADER_BYTES + length
        return segment.end

    def _write(self, buffer: bytearray) -> None:
        if buffer:
            self._active_file().write(bytes(buffer))
            self._file_dirty = True
            del buffer[:]

    def _flush(self, buffer: bytearray, published: list[tuple[int, int, int]]) -> None:
        """
        Write what is buffered, then make the records visible to readers:
        never before their bytes are in the file.
        """
        self._write(buffer)
        with self._lock:
            segment = self._segments[-1]
            for offset, length, term in published:
                segment.add(offset, length, term)
        del published[:]

    def _active_file(self) -> AppendFile:
        if self._active is None:
            self._active = self._fs.open_append(self._segments[-1].path)
        return self._active

    def _roll(self, base_index: int) -> SegmentIndex:
        """
        Start a new segment file at C{base_index}.  The finished file is made
        durable first, so a file that is not the last is always complete on
        disk (recovery relies on it).
        """
        if self._active is not None:
            if self._file_dirty:
                self._active.sync()
            self._active.close()
            self._active = None
        self._file_dirty = False
        path = os.path.join(self._directory, segment_file_name(base_index))
        self._active = self._fs.open_append(path)
        self._active.write(encode_segment_header(base_index))
        self._file_dirty = self._directory_dirty = True
        segment = SegmentIndex(base_index=base_index, path=path, end=SEGMENT_HEADER_BYTES)
        with self._lock:
            self._segments.append(segment)
            self._bases.append(base_index)
        return segment

    def sync(self) -> None:
        """
        Make everything appended or truncated so far durable: fdatasync the
        active file, then fsync the directory if files were created.
        """
        self._check_open()
        if self._file_dirty and self._active is not None:
            self._active.sync()
            self._file_dirty = False
        if self._directory_dirty:
            self._fs.fsync_dir(self._directory)
            self._directory_dirty = False

    def truncate_suffix(self, index: int) -> None:
        """
        Drop the records from C{index} on (Raft §5.3: a follower deletes a
        conflicting entry and all that follow it); later appends continue at
        C{index}.

        Durable on return, not just after the next L{sync}: files are removed
        newest first with a directory fsync each, then the remaining one is cut
        and fdatasynced.  A crash at any point thus leaves a contiguous log,
        and never old records behind a torn new one.

        @raise ValueError: C{index} is before C{first_index}.
        """
        self._check_open()
        with self._lock:
            first = self._segments[0].base_index if self._segments else 1
            last = self._segments[-1].last_index if self._segments else 0
            if index < first:
                raise ValueError(f"cannot truncate at {index}, before the log's first index {first}")
            if index > last:
                return
            keep = max(1, bisect.bisect_left(self._bases, index))
            removed = self._segments[keep:]
            del self._segments[keep:], self._bases[keep:]
            kept = self._segments[-1]
            kept.cut(index - kept.base_index)
        if self._active is not None:
            self._active.close()
            self._active = None
        for segment in reversed(removed):
            self._fs.remove(segment.path)
            self._fs.fsync_dir(self._directory)
            self._directory_dirty = False
        active = self._active_file()
        active.truncate(kept.end)
        active.sync()
        self._file_dirty = False

    def truncate_prefix(self, index: int) -> None:
        """
        Compaction: delete the files whose records are all before C{index}
        (they are in a snapshot).  C{first_index} moves by whole files only,
        and the last file is never deleted.

        Durable on return: files are removed oldest first, each followed by a
        directory fsync, so what is on disk after a crash is contiguous.
        """
        self._check_open()
        with self._lock:
            drop = 0
            while drop + 1 < len(self._segments) and self._segments[drop + 1].base_index <= index:
                drop += 1
            removed = self._segments[:drop]
            del self._segments[:drop], self._bases[:drop]
        for segment in removed:
            self._fs.remove(segment.path)
            self._fs.fsync_dir(self._directory)

    def reset(self, next_index: int) -> None:
        """
        Drop every record and continue the log at C{next_index}: a follower
        installs a snapshot of C{next_index - 1} that its log does not match
        (Raft paper section 7, "the follower discards its entire log").

        Durable on return.  Files are removed newest first, each followed by
        a directory fsync (a crash leaves a contiguous prefix of the old
        log, which the snapshot then supersedes at start), then an empty
        file starting at C{next_index} is created and made durable.

        @raise ValueError: C{next_index} is below 1.
        """
        self._check_open()
        if next_index < 1:
            raise ValueError(f"cannot continue the log at {next_index}")
        if self._active is not None:
            self._active.close()
            self._active = None
        with self._lock:
            removed, self._segments, self._bases = self._segments, [], []
        for segment in reversed(removed):
            self._fs.remove(segment.path)
            self._fs.fsync_dir(self._directory)
        self._roll(next_index)
        self.sync()

    def close(self) -> None:
        """
        Release the open file.  Does not sync: call L{sync} first to keep
        what was appended since the last one.
        """
        if self._active is not None:
            self._active.close()
            self._active = None
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the segment log is closed")


def _decode(data: bytes, position: int, length: int, index: int) -> Record | None:
    """
    @return: the record at C{position} in C{data} if it is whole, has the
        expected length and index and passes its CRC, else L{None}.
    """
    if len(data) < position + RECORD_HEADER_BYTES + length:
        return None
    header = decode_record_header(data, position)
    payload = data[position + RECORD_HEADER_BYTES : position + RECORD_HEADER_BYTES + length]
    if header.length != length or header.index != index:
        return None
    if record_crc(header.term, header.index, payload) != header.crc or header.term < 1:
        return None
    return Record(term=header.term, index=header.index, payload=payload)
