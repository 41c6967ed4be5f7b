# -*- test-case-name: tests.cluster.rpc.test_codec -*-
"""
Raft messages (L{stalwart.cluster.raft.messages}) to bytes and back, for the
C{RaftMessage} AMP command.

One encoded message::

    +---------+--------+--------------------------------------------+
    | version | kind   | the kind's fields, in its table order      |
    | 1 byte  | 1 byte |                                            |
    +---------+--------+--------------------------------------------+

Field types (integers are unsigned, big-endian):

  - C{U64}: 8 bytes (terms and indexes);
  - C{BOOL}: 1 byte, 0 or 1, nothing else;
  - C{NODE}: a 1-byte length n (1 to 255), then n bytes of UTF-8 (node ids);
  - C{ENTRIES}: a 4-byte count, then for each entry: term C{U64}, index
    C{U64}, entry kind (1 byte), a 4-byte data length, the data;
  - C{BYTES}: a 4-byte length, then that many bytes (a snapshot chunk, a
    configuration payload).

InstallSnapshot (kind 6) and its response (kind 7) were added after kinds
1-5, whose encodings did not change: a peer that does not know them
answers L{UnsupportedMessage} for those alone.

A kind is one row of L{KINDS}: its code, its attrs class and its fields in
order.  Adding a message (InstallSnapshot, TimeoutNow...) is one new row; a
field type it needs that is missing here is one new L{FieldType}.  Changing
an existing row changes the wire format: bump L{VERSION} instead.

Decoding is strict (untrusted input, even from a peer holding the key):
truncation, trailing bytes, an unknown entry kind, a bad boolean or node id
all raise L{MalformedMessage}; an unknown version or message kind raises
L{UnsupportedMessage}, which a newer peer may legitimately send.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Mapping, Tuple

import attrs

from stalwart.cluster.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
    decode_entry_payload,
)

__all__ = [
    "VERSION",
    "KINDS",
    "CodecError",
    "MalformedMessage",
    "UnsupportedMessage",
    "FieldType",
    "Kind",
    "encode",
    "decode",
    "to_arguments",
    "from_arguments",
]

#: First byte of every encoding.
VERSION = 1

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_ENTRY_HEAD = struct.Struct(">QQBI")


class CodecError(ValueError):
    """The bytes are not a message this node can read."""


class MalformedMessage(CodecError):
    """The bytes break the format: a bug or an attack, never valid."""


class UnsupportedMessage(CodecError):
    """A version or message kind this node does not know (a newer peer)."""


@attrs.frozen
class FieldType:
    """
    How one field goes to bytes and back.

    @ivar pack: appends the encoding of a value to a list of byte strings.
    @ivar unpack: reads a value at an offset of a memoryview and returns it
        with the offset after it; raises L{MalformedMessage}.
    """

    name: str
    pack: Callable[[Any, list], None]
    unpack: Callable[[memoryview, int], Tuple[Any, int]]


def _need(view: memoryview, offset: int, length: int) -> int:
    end = offset + length
    if end > len(view):
        raise MalformedMessage("truncated")
    return end


def _pack_u64(value: int, out: list) -> None:
    out.append(_U64.pack(value))


def _unpack_u64(view: memoryview, offset: int) -> Tuple[int, int]:
    end = _need(view, offset, 8)
    return _U64.unpack_from(view, offset)[0], end


def _pack_bool(value: bool, out: list) -> None:
    assert isinstance(value, bool), value
    out.append(b"\x01" if value else b"\x00")


def _unpack_bool(view: memoryview, offset: int) -> Tuple[bool, int]:
    end = _need(view, offset, 1)
    byte = view[offset]
    if byte > 1:
        raise MalformedMessage("boolean is neither 0 nor 1")
    return byte == 1, end


def _pack_node(value: str, out: list) -> None:
    data = value.encode("utf-8")
    assert 0 < len(data) < 256, value
    out.append(bytes((len(data),)))
    out.append(data)


def _unpack_node(view: memoryview, offset: int) -> Tuple[str, int]:
    start = _need(view, offset, 1)
    length = view[offset]
    if length == 0:
        raise MalformedMessage("empty node id")
    end = _need(view, start, length)
    try:
        return str(view[start:end], "utf-8"), end
    except UnicodeDecodeError:
        raise MalformedMessage("node id is not UTF-8") from None


def _pack_entries(entries: Tuple[Entry, ...], out: list) -> None:
    out.append(_U32.pack(len(entries)))
    for entry in entries:
        out.append(_ENTRY_HEAD.pack(entry.term, entry.index, entry.kind, len(entry.data)))
        out.append(entry.data)


def _unpack_entries(view: memoryview, offset: int) -> Tuple[Tuple[Entry, ...], int]:
    offset = _need(view, offset, 4)
    (count,) = _U32.unpack_from(view, offset - 4)
    if count * _ENTRY_HEAD.size > len(view) - offset:
        raise MalformedMessage("more entries than bytes")
    entries = []
    for _ in range(count):
        start = _need(view, offset, _ENTRY_HEAD.size)
        term, index, kind, length = _ENTRY_HEAD.unpack_from(view, offset)
        end = _need(view, start, length)
        try:
            decode_entry_payload(term, index, bytes((kind,)))  # the log's own kind check
        except ValueError:
            raise MalformedMessage(f"entry {index}: unknown entry kind {kind}") from None
        entries.append(Entry(term=term, index=index, data=bytes(view[start:end]), kind=kind))
        offset = end
    return tuple(entries), offset


def _pack_bytes(value: bytes, out: list) -> None:
    out.append(_U32.pack(len(value)))
    out.append(value)


def _unpack_bytes(view: memoryview, offset: int) -> Tuple[bytes, int]:
    start = _need(view, offset, 4)
    (length,) = _U32.unpack_from(view, offset)
    end = _need(view, start, length)
    return bytes(view[start:end]), end


U64 = FieldType("u64", _pack_u64, _unpack_u64)
BYTES = FieldType("bytes", _pack_bytes, _unpack_bytes)
BOOL = FieldType("bool", _pack_bool, _unpack_bool)
NODE = FieldType("node", _pack_node, _unpack_node)
ENTRIES = FieldType("entries", _pack_entries, _unpack_entries)


@attrs.frozen
class Kind:
    """One message kind: its code on the wire, its class, its fields in order."""

    code: int
    cls: type
    fields: Tuple[Tuple[str, FieldType], ...]


#: Every message kind.  Codes are never reused.
KINDS: Tuple[Kind, ...] = (
    Kind(1, RequestVote, (
        ("term", U64), ("sender", NODE), ("recipient", NODE),
        ("last_log_index", U64), ("last_log_term", U64), ("pre_vote", BOOL), ("transfer", BOOL),
    )),
    Kind(2, RequestVoteResponse, (
        ("term", U64), ("sender", NODE), ("recipient", NODE), ("granted", BOOL), ("pre_vote", BOOL),
    )),
    Kind(3, AppendEntries, (
        ("term", U64), ("sender", NODE), ("recipient", NODE),
        ("prev_index", U64), ("prev_term", U64), ("entries", ENTRIES), ("commit", U64),
    )),
    Kind(4, AppendEntriesResponse, (
        ("term", U64), ("sender", NODE), ("recipient", NODE), ("success", BOOL),
        ("match_index", U64), ("hint", U64), ("reject_index", U64),
    )),
    Kind(5, TimeoutNow, (("term", U64), ("sender", NODE), ("recipient", NODE))),
    Kind(6, InstallSnapshot, (
        ("term", U64), ("sender", NODE), ("recipient", NODE), ("index", U64), ("snapshot_term", U64),
        ("configuration", BYTES), ("offset", U64), ("data", BYTES), ("done", BOOL),
    )),
    Kind(7, InstallSnapshotResponse, (
        ("term", U64), ("sender", NODE), ("recipient", NODE), ("index", U64), ("offset", U64),
        ("done", BOOL), ("match_index", U64),
    )),
)

_BY_CLASS: Dict[type, Kind] = {kind.cls: kind for kind in KINDS}
_BY_CODE: Dict[int, Kind] = {kind.code: kind for kind in KINDS}
assert len(_BY_CLASS) == len(_BY_CODE) == len(KINDS)


def encode(message: Message) -> bytes:
    """
    The bytes of C{message}.  A message the format cannot hold (a negative
    term, an empty node id) is a bug in the caller and raises at once.
    """
    kind = _BY_CLASS[type(message)]
    out = [bytes((VERSION, kind.code))]
    for name, field in kind.fields:
        field.pack(getattr(message, name), out)
    return b"".join(out)


def decode(data: bytes) -> Message:
    """
    The message in C{data}; raises L{MalformedMessage} or
    L{UnsupportedMessage} (both L{CodecError}).
    """
    view = memoryview(data)
    if len(view) < 2:
        raise MalformedMessage("truncated")
    if view[0] != VERSION:
        raise UnsupportedMessage(f"version {view[0]}")
    kind = _BY_CODE.get(view[1])
    if kind is None:
        raise UnsupportedMessage(f"message kind {view[1]}")
    offset = 2
    values = {}
    for name, field in kind.fields:
        values[name], offset = field.unpack(view, offset)
    if offset != len(view):
        raise MalformedMessage("trailing bytes")
    return kind.cls(**values)


def to_arguments(message: Message) -> Dict[str, bytes]:
    """The keyword arguments of the C{RaftMessage} AMP command carrying C{message}."""
    return {"message": encode(message)}


def from_arguments(arguments: Mapping[str, Any]) -> Message:
    """Inverse of L{to_arguments}; raises L{CodecError}."""
    return decode(arguments["message"])
