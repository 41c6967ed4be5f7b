# -*- test-case-name: tests.cluster.raft.segments.test_memfs -*-
"""
An in-memory L{FileSystem} that can simulate a crash, for the segment log's
tests and the Raft simulation (tests/simulation/).

It keeps, for every file, what the page cache would hold (the current bytes)
and what is on the platter (the bytes at the last fsync), and for every
directory which names were made durable by the last directory fsync.
L{MemoryFileSystem.crash} throws away everything not covered by an fsync, the
way a power cut does on a POSIX file system, optionally leaving a torn write.
"""

from __future__ import annotations

import os.path

import attrs

from stalwart.cluster.raft.segments.files import AppendFile, ReadFile

__all__ = ["MemoryFileSystem"]


@attrs.define
class _Inode:
    data: bytearray = attrs.Factory(bytearray)
    synced: bytes = b""


@attrs.define
class _MemoryAppendFile:
    _fs: MemoryFileSystem
    _inode: _Inode
    _generation: int
    _closed: bool = False

    def _check(self) -> None:
        if self._closed:
            raise ValueError("I/O on a closed file")
        if self._generation != self._fs._generation:
            raise OSError("file handle from before a simulated crash")

    def write(self, data: bytes) -> None:
        self._check()
        self._inode.data += data

    def sync(self) -> None:
        self._check()
        self._fs.syncs += 1
        self._inode.synced = bytes(self._inode.data)

    def truncate(self, size: int) -> None:
        self._check()
        del self._inode.data[size:]

    def size(self) -> int:
        self._check()
        return len(self._inode.data)

    def close(self) -> None:
        self._closed = True


@attrs.define
class _MemoryReadFile:
    _fs: MemoryFileSystem
    _inode: _Inode
    _generation: int
    _closed: bool = False

    def _check(self) -> None:
        if self._closed:
            raise ValueError("I/O on a closed file")
        if self._generation != self._fs._generation:
            raise OSError("file handle from before a simulated crash")

    def read_at(self, offset: int, size: int) -> bytes:
        self._check()
        return bytes(self._inode.data[offset : offset + size])

    def size(self) -> int:
        self._check()
        return len(self._inode.data)

    def close(self) -> None:
        self._closed = True


class MemoryFileSystem:
    """
    Files in a dict, with the durability rules of a POSIX file system.

      - A file's bytes are durable up to its last C{sync()}.
      - A name (created, renamed or removed) is durable once its directory
        was fsynced with L{fsync_dir}.  Directories themselves are created
        durable (the segment log never depends on that).

    @ivar syncs: number of file syncs so far, for tests that count them.
    @ivar dir_syncs: number of directory fsyncs so far.
    """

    def __init__(self) -> None:
        self._names: dict[str, _Inode] = {}
        self._durable_names: dict[str, _Inode] = {}
        self._directories: set[str] = {"/"}
        self._generation = 0
        self.syncs = 0
        self.dir_syncs = 0

    # --- FileSystem -------------------------------------------------------

    def makedirs(self, path: str) -> None:
        path = os.path.normpath(path)
        while path not in self._directories:
            self._directories.add(path)
            path = os.path.dirname(path)

    def listdir(self, path: str) -> list[str]:
        path = os.path.normpath(path)
        if path not in self._directories:
            raise FileNotFoundError(path)
        return [os.path.basename(p) for p in self._names if os.path.dirname(p) == path]

    def exists(self, path: str) -> bool:
        path = os.path.normpath(path)
        return path in self._names or path in self._directories

    def open_append(self, path: str) -> AppendFile:
        path = self._file_path(path)
        inode = self._names.setdefault(path, _Inode())
        return _MemoryAppendFile(self, inode, self._generation)

    def open_read(self, path: str) -> ReadFile:
        path = os.path.normpath(path)
        if path not in self._names:
            raise FileNotFoundError(path)
        return _MemoryReadFile(self, self._names[path], self._generation)

    def rename(self, source: str, destination: str) -> None:
        source = os.path.normpath(source)
        if source not in self._names:
            raise FileNotFoundError(source)
        self._names[self._file_path(destination)] = self._names.pop(source)

    def remove(self, path: str) -> None:
        path = os.path.normpath(path)
        if path not in self._names:
            raise FileNotFoundError(path)
        del self._names[path]

    def fsync_dir(self, path: str) -> None:
        path = os.path.normpath(path)
        self.dir_syncs += 1
        for name in [n for n in self._durable_names if os.path.dirname(n) == path]:
            del self._durable_names[name]
        for name, inode in self._names.items():
            if os.path.dirname(name) == path:
                self._durable_names[name] = inode

    # --- simulation -------------------------------------------------------

    def crash(self, torn_bytes: int = 0, zero_fill: bool = False) -> None:
        """
        Simulate a power cut and reboot: every byte and name not covered by
        an fsync is lost, and all open handles stop working.

        @param torn_bytes: of each file's unsynced appended bytes, keep this
            many (a write that reached the disk only in part).
        @param zero_fill: keep the torn bytes as zeros instead: the file's size
            was updated but its data blocks were never written.
        """
        self._generation += 1
        self._names = dict(self._durable_names)
        for inode in {id(i): i for i in self._names.values()}.values():
            tail = b""
            if torn_bytes and inode.data[: len(inode.synced)] == inode.synced:
                tail = bytes(inode.data[len(inode.synced) : len(inode.synced) + torn_bytes])
                if zero_fill:
                    tail = bytes(len(tail))
            inode.data = bytearray(inode.synced + tail)
            inode.synced = bytes(inode.data)

    def read_bytes(self, path: str) -> bytes:
        """
        @return: a file's current bytes (test helper).
        """
        return bytes(self._names[os.path.normpath(path)].data)

    def write_bytes(self, path: str, offset: int, data: bytes) -> None:
        """
        Overwrite bytes in place, durably: simulates damage on the disk
        (test helper).
        """
        inode = self._names[os.path.normpath(path)]
        inode.data[offset : offset + len(data)] = data
        inode.synced = bytes(inode.data)

    def _file_path(self, path: str) -> str:
        path = os.path.normpath(path)
        if os.path.dirname(path) not in self._directories:
            raise FileNotFoundError(os.path.dirname(path))
        return path
