# -*- test-case-name: tests.cluster.swim.test_codec -*-
"""
SWIM packets (L{stalwart.cluster.swim.messages.Packet}) to bytes and back:
the plaintext that L{stalwart.cluster.swim.seal} then seals.

One packet::

    +---------+--------+--------+-------------+-----------+-------------+
    | version | sender | body   | body fields | n updates | n updates   |
    | 1 byte  | str8   | 1 byte | (by kind)   | 1 byte    | (by kind)   |
    +---------+--------+--------+-------------+-----------+-------------+

Field types: C{varint} is an unsigned LEB128 integer below 2**64 in its
shortest form (at most 10 bytes); C{str8} is a 1-byte length then that many
bytes of UTF-8; C{strv} is a varint length then UTF-8; C{u16} is 2 bytes
big-endian.

Bodies:

  - 1 Ping: seq varint, target str8 (empty: a seed probe, no target);
  - 2 PingReq: seq varint, target str8, host str8, port u16;
  - 3 Ack: seq varint;  4 Nack: seq varint;  5 Gossip: nothing.

Updates, each a kind byte then:

  - 1 Alive: node str8, incarnation varint, host str8, port u16,
    jmap-url strv, flags 1 byte (bit 0: read replica; other bits 0),
    term varint, last index varint;
  - 2 Suspect and 3 Dead: node str8, incarnation varint, accuser str8;
  - 4 Left: node str8, incarnation varint.

Decoding is strict: the bytes come from a peer that holds the key, but a
bug or a newer peer must not crash this one.  Truncation, trailing bytes,
an unknown kind, over-long varints, bad UTF-8 or values the attrs
validators refuse raise L{MalformedPacket}; an unknown version raises
L{UnsupportedVersion}.  A new body or update kind means a new L{VERSION}.

A full state (L{encode_records}, for a push-pull exchange over the RPC
connection) is the version byte, a varint count, then that many updates
as above.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, List, Tuple

from stalwart.cluster.swim.messages import (
    Ack,
    Alive,
    Body,
    Dead,
    Gossip,
    Left,
    MemberInfo,
    Nack,
    Packet,
    Ping,
    PingReq,
    Suspect,
    Update,
)

__all__ = [
    "VERSION",
    "UPDATES_MAX",
    "CodecError",
    "MalformedPacket",
    "UnsupportedVersion",
    "encode",
    "decode",
    "encode_update",
    "update_size",
    "packet_size",
    "encode_records",
    "decode_records",
]

#: First byte of every packet.
VERSION = 1
#: The update count is one byte.
UPDATES_MAX = 255

_PING, _PING_REQ, _ACK, _NACK, _GOSSIP = 1, 2, 3, 4, 5
_ALIVE, _SUSPECT, _DEAD, _LEFT = 1, 2, 3, 4


class CodecError(ValueError):
    """The bytes are not a packet this node can read."""


class MalformedPacket(CodecError):
    """The bytes break the format."""


class UnsupportedVersion(CodecError):
    """The packet is of a version this node does not know."""


# Writing.

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str8(value: str) -> bytes:
    data = value.encode("utf-8")
    return bytes([len(data)]) + data


def _strv(value: str) -> bytes:
    data = value.encode("utf-8")
    return _varint(len(data)) + data


def _address(address: Tuple[str, int]) -> bytes:
    return _str8(address[0]) + address[1].to_bytes(2, "big")


def _encode_body(body: Body) -> bytes:
    if isinstance(body, Ping):
        return bytes([_PING]) + _varint(body.seq) + _str8(body.target or "")
    if isinstance(body, PingReq):
        return bytes([_PING_REQ]) + _varint(body.seq) + _str8(body.target) + _address(body.address)
    if isinstance(body, Ack):
        return bytes([_ACK]) + _varint(body.seq)
    if isinstance(body, Nack):
        return bytes([_NACK]) + _varint(body.seq)
    if isinstance(body, Gossip):
        return bytes([_GOSSIP])
    raise TypeError(f"not a body: {body!r}")


def encode_update(update: Update) -> bytes:
    """One update's bytes (kind byte included)."""
    if isinstance(update, Alive):
        info = update.info
        return b"".join([
            bytes([_ALIVE]), _str8(info.node_id), _varint(update.incarnation), _address(info.rpc_address),
            _strv(info.jmap_url), bytes([1 if info.read_replica else 0]), _varint(info.term),
            _varint(info.last_index),
        ])
    if isinstance(update, Suspect):
        return bytes([_SUSPECT]) + _str8(update.node_id) + _varint(update.incarnation) + _str8(update.accuser)
    if isinstance(update, Dead):
        return bytes([_DEAD]) + _str8(update.node_id) + _varint(update.incarnation) + _str8(update.accuser)
    if isinstance(update, Left):
        return bytes([_LEFT]) + _str8(update.node_id) + _varint(update.incarnation)
    raise TypeError(f"not an update: {update!r}")


