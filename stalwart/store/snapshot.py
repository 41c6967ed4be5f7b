# -*- test-case-name: tests.store.test_snapshot -*-
"""
Snapshots of the state machine, for Raft log compaction and InstallSnapshot
(Ongaro and Ousterhout, extended Raft paper section 7; Ongaro's thesis
chapter 5): one file holding a consistent copy of state.db as of
C{last_applied} plus every blob file, named by the Raft index and term it
stands for.

Snapshot file format (integers unsigned, big-endian)::

    0         1         8          16         24        28
    +---------+---------+----------+----------+---------+-----------------+
    | version | magic   | index    | term     | cfg len | configuration   |
    | 1 (u8)  | STJSNAP | u64      | u64      | u32     | cfg len bytes   |
    +---------+---------+----------+----------+---------+-----------------+
    +----------+------------------+----------+----------------------------+
    | db len   | state.db copy    | n blobs  | n x blob                   |
    | u64      | db len bytes     | u32      |                            |
    +----------+------------------+----------+----------------------------+
    blob:
    +----------------+----------+---------------+
    | SHA-256 (32 B) | len u64  | len bytes     |
    +----------------+----------+---------------+
    +------------------------------------------+
    | SHA-256 of every byte before it (32 B)   |
    +------------------------------------------+

C{configuration} is the C{ENTRY_CONFIG} payload in force at C{index}
(empty before the first one); the database is an SQLite file made with the
online backup API, so it is consistent even while readers use state.db.
A blob's digest is its content address, so each blob is checked twice: by
the file checksum and by its own hash.

Writing is atomic: a temporary name, fsync, rename to
C{snapshot-<index>-<term>.snap}, fsync the directory.  A crash leaves at
most a stale temporary file, removed at the next write.  Reading checks
the whole file before anything is changed: a torn or corrupt file is
refused with L{SnapshotError} (one line saying why) and never half
applied.  Restoring copies the database into the live connection with the
backup API, one SQLite transaction: state.db holds the old state or the
new one, never a mix; blobs are added first (extra blobs are harmless).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import struct
from typing import BinaryIO, Iterator, List, Optional, Tuple

from stalwart.cluster.raft.messages import SnapshotMeta

__all__ = ["SnapshotError", "SnapshotStore", "VERSION"]

VERSION = 1
_MAGIC = b"STJSNAP"
_HEAD = struct.Struct(">B7sQQI")
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_DIGEST_BYTES = 32
_COPY_BYTES = 1024 * 1024
_NAME = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")


class SnapshotError(Exception):
    """A snapshot file cannot be used; the message says why, in one line."""


def _file_name(index: int, term: int) -> str:
    return f"snapshot-{index:020d}-{term:020d}.snap"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingWriter:
    """Writes to a file and hashes every byte written."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self._f.write(data)

    def copy_file(self, path: str) -> None:
        with open(path, "rb") as source:
            while chunk := source.read(_COPY_BYTES):
                self.write(chunk)


