# -*- test-case-name: tests.store.test_commands -*-
"""
Commands: what a log entry asks the state machine to do (DESIGN.md section 1).

A command is self-contained and deterministic: it carries the server-chosen
time, resolved references and any raw bytes, so applying it never reads a
clock, randomness or anything outside the state.

Encoding (the payload of an ENTRY_NORMAL entry)::

    +---------+---------------------+------------------+-----------------+
    | version | header length (u32) | header: UTF-8    | body: raw bytes |
    | 0x01    | big-endian          | JSON object      | (may be empty)  |
    +---------+---------------------+------------------+-----------------+

The header is C{{"kind": str, "args": object}}.  The body holds bytes that
JSON would bloat (a blob upload, a delivered message) exactly once.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Mapping

import attrs

__all__ = ["Command", "encode_command", "decode_command", "command_kind", "BadCommand"]

VERSION = 1
_HEADER = struct.Struct(">BI")


class BadCommand(ValueError):
    """The payload is not a command this version understands."""


@attrs.frozen
class Command:
    kind: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    body: bytes = b""


def encode_command(command: Command) -> bytes:
    header = json.dumps(
        {"kind": command.kind, "args": command.args},
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    ).encode("utf-8")
    return b"".join((_HEADER.pack(VERSION, len(header)), header, command.body))


def decode_command(payload: bytes) -> Command:
    if len(payload) < _HEADER.size:
        raise BadCommand("command shorter than its header")
    version, length = _HEADER.unpack_from(payload)
    if version != VERSION:
        raise BadCommand(f"unknown command version {version}")
    end = _HEADER.size + length
    if end > len(payload):
        raise BadCommand("command header runs past the payload")
    try:
        header = json.loads(payload[_HEADER.size : end].decode("utf-8"))
        kind, args = header["kind"], header["args"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise BadCommand(f"undecodable command header: {e}") from None
    if not isinstance(kind, str) or not isinstance(args, dict):
        raise BadCommand("command header has the wrong shape")
    return Command(kind=kind, args=args, body=bytes(payload[end:]))


def command_kind(payload: bytes) -> str:
    """The kind of an encoded command, reading only its header; "" if undecodable."""
    if len(payload) < _HEADER.size or payload[0] != VERSION:
        return ""
    (length,) = struct.unpack_from(">I", payload, 1)
    try:
        kind = json.loads(payload[_HEADER.size : _HEADER.size + length].decode("utf-8")).get("kind")
    except (UnicodeDecodeError, ValueError, AttributeError):
        return ""
    return kind if isinstance(kind, str) else ""
