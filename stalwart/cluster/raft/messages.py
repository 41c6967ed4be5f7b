# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
Raft entries, RPC messages and the L{Ready} batch the core hands its driver.

Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", figure 2: RequestVote and AppendEntries with their
results; from Ongaro's thesis "Consensus: Bridging Theory and Practice",
the pre-vote flag (section 9.6), TimeoutNow for leadership transfer (3.10)
and configuration entries for single-server membership changes (4.1).
Messages carry sender and recipient so that a simulated network or the AMP
shell can route them without looking inside.

Configuration entry payload (the data of an C{ENTRY_CONFIG} entry), all
integers big-endian::

    +---------+-----------+---------------------+------------+----------------------+
    | version | n voters  | n x (len, utf-8 id) | n learners | n x (len, utf-8 id)  |
    | 1 byte  | 2 bytes   | 2 bytes + len bytes | 2 bytes    | 2 bytes + len bytes  |
    +---------+-----------+---------------------+------------+----------------------+

Ids are sorted, so a configuration has exactly one encoding; version is 1.
"""

from __future__ import annotations

import struct
from typing import FrozenSet, Optional, Tuple, Union

import attrs

__all__ = [
    "ENTRY_NORMAL",
    "ENTRY_NOOP",
    "ENTRY_CONFIG",
    "Entry",
    "Configuration",
    "encode_configuration",
    "decode_configuration",
    "TimeoutNow",
    "RequestVote",
    "RequestVoteResponse",
    "AppendEntries",
    "AppendEntriesResponse",
    "Message",
    "Ready",
    "encode_entry_payload",
    "decode_entry_payload",
]

#: A client command for the state machine.
ENTRY_NORMAL = 0
#: The empty entry a new leader appends so that it can commit earlier terms
#: (Raft section 5.4.2, section 8).
ENTRY_NOOP = 1
#: A new cluster configuration (L{Configuration}); it takes effect on every
#: node as soon as the node appends it (thesis section 4.1).
ENTRY_CONFIG = 2

_KINDS = (ENTRY_NORMAL, ENTRY_NOOP, ENTRY_CONFIG)

_CONFIG_VERSION = 1


def _disjoint(instance: "Configuration", attribute, learners: FrozenSet[str]) -> None:
    if instance.voters & learners:
        raise ValueError(f"voters and learners overlap: {sorted(instance.voters & learners)}")


@attrs.frozen
class Configuration:
    """
    The members of a Raft group: C{voters} elect leaders and form quorums;
    C{learners} receive the log but never vote (thesis 4.2.1: new servers
    join without votes until caught up; read-only replicas stay so).
    """

    voters: FrozenSet[str] = attrs.field(default=frozenset(), converter=frozenset)
    learners: FrozenSet[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_disjoint)

    @property
    def members(self) -> FrozenSet[str]:
        return self.voters | self.learners


def _encode_ids(ids: FrozenSet[str]) -> bytes:
    out = [struct.pack(">H", len(ids))]
    for member in sorted(ids):
        raw = member.encode("utf-8")
        out.append(struct.pack(">H", len(raw)) + raw)
    return b"".join(out)


def encode_configuration(config: Configuration) -> bytes:
    """The C{ENTRY_CONFIG} payload for C{config}; see the module docstring."""
    return bytes((_CONFIG_VERSION,)) + _encode_ids(config.voters) + _encode_ids(config.learners)


def decode_configuration(data: bytes) -> Configuration:
    """Inverse of L{encode_configuration}; raises L{ValueError} on anything malformed."""
    if not data or data[0] != _CONFIG_VERSION:
        raise ValueError("configuration: unknown version")
    offset = 1
    groups = []
    for _ in range(2):
        if offset + 2 > len(data):
            raise ValueError("configuration: truncated")
        (count,) = struct.unpack_from(">H", data, offset)
        offset += 2
        ids = []
        for _ in range(count):
            if offset + 2 > len(data):
                raise ValueError("configuration: truncated")
            (length,) = struct.unpack_from(">H", data, offset)
            offset += 2
            if offset + length > len(data):
                raise ValueError("configuration: truncated")
            ids.append(data[offset : offset + length].decode("utf-8"))
            offset += length
        if ids != sorted(set(ids)):
            raise ValueError("configuration: ids not sorted and unique")
        groups.append(frozenset(ids))
    if offset != len(data):
        raise ValueError("configuration: trailing bytes")
    return Configuration(voters=groups[0], learners=groups[1])


@attrs.frozen
class Entry:
    """One log entry."""

    term: int
    index: int
    data: bytes = b""
    kind: int = ENTRY_NORMAL

    def size(self) -> int:
        """Approximate size on the wire, for batching limits."""
        return len(self.data) + 24


def encode_entry_payload(entry: Entry) -> bytes:
    """
    Segment record payload for C{entry}: one kind byte, then the data.
    Term and index live in the record header.
    """
    return bytes((entry.kind,)) + entry.data


def decode_entry_payload(term: int, index: int, payload: bytes) -> Entry:
    """Inverse of L{encode_entry_payload}; raises L{ValueError} on an unknown kind."""
    if not payload or payload[0] not in _KINDS:
        raise ValueError(f"log entry {index}: unknown entry kind")
    return Entry(term=term, index=index, data=bytes(payload[1:]), kind=payload[0])


@attrs.frozen
class RequestVote:
    """
    C{pre_vote}: a PreVote (thesis 9.6) for C{term}, which the sender has
    not entered; granting one changes nothing on the voter.  C{transfer}:
    the sender campaigns because the leader handed over (thesis 3.10), so
    voters grant it even while they hear from that leader (the lease of
    thesis 4.2.3 would otherwise refuse it).
    """

    term: int
    sender: str
    recipient: str
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


@attrs.frozen
class RequestVoteResponse:
    """A granted pre-vote carries the pre-vote's term; anything else the voter's."""

    term: int
    sender: str
    recipient: str
    granted: bool
    pre_vote: bool = False


@attrs.frozen
class AppendEntries:
    term: int
    sender: str
    recipient: str
    prev_index: int
    prev_term: int
    entries: Tuple[Entry, ...]
    commit: int


@attrs.frozen
class AppendEntriesResponse:
    """
    C{match_index} is the follower's last index matching the leader after a
    success.  On a rejection C{hint} is the index the leader should try next
    (the fast back-off of Raft section 5.3, end).
    """

    term: int
    sender: str
    recipient: str
    success: bool
    match_index: int = 0
    hint: int = 0
    reject_index: int = 0
    """On a rejection, the C{prev_index} that was refused: lets the leader
    ignore rejections of messages it has since superseded."""


@attrs.frozen
class TimeoutNow:
    """The leader hands over: start an election at once (thesis 3.10)."""

    term: int
    sender: str
    recipient: str


Message = Union[RequestVote, RequestVoteResponse, AppendEntries, AppendEntriesResponse, TimeoutNow]


@attrs.frozen
class Ready:
    """
    What the driver must do, in the order documented in
    L{stalwart.cluster.raft.driver}: persist C{hard_state} (if not None) and
    C{entries}, send C{messages}, apply C{committed}, then call
    C{RaftCore.advance(ready)}.
    """

    hard_state: Optional[object]
    entries: Tuple[Entry, ...]
    messages: Tuple[Message, ...]
    committed: Tuple[Entry, ...]

    def is_empty(self) -> bool:
        return not (self.hard_state or self.entries or self.messages or self.committed)