class _Reader:
    """Reads a snapshot file front to back, hashing, refusing truncation."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self._f = f
        self._path = path
        self.hash = hashlib.sha256()

    def read(self, size: int) -> bytes:
        data = self._f.read(size)
        if len(data) != size:
            raise SnapshotError(f"{self._path}: truncated (torn write?)")
        self.hash.update(data)
        return data

    def chunks(self, size: int) -> Iterator[bytes]:
        while size:
            chunk = self.read(min(size, _COPY_BYTES))
            size -= len(chunk)
            yield chunk


def _read_head(reader: _Reader, path: str) -> SnapshotMeta:
    version, magic, index, term, config_bytes = _HEAD.unpack(reader.read(_HEAD.size))
    if version != VERSION or magic != _MAGIC:
        raise SnapshotError(f"{path}: not a snapshot file of version {VERSION}")
    return SnapshotMeta(index=index, term=term, configuration=reader.read(config_bytes))


class SnapshotStore:
    """
    The snapshot files of one node, in C{directory} (data-dir/raft/snapshots),
    of which the newest C{keep} are kept.  L{take} and L{restore} run on the
    state machine's thread; the others on any thread but the reactor's.
    """

    def __init__(self, directory: str, keep: int = 2) -> None:
        """
        @param keep: snapshots kept; 2 lets a transfer of the previous one
            finish while a new one is taken.
        """
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = directory
        self._keep = keep
        os.makedirs(directory, exist_ok=True)

    # -- names ------------------------------------------------------------

    def _snapshots(self) -> List[Tuple[int, int, str]]:
        found = []
        for name in os.listdir(self.directory):
            match = _NAME.match(name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), name))
        return sorted(found)

    def newest(self) -> Optional[SnapshotMeta]:
        """The newest snapshot's header (not its checksum: see L{verify}), or None."""
        snapshots = self._snapshots()
        if not snapshots:
            return None
        return self.meta(snapshots[-1][0])

    def path(self, index: int) -> str:
        """The file of snapshot C{index}; L{FileNotFoundError} if there is none."""
        for found, _, name in self._snapshots():
            if found == index:
                return os.path.join(self.directory, name)
        raise FileNotFoundError(f"no snapshot {index} in {self.directory}")

    def meta(self, index: int) -> SnapshotMeta:
        path = self.path(index)
        with open(path, "rb") as f:
            return _read_head(_Reader(f, path), path)

    def prune(self) -> None:
        """Delete all but the newest C{keep} snapshots."""
        for _, _, name in self._snapshots()[: -self._keep]:
            os.remove(os.path.join(self.directory, name))

    # -- taking (the state machine's thread) -------------------------------

    def take(self, machine) -> SnapshotMeta:
        """
        Snapshot C{machine} (a L{stalwart.store.apply.StateMachine}) as of
        its C{last_applied}.  Must run where nothing is being applied.
        """
        meta = SnapshotMeta(
            index=machine.last_applied, term=machine.last_applied_term,
            configuration=machine.configuration or b"",
        )
        copy = os.path.join(self.directory, "taking.db")
        self._remove(copy)
        target = sqlite3.connect(copy)
        try:
            machine.backup_to(target)
        finally:
            target.close()
        try:
            self._write(meta, copy, machine.blobs.directory, os.path.join(self.directory, "taking.tmp"))
        finally:
            self._remove(copy)
        self.prune()
        return meta

    def _write(self, meta: SnapshotMeta, db_path: str, blob_dir: str, tmp: str) -> None:
        blobs = sorted(_blob_files(blob_dir))
        self._remove(tmp)
        with open(tmp, "wb") as f:
            out = _HashingWriter(f)
            out.write(_HEAD.pack(VERSION, _MAGIC, meta.index, meta.term, len(meta.configuration)))
            out.write(meta.configuration)
            out.write(_U64.pack(os.path.getsize(db_path)))
            out.copy_file(db_path)
            out.write(_U32.pack(len(blobs)))
            for digest, path in blobs:
                out.write(bytes.fromhex(digest) + _U64.pack(os.path.getsize(path)))
                out.copy_file(path)
            f.write(out.hash.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.directory, _file_name(meta.index, meta.term)))
        _fsync_dir(self.directory)

    # -- sending and receiving ---------------------------------------------

    def read_chunk(self, index: int, offset: int, size: int) -> Tuple[bytes, int]:
        """
        Up to C{size} bytes of snapshot C{index} at C{offset}, and the
        file's size.  @raise FileNotFoundError: it was pruned.
        """
        with open(self.path(index), "rb") as f:
            total = os.fstat(f.fileno()).st_size
            f.seek(offset)
            return f.read(size), total

    def _incoming(self) -> str:
        return os.path.join(self.directory, "incoming.tmp")

    def write_chunk(self, offset: int, data: bytes) -> None:
        """
        Write a received chunk to the incoming file at C{offset}; offset 0
        starts a new one.  Not durable until L{finish_incoming}.
        """
        path = self._incoming()
        if offset == 0:
            self._remove(path)
        with open(path, "r+b" if offset else "wb") as f:
            f.truncate(offset)
            f.seek(offset)
            f.write(data)

    def finish_incoming(self, meta: SnapshotMeta) -> None:
        """
        The last chunk of snapshot C{meta} was written: check the whole
        file, make it durable under its name, and prune older ones.
        @raise SnapshotError: the file is damaged or not snapshot C{meta}.
        """
        path = self._incoming()
        with open(path, "r+b") as f:
            os.fsync(f.fileno())
        found = self.verify(path)
        if found != meta:
            raise SnapshotError(f"{path}: holds snapshot {found.index}/{found.term}, expected {meta.index}/{meta.term}")
        os.replace(path, os.path.join(self.directory, _file_name(meta.index, meta.term)))
        _fsync_dir(self.directory)
        self.prune()

    # -- checking and restoring ----------------------------------------------

    def verify(self, path: str) -> SnapshotMeta:
        """Check every byte of a snapshot file; returns its header."""
        return self._scan(path, None)

    def restore(self, machine, index: int) -> SnapshotMeta:
        """
        Replace C{machine}'s state with snapshot C{index}: check the file,
        add its blobs, then load its database in one transaction.  Runs on
        the state machine's thread.  @raise SnapshotError: damaged file
        (nothing was changed).
        """
        path = self.path(index)
        meta = self.verify(path)
        copy = os.path.join(self.directory, "restoring.db")
        self._remove(copy)
        self._scan(path, (copy, machine.blobs))
        try:
            machine.load_snapshot(copy)
        finally:
            self._remove(copy)
        if machine.last_applied != meta.index:
            raise SnapshotError(f"{path}: its database has applied {machine.last_applied}, not {meta.index}")
        return meta

    def _scan(self, path: str, extract) -> SnapshotMeta:
        """Read the whole file, checking it; with C{extract} (db path, blob store) also unpack it."""
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise SnapshotError(f"{path}: missing") from None
        with f:
            reader = _Reader(f, path)
            meta = _read_head(reader, path)
            (db_bytes,) = _U64.unpack(reader.read(_U64.size))
            db_out = open(extract[0], "wb") if extract else None
            try:
                for chunk in reader.chunks(db_bytes):
                    if db_out:
                        db_out.write(chunk)
            finally:
                if db_out:
                    db_out.close()
            (count,) = _U32.unpack(reader.read(_U32.size))
            for _ in range(count):
                digest = reader.read(_DIGEST_BYTES)
                (size,) = _U64.unpack(reader.read(_U64.size))
                data = b"".join(reader.chunks(size))
                if hashlib.sha256(data).digest() != digest:
                    raise SnapshotError(f"{path}: blob {digest.hex()} does not match its content")
                if extract:
                    extract[1].write(data)
            expected = reader.hash.digest()
            if f.read(_DIGEST_BYTES) != expected:
                raise SnapshotError(f"{path}: checksum mismatch (damaged or torn)")
            if f.read(1):
                raise SnapshotError(f"{path}: bytes after the checksum")
        if extract:
            extract[1].sync()
        return meta

    @staticmethod
    def _remove(path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _blob_files(directory: str) -> Iterator[Tuple[str, str]]:
    """(hex digest, path) of every blob file; temporary files are skipped."""
    if not os.path.isdir(directory):
        return
    for prefix in os.listdir(directory):
        folder = os.path.join(directory, prefix)
        if len(prefix) != 2 or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if len(name) == 64 and name.startswith(prefix) and all(c in "0123456789abcdef" for c in name):
                yield name, os.path.join(folder, name)
