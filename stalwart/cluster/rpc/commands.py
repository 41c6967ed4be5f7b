# -*- test-case-name: tests.cluster.rpc.test_protocol -*-
"""
The AMP commands of cluster RPC and the errors each may answer.

A connection is one-way for requests: the side that connected (the client)
runs the admission exchange of L{stalwart.cluster.rpc.auth} with C{Hello}
and C{Prove}, then sends C{RaftMessage}s; the accepting side (the server)
only answers.  Two nodes therefore share two connections, one each way,
and each node's outgoing traffic has its own queue and back-pressure.
"""

from __future__ import annotations

from twisted.protocols import amp

from stalwart.cluster.rpc.chunks import ChunkedBytes

__all__ = [
    "AdmissionRefused",
    "MalformedArguments",
    "UnsupportedMessage",
    "Hello",
    "Prove",
    "RaftMessage",
    "HANDSHAKE",
]


class AdmissionRefused(Exception):
    """The server refused the client's hello or proof; the connection closes."""


class MalformedArguments(Exception):
    """A command's arguments or message could not be decoded; the connection closes."""


class UnsupportedMessage(Exception):
    """A message version or kind this node does not know; the connection stays."""


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


#: The commands of the admission exchange.
HANDSHAKE = (Hello, Prove)
