# -*- test-case-name: tests.cluster.raft.test_hardstate -*-
"""
Raft's hard state on disk: C{currentTerm} and C{votedFor}, which a server
persists before answering any RPC (Raft §5.1, Figure 2 "Persistent state on
all servers"; a vote given twice in one term would allow two leaders, §5.2).

File format (integers unsigned, big-endian)::

    0        1                    9       10          12            12+n     16+n
    +--------+--------------------+-------+-----------+-------------+--------+
    | ver 01 | term (u64)         | voted | n (u16)   | vote: n     | CRC32  |
    |        |                    | 0 / 1 | bytes     | bytes UTF-8 | (u32)  |
    +--------+--------------------+-------+-----------+-------------+--------+

C{voted} is 0 (no vote, C{n} is 0) or 1.  The CRC-32 (C{zlib.crc32}, see
L{stalwart.cluster.raft.segments.format} for why not CRC-32C) covers every
byte before it, and nothing may follow it.

The file is replaced atomically: write C{<path>.tmp}, fsync it, rename it over
C{<path>}, fsync the directory.  A crash before the rename leaves the old
state (a stale C{.tmp} is overwritten by the next save); a crash after it,
before the directory fsync, leaves the old or the new state, both whole.
"""

from __future__ import annotations

import os.path
import struct
import zlib

import attrs

from stalwart.cluster.raft.segments.files import FileSystem, OSFileSystem
from stalwart.cluster.raft.segments.format import CorruptLogError

__all__ = ["HardState", "HardStateFile", "encode_hard_state", "decode_hard_state"]

_VERSION = 1
_FIXED = struct.Struct(">BQBH")
_CRC = struct.Struct(">I")
VOTE_BYTES_MAX = 0xFFFF
"""Longest node id that can be stored as a vote, in UTF-8 bytes (u16 length)."""


def _term(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError(f"term must be an int in 0 .. 2**64-1, got {value!r}")


def _vote(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or len(value.encode("utf-8")) > VOTE_BYTES_MAX):
        raise ValueError(f"vote must be None or a node id of at most {VOTE_BYTES_MAX} UTF-8 bytes")


@attrs.frozen
class HardState:
    """
    @ivar term: the latest term this server has seen (0 at first boot).
    @ivar vote: the node id voted for in C{term}, or L{None}.
    """

    term: int = attrs.field(default=0, validator=_term)
    vote: str | None = attrs.field(default=None, validator=_vote)


def encode_hard_state(state: HardState) -> bytes:
    """
    @return: the file's bytes for C{state}.
    """
    vote = b"" if state.vote is None else state.vote.encode("utf-8")
    body = _FIXED.pack(_VERSION, state.term, state.vote is not None, len(vote)) + vote
    return body + _CRC.pack(zlib.crc32(body))


def decode_hard_state(data: bytes) -> HardState:
    """
    @raise ValueError: C{data} is not a valid hard state; the message says why.
    """
    if len(data) < _FIXED.size + _CRC.size:
        raise ValueError(f"{len(data)} bytes, too short")
    version, term, voted, length = _FIXED.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"unknown format version {version}")
    if len(data) != _FIXED.size + length + _CRC.size:
        raise ValueError(f"{len(data)} bytes, expected {_FIXED.size + length + _CRC.size}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise ValueError("CRC mismatch")
    if voted not in (0, 1) or (voted == 0 and length):
        raise ValueError(f"bad vote flag {voted} with {length} vote bytes")
    try:
        vote = data[_FIXED.size : _FIXED.size + length].decode("utf-8") if voted else None
    except UnicodeDecodeError:
        raise ValueError("vote is not UTF-8") from None
    return HardState(term=term, vote=vote)


class HardStateFile:
    """
    The hard state, kept in one file replaced atomically on every save.
    """

    _size_max = _FIXED.size + VOTE_BYTES_MAX + _CRC.size

    def __init__(self, path: str, fs: FileSystem | None = None) -> None:
        """
        @param path: the file, e.g. C{<data>/raft/hardstate}; its directory
            is created on the first save.
        @param fs: the file system; the real one by default.
        """
        self._path = path
        self._fs = OSFileSystem() if fs is None else fs

    def load(self) -> HardState:
        """
        @return: the saved state, or C{HardState()} if none was ever saved.
        @raise CorruptLogError: the file exists but is damaged.
        """
        if not self._fs.exists(self._path):
            return HardState()
        reader = self._fs.open_read(self._path)
        try:
            data = reader.read_at(0, self._size_max + 1)
        finally:
            reader.close()
        try:
            return decode_hard_state(data)
        except ValueError as e:
            raise CorruptLogError(f"raft hard state damaged: {self._path} offset 0: {e}; refusing to start") from None

    def save(self, state: HardState) -> None:
        """
        Replace the saved state durably: when this returns, a crash keeps
        C{state}; a crash during it keeps the old state or C{state}.
        """
        directory = os.path.dirname(self._path) or "."
        self._fs.makedirs(directory)
        temporary = self._path + ".tmp"
        if self._fs.exists(temporary):
            self._fs.remove(temporary)
        handle = self._fs.open_append(temporary)
        try:
            handle.write(encode_hard_state(state))
            handle.sync()
        finally:
            handle.close()
        self._fs.rename(temporary, self._path)
        self._fs.fsync_dir(directory)
