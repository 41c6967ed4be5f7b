# -*- test-case-name: tests.cluster.rpc.test_chunks -*-
"""
An AMP argument for byte strings longer than AMP's 65,535-byte value limit.

AMP (U{https://amp-protocol.net/}) limits each value of a box to 65,535
bytes.  L{ChunkedBytes} spreads one value over several keys of the same
box, so the box stays the unit of delivery (a truncated box is never
delivered at all).  For an argument named C{message} holding n chunks::

    message     the chunk count n, ASCII decimal without leading zeros
    message.0   bytes 0 .. 65,534
    message.1   bytes 65,535 .. 131,069
    ...
    message.<n-1>  the rest: 1 to 65,535 bytes

An empty value has n = 0 and no chunk keys.  Decoding is strict: every
chunk but the last is exactly L{CHUNK_BYTES} long, the last is not empty,
and the count is at most the argument's C{chunks_max}; anything else raises
L{MalformedChunks}.  The total size of a box is limited by the protocol
(L{stalwart.cluster.rpc.protocol}), not here.
"""

from __future__ import annotations

from typing import Any, Dict

from twisted.protocols import amp

__all__ = ["CHUNK_BYTES", "ChunkedBytes", "MalformedChunks", "chunk_keys"]

#: Bytes per chunk: AMP's largest value.
CHUNK_BYTES = 65535


class MalformedChunks(ValueError):
    """The chunk keys of a box do not form a value."""


def chunk_keys(name: bytes, count: int) -> list:
    """The box keys of the C{count} chunks of argument C{name}, in order."""
    return [name + b"." + str(i).encode("ascii") for i in range(count)]


class ChunkedBytes(amp.Argument):
    """
    A C{bytes} argument of any length up to C{chunks_max * CHUNK_BYTES}.

    @ivar chunks_max: most chunks accepted when decoding; the default
        (1024, about 64 MiB) only bounds the count field, since the protocol
        already limits the bytes of a whole box.
    """

    def __init__(self, optional: bool = False, chunks_max: int = 1024) -> None:
        super().__init__(optional=optional)
        self.chunks_max = chunks_max

    def toBox(self, name: bytes, strings: Dict[bytes, bytes], objects: Dict[str, Any], proto: Any) -> None:
        value = self.retrieve(objects, amp._wireNameToPythonIdentifier(name), proto)
        if self.optional and value is None:
            return
        if not isinstance(value, bytes):
            raise TypeError(f"{name!r} must be bytes, not {type(value).__name__}")
        count = -(-len(value) // CHUNK_BYTES)
        strings[name] = str(count).encode("ascii")
        for i, key in enumerate(chunk_keys(name, count)):
            strings[key] = value[i * CHUNK_BYTES:(i + 1) * CHUNK_BYTES]

    def fromBox(self, name: bytes, strings: Dict[bytes, bytes], objects: Dict[str, Any], proto: Any) -> None:
        target = amp._wireNameToPythonIdentifier(name)
        raw = strings.pop(name, None)
        if raw is None:
            if self.optional:
                objects[target] = None
                return
            raise MalformedChunks(f"{name!r}: missing")
        count = self._count(name, raw)
        chunks = []
        for i, key in enumerate(chunk_keys(name, count)):
            chunk = strings.pop(key, None)
            if chunk is None:
                raise MalformedChunks(f"{name!r}: chunk {i} of {count} missing")
            last = i == count - 1
            if (len(chunk) != CHUNK_BYTES and not last) or not chunk:
                raise MalformedChunks(f"{name!r}: chunk {i} has {len(chunk)} bytes")
            chunks.append(chunk)
        objects[target] = b"".join(chunks)

    def _count(self, name: bytes, raw: bytes) -> int:
        if not raw.isdigit() or not raw.isascii() or (raw[:1] == b"0" and raw != b"0") or len(raw) > 10:
            raise MalformedChunks(f"{name!r}: bad chunk count")
        count = int(raw)
        if count > self.chunks_max:
            raise MalformedChunks(f"{name!r}: {count} chunks, at most {self.chunks_max}")
        return count