@functools.lru_cache(maxsize=4096)
def update_size(update: Update) -> int:
    """Bytes C{update} takes in a packet (cached: packing asks for the same updates again and again)."""
    return len(encode_update(update))


def packet_size(sender: str, body: Body) -> int:
    """Bytes of a packet from C{sender} with C{body} and no update yet (count byte included)."""
    return 1 + len(_str8(sender)) + len(_encode_body(body)) + 1


def encode(packet: Packet) -> bytes:
    """The bytes of C{packet}; at most L{UPDATES_MAX} updates."""
    if len(packet.updates) > UPDATES_MAX:
        raise ValueError("too many updates for one packet")
    return b"".join([bytes([VERSION]), _str8(packet.sender), _encode_body(packet.body),
                     bytes([len(packet.updates)])] + [encode_update(u) for u in packet.updates])


# Reading.

class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise MalformedPacket("truncated packet")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = shift = 0
        for count in range(10):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and count > 0:
                    raise MalformedPacket("over-long varint")
                if value >= 2 ** 64:
                    raise MalformedPacket("varint above 2**64")
                return value
        raise MalformedPacket("varint longer than 10 bytes")

    def text(self, size: int) -> str:
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("bad UTF-8") from None

    def str8(self) -> str:
        return self.text(self.byte())

    def strv(self) -> str:
        return self.text(self.varint())

    def address(self) -> Tuple[str, int]:
        host = self.str8()
        return host, int.from_bytes(self.take(2), "big")


def _read_alive(r: _Reader) -> Alive:
    node, incarnation, address, url = r.str8(), r.varint(), r.address(), r.strv()
    flags = r.byte()
    if flags > 1:
        raise MalformedPacket("unknown member flags")
    info = MemberInfo(node_id=node, rpc_address=address, jmap_url=url, read_replica=bool(flags),
                      term=r.varint(), last_index=r.varint())
    return Alive(info=info, incarnation=incarnation)


_UPDATES: Dict[int, Callable[[_Reader], Update]] = {
    _ALIVE: _read_alive,
    _SUSPECT: lambda r: Suspect(node_id=r.str8(), incarnation=r.varint(), accuser=r.str8()),
    _DEAD: lambda r: Dead(node_id=r.str8(), incarnation=r.varint(), accuser=r.str8()),
    _LEFT: lambda r: Left(node_id=r.str8(), incarnation=r.varint()),
}

_BODIES: Dict[int, Callable[[_Reader], Body]] = {
    _PING: lambda r: Ping(seq=r.varint(), target=r.str8() or None),
    _PING_REQ: lambda r: PingReq(seq=r.varint(), target=r.str8(), address=r.address()),
    _ACK: lambda r: Ack(seq=r.varint()),
    _NACK: lambda r: Nack(seq=r.varint()),
    _GOSSIP: lambda r: Gossip(),
}


def encode_records(records: List[Update]) -> bytes:
    """A full state (L{stalwart.cluster.swim.members.Membership.full_state}) as bytes."""
    return bytes([VERSION]) + _varint(len(records)) + b"".join(encode_update(r) for r in records)


def decode_records(data: bytes, records_max: int = 100000) -> List[Update]:
    """
    The records of an L{encode_records} encoding (at most C{records_max}).

    @raise CodecError: as L{decode}.
    """
    r = _Reader(bytes(data))
    version = r.byte()
    if version != VERSION:
        raise UnsupportedVersion(f"records version {version}")
    try:
        count = r.varint()
        if count > records_max:
            raise MalformedPacket("too many records")
        records = [_read_update(r) for _ in range(count)]
        if r.at != len(r.data):
            raise MalformedPacket("trailing bytes")
        return records
    except (ValueError, TypeError) as e:
        if isinstance(e, CodecError):
            raise
        raise MalformedPacket(str(e)) from None


def _read_update(r: _Reader) -> Update:
    kind = r.byte()
    if kind not in _UPDATES:
        raise MalformedPacket(f"unknown update kind {kind}")
    return _UPDATES[kind](r)


def decode(data: bytes) -> Packet:
    """
    The packet in C{data}.

    @raise UnsupportedVersion: for a version other than L{VERSION}.
    @raise MalformedPacket: for anything else wrong.
    """
    r = _Reader(bytes(data))
    version = r.byte()
    if version != VERSION:
        raise UnsupportedVersion(f"packet version {version}")
    try:
        sender = r.str8()
        body_kind = r.byte()
        if body_kind not in _BODIES:
            raise MalformedPacket(f"unknown body kind {body_kind}")
        body = _BODIES[body_kind](r)
        updates: List[Update] = []
        for _ in range(r.byte()):
            updates.append(_read_update(r))
        if r.at != len(r.data):
            raise MalformedPacket("trailing bytes")
        return Packet(sender=sender, body=body, updates=tuple(updates))
    except (ValueError, TypeError) as e:
        if isinstance(e, CodecError):
            raise
        raise MalformedPacket(str(e)) from None
