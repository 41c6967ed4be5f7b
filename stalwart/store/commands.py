# -*- test-case-name: tests.store.test_commands -*-
"""
Commands: what a log entry asks the state machine to do (DESIGN.md section 1).

A command is self-contained and deterministic: it carries the server-chosen
time, resolved references and any raw bytes, so applying it never reads a
clock, randomness or anything outside the state.

Encoding (the payload of an ENTRY_NORMAL entry)::

    +---------+-----------+-------------+-------------------+------------+-----------+
    | version | kind      | kind: ASCII | args length (u32) | args: UTF-8| body: raw |
    | 0x01    | length u8 |             | big-endian        | JSON object| bytes     |
    +---------+-----------+-------------+-------------------+------------+-----------+

The kind comes first so that it can be read without parsing the rest
(L{command_kind}).  The body holds bytes that JSON would bloat (a blob
upload, a delivered message) exactly once.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Mapping

import attrs

__all__ = ["Command", "encode_command", "decode_command", "command_kind", "BadCommand"]

VERSION = 1
_LENGTH = struct.Struct(">I")


class BadCommand(ValueError):
    """The payload is not a command this version understands."""


@attrs.frozen
class Command:
    kind: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    body: bytes = b""


def encode_command(command: Command) -> bytes:
    kind = command.kind.encode("ascii")
    assert len(kind) < 256, command.kind
    args = json.dumps(command.args, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return b"".join((bytes((VERSION, len(kind))), kind, _LENGTH.pack(len(args)), args, command.body))


def _split(payload: bytes):
    """(kind, args bytes, body offset), or raise BadCommand."""
    if len(payload) < 2:
        raise BadCommand("command shorter than its header")
    if payload[0] != VERSION:
        raise BadCommand(f"unknown command version {payload[0]}")
    start = 2 + payload[1]
    if len(payload) < start + _LENGTH.size:
        raise BadCommand("command header runs past the payload")
    try:
        kind = payload[2:start].decode("ascii")
    except UnicodeDecodeError:
        raise BadCommand("command kind is not ASCII") from None
    (length,) = _LENGTH.unpack_from(payload, start)
    end = start + _LENGTH.size + length
    if end > len(payload):
        raise BadCommand("command arguments run past the payload")
    return kind, payload[start + _LENGTH.size : end], end


def decode_command(payload: bytes) -> Command:
    kind, raw, end = _split(payload)
    try:
        args = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadCommand(f"undecodable command arguments: {e}") from None
    if not isinstance(args, dict):
        raise BadCommand("command arguments are not an object")
    return Command(kind=kind, args=args, body=bytes(payload[end:]))


def command_kind(payload: bytes) -> str:
    """The kind of an encoded command, without decoding the rest; "" if unreadable."""
    try:
        return _split(payload)[0]
    except BadCommand:
        return ""
