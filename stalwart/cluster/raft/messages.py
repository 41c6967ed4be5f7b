# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
Raft entries, RPC messages and the L{Ready} batch the core hands its driver.

Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", figure 2: RequestVote and AppendEntries with their
results; from Ongaro's thesis "Consensus: Bridging Theory and Practice",
the pre-vote flag (section 9.6), TimeoutNow for leadership transfer (3.10)
configuration entries for single-server membership changes (4.1), and
InstallSnapshot (extended paper section 7, thesis chapter 5), whose chunk
bytes are read and written by the driver, never kept by the core.
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
    "SnapshotMeta",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "SnapshotChunkRequest",
    "RestoreSnapshot",
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


@attrs.frozen
class SnapshotMeta:
    """
    The point a snapshot of the state machine stands for (paper section 7):
    it holds the effects of every entry up to C{index}, whose term is
    C{term}; C{configuration} is the C{ENTRY_CONFIG} payload in force at
    C{index} (L{encode_configuration}), or empty before the first one.
    """

    index: int
    term: int
    configuration: bytes = b""

    def decoded_configuration(self) -> Configuration:
        return decode_configuration(self.configuration) if self.configuration else Configuration()


@attrs.frozen
class InstallSnapshot:
    """
    One chunk of the leader's snapshot C{index}/C{snapshot_term} (paper
    section 7, figure 13; thesis 5.4.2): C{data} is the file's bytes at
    C{offset}; C{done} marks the last chunk, after which the follower
    restores the snapshot.  Every chunk repeats the snapshot's identity and
    configuration, so a chunk at offset 0 starts a transfer on its own.
    """

    term: int
    sender: str
    recipient: str
    index: int
    snapshot_term: int
    configuration: bytes
    offset: int
    data: bytes
    done: bool

    @property
    def meta(self) -> SnapshotMeta:
        return SnapshotMeta(index=self.index, term=self.snapshot_term, configuration=self.configuration)


@attrs.frozen
class InstallSnapshotResponse:
    """
    The answer to an L{InstallSnapshot} chunk.  While a transfer runs,
    C{offset} is the next byte the follower wants of snapshot C{index} (the
    leader sends that chunk next; a lost or duplicate chunk only repeats
    an offset).  C{done}: the follower holds a log that matches the
    leader's up to C{match_index}, because it restored the snapshot or
    because it had already committed past it (a stale snapshot).
    """

    term: int
    sender: str
    recipient: str
    index: int
    offset: int = 0
    done: bool = False
    match_index: int = 0


@attrs.frozen
class SnapshotChunkRequest:
    """
    An effect for the driver (not a message): read the chunk of snapshot
    C{index} at C{offset} and send it to C{peer} as an L{InstallSnapshot}
    of C{term}.  The core never holds snapshot bytes: it only decides
    which chunk goes where.
    """

    peer: str
    term: int
    index: int
    offset: int


@attrs.frozen
class RestoreSnapshot:
    """
    An effect for the driver: the last chunk of snapshot C{meta} arrived.
    Make the received file durable, then, if C{discard_log}, drop the whole
    log and continue it at C{meta.index + 1} (else drop only what the
    snapshot covers), then, before any later committed entry, replace the
    state machine with the snapshot (paper section 7, thesis 5.4.2).
    """

    meta: SnapshotMeta
    discard_log: bool


Message = Union[
    RequestVote, RequestVoteResponse, AppendEntries, AppendEntriesResponse, TimeoutNow,
    InstallSnapshot, InstallSnapshotResponse,
]


@attrs.frozen
class Ready:
    """
    What the driver must do, in the order documented in
    L{stalwart.cluster.raft.driver}: persist C{hard_state} (if not None) and
    C{entries}, send C{messages}, apply C{committed}, then call
    C{RaftCore.advance(ready)}.

    Snapshots (paper section 7): C{received} are accepted L{InstallSnapshot}
    chunks, to write to the incoming snapshot file with the entries (before
    C{messages}, which acknowledge them); C{restore}, when set, comes with
    the last of them (see L{RestoreSnapshot}); C{chunks} are chunks to read
    from a snapshot file and send; C{take_snapshot} says the compaction
    policy wants a snapshot of the state machine taken after C{committed}
    is applied, to be reported with C{RaftCore.snapshot_taken}.
    """

    hard_state: Optional[object]
    entries: Tuple[Entry, ...]
    messages: Tuple[Message, ...]
    committed: Tuple[Entry, ...]
    received: Tuple[InstallSnapshot, ...] = ()
    restore: Optional[RestoreSnapshot] = None
    chunks: Tuple[SnapshotChunkRequest, ...] = ()
    take_snapshot: bool = False

    def is_empty(self) -> bool:
        return not (
            self.hard_state or self.entries or self.messages or self.committed
            or self.received or self.restore or self.chunks or self.take_snapshot
        )
