# -*- test-case-name: tests.cluster.rpc.test_protocol_calls,tests.cluster.rpc.test_protocol -*-
"""
The AMP commands of cluster RPC and the errors each may answer.

A connection is one-way for requests: the side that connected (the client)
runs the admission exchange of L{stalwart.cluster.rpc.auth} with C{Hello}
and C{Prove}, then sends C{RaftMessage}s; the accepting side (the server)
only answers.  Two nodes therefore share two connections, one each way,
and each node's outgoing traffic has its own queue and back-pressure.

Besides the one-way Raft messages there are two request/response calls,
sent on connections of their own (L{stalwart.cluster.rpc.calls}) so that a
large C{Forward} never delays a vote or a heartbeat:

  - C{Exchange}: an opaque membership document (JSON the caller builds)
    for the peer's own document in answer;
  - C{Forward}: a follower's encoded write command, which the leader
    proposes and answers with the C{term} and C{index} of its log entry
    once it is committed and applied there.  It may fail with
    L{NotLeader} or L{Unavailable}.

Like C{RaftMessage}, both are accepted only after admission.
"""

from __future__ import annotations

from twisted.protocols import amp

from stalwart.cluster.rpc.chunks import ChunkedBytes

__all__ = [
    "AdmissionRefused",
    "MalformedArguments",
    "UnsupportedMessage",
    "NotLeader",
    "Unavailable",
    "Hello",
    "Prove",
    "RaftMessage",
    "Exchange",
    "Forward",
    "HANDSHAKE",
]


class AdmissionRefused(Exception):
    """The server refused the client's hello or proof; the connection closes."""


class MalformedArguments(Exception):
    """A command's arguments or message could not be decoded; the connection closes."""


class UnsupportedMessage(Exception):
    """A message version or kind this node does not know; the connection stays."""


class NotLeader(Exception):
    """
    The peer is not the leader, so it cannot take a forwarded write.

    @ivar leader: the node id of the leader it knows of, or C{""} if it
        knows none (an election is running).  It travels as the AMP error
        description, so C{str(NotLeader(x)) == x}.
    """

    def __init__(self, leader: str = "") -> None:
        super().__init__(leader)
        self.leader = leader


class Unavailable(Exception):
    """
    The peer could not serve the call: its storage failed, it is stopping,
    the proposal was dropped, it has no handler for the command, it is busy
    or the call's size is over its limit.  The connection stays.

    @ivar reason: a short text for logs (the AMP error description).
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class Hello(amp.Command):
    """Admission step 1: the client's protocol version and nonce; the server's in answer."""

    arguments = [(b"version", amp.Integer()), (b"nonce", amp.String())]
    response = [(b"version", amp.Integer()), (b"nonce", amp.String())]
    errors = {AdmissionRefused: b"REFUSED"}
    fatalErrors = {AdmissionRefused: b"REFUSED"}


class Prove(amp.Command):
    """Admission step 3: the client's proof; the server's proof in answer."""

    arguments = [(b"proof", amp.String())]
    response = [(b"proof", amp.String())]
    errors = {AdmissionRefused: b"REFUSED"}
    fatalErrors = {AdmissionRefused: b"REFUSED"}


class RaftMessage(amp.Command):
    """
    One Raft message, encoded by L{stalwart.cluster.rpc.codec}.  The empty
    answer is only an acknowledgement that the message was handed to Raft;
    Raft's own responses travel as messages the other way.
    """

    arguments = [(b"message", ChunkedBytes(chunks_max=1 << 16))]  # bytes are limited per box
    response: list = []
    errors = {
        MalformedArguments: b"MALFORMED",
        UnsupportedMessage: b"UNSUPPORTED",
    }
    fatalErrors = {MalformedArguments: b"MALFORMED"}


class Exchange(amp.Command):
    """
    Membership exchange: the caller's document for the peer's.  Both are
    opaque bytes here; their size is limited by C{exchange_bytes_max} on
    both sides (L{stalwart.cluster.rpc.service.RPCService}).
    """

    arguments = [(b"data", ChunkedBytes(chunks_max=1 << 16))]  # bytes are limited per box
    response = [(b"data", ChunkedBytes(chunks_max=1 << 16))]
    errors = {
        Unavailable: b"UNAVAILABLE",
        MalformedArguments: b"MALFORMED",
    }
    fatalErrors = {MalformedArguments: b"MALFORMED"}


class Forward(amp.Command):
    """
    A write forwarded by a follower: C{payload} is the encoded log entry
    payload (up to max-size-upload and its command, so tens of MB: the
    server's C{message_bytes_max} bounds the box).  The answer comes once
    the entry is committed and applied on the leader.
    """

    arguments = [(b"payload", ChunkedBytes(chunks_max=1 << 16))]  # bytes are limited per box
    response = [(b"term", amp.Integer()), (b"index", amp.Integer())]
    errors = {
        NotLeader: b"NOT_LEADER",
        Unavailable: b"UNAVAILABLE",
        MalformedArguments: b"MALFORMED",
    }
    fatalErrors = {MalformedArguments: b"MALFORMED"}


#: The commands of the admission exchange.
HANDSHAKE = (Hello, Prove)
