# -*- test-case-name: tests.cluster.raft.test_core -*-
"""
Raft entries, RPC messages and the L{Ready} batch the core hands its driver.

Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", figure 2: RequestVote and AppendEntries with their
results.  Messages carry sender and recipient so that a simulated network or
the AMP shell can route them without looking inside.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import attrs

__all__ = [
    "ENTRY_NORMAL",
    "ENTRY_NOOP",
    "Entry",
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

_KINDS = (ENTRY_NORMAL, ENTRY_NOOP)


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
    term: int
    sender: str
    recipient: str
    last_log_index: int
    last_log_term: int


@attrs.frozen
class RequestVoteResponse:
    term: int
    sender: str
    recipient: str
    granted: bool


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


Message = Union[RequestVote, RequestVoteResponse, AppendEntries, AppendEntriesResponse]


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
