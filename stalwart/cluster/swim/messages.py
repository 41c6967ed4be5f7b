# -*- test-case-name: tests.cluster.swim.test_messages -*-
"""
SWIM messages (Das, Gupta and Motivala, "SWIM: Scalable Weakly-consistent
Infection-style Process Group Membership Protocol", DSN 2002), with the
nack of Lifeguard (Dadgar et al., "Lifeguard: Local Health Awareness for
More Accurate Failure Detection", 2018, section 4.1), and what the rest of
the node learns from them.

A L{Packet} is one UDP datagram's plaintext: the sender's node id, one
body (L{Ping}, L{PingReq}, L{Ack}, L{Nack} or L{Gossip}) and the
membership updates piggybacked on it (SWIM section 4.1): L{Alive},
L{Suspect}, L{Dead} and L{Left}.  Updates about a member are ordered by
its incarnation number (SWIM section 4.2); only the member itself raises
it.

L{MemberInfo} is what a member says about itself; the member events
(L{MemberJoined} ... L{MemberLeft}) are what L{stalwart.cluster.swim.members.Membership}
reports to the node.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import attrs

__all__ = [
    "NODE_ID_BYTES_MAX",
    "HOST_BYTES_MAX",
    "JMAP_URL_BYTES_MAX",
    "MemberInfo",
    "Alive",
    "Suspect",
    "Dead",
    "Left",
    "Update",
    "Ping",
    "PingReq",
    "Ack",
    "Nack",
    "Gossip",
    "Body",
    "Packet",
    "Send",
    "MemberJoined",
    "MemberUpdated",
    "MemberSuspected",
    "MemberAlive",
    "MemberDead",
    "MemberLeft",
    "MemberEvent",
    "Effect",
]

#: Limits that keep any one update (and so any packet) under the UDP
#: budget: an L{Alive} is at most about 700 bytes encoded.
NODE_ID_BYTES_MAX = 128
HOST_BYTES_MAX = 128
JMAP_URL_BYTES_MAX = 400

_U64_MAX = 2 ** 64 - 1


def _utf8_bytes(limit: int, empty: bool = False):
    def check(instance, attribute, value) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{attribute.name} must be a str")
        size = len(value.encode("utf-8"))
        if size > limit or (size == 0 and not empty):
            raise ValueError(f"{attribute.name} must be 1 to {limit} bytes of UTF-8")
    return check


def _node_id(instance, attribute, value) -> None:
    _utf8_bytes(NODE_ID_BYTES_MAX)(instance, attribute, value)


def _u64(instance, attribute, value) -> None:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise ValueError(f"{attribute.name} must be an integer in [0, 2**64)")


def _address(instance, attribute, value) -> None:
    if (not isinstance(value, tuple) or len(value) != 2 or not isinstance(value[0], str)
            or type(value[1]) is not int or not 0 <= value[1] <= 65535):
        raise ValueError(f"{attribute.name} must be a (host, port) tuple")
    _utf8_bytes(HOST_BYTES_MAX)(instance, attribute, value[0])


@attrs.frozen
class MemberInfo:
    """
    What a member gossips about itself.

    @ivar node_id: the member's stable id (the Raft node id).
    @ivar rpc_address: (host, port) where it takes cluster RPC over TCP and
        gossip over UDP (C{rpc-advertise-addr}, C{rpc-port}).
    @ivar jmap_url: its public base URL (C{jmap-url}), where writes are
        redirected when it leads.
    @ivar read_replica: True for a read-only replica, which stays a Raft
        learner.
    @ivar term: its current Raft term, as last announced.
    @ivar last_index: the index of the last entry in its Raft log, as last
        announced.
    """

    node_id: str = attrs.field(validator=_node_id)
    rpc_address: Tuple[str, int] = attrs.field(validator=_address)
    jmap_url: str = attrs.field(validator=_utf8_bytes(JMAP_URL_BYTES_MAX, empty=True))
    read_replica: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    term: int = attrs.field(default=0, validator=_u64)
    last_index: int = attrs.field(default=0, validator=_u64)


# Updates (piggybacked; SWIM section 4.2 and 4.3).

@attrs.frozen
class Alive:
    """The member described by C{info} is alive at C{incarnation}."""

    info: MemberInfo
    incarnation: int = attrs.field(validator=_u64)

    @property
    def node_id(self) -> str:
        return self.info.node_id


@attrs.frozen
class Suspect:
    """C{accuser} suspects C{node_id} at C{incarnation}."""

    node_id: str = attrs.field(validator=_node_id)
    incarnation: int = attrs.field(validator=_u64)
    accuser: str = attrs.field(validator=_node_id)


@attrs.frozen
class Dead:
    """C{accuser} declared C{node_id} dead at C{incarnation}."""

    node_id: str = attrs.field(validator=_node_id)
    incarnation: int = attrs.field(validator=_u64)
    accuser: str = attrs.field(validator=_node_id)


@attrs.frozen
class Left:
    """C{node_id} left the cluster on purpose at C{incarnation}."""

    node_id: str = attrs.field(validator=_node_id)
    incarnation: int = attrs.field(validator=_u64)


Update = Union[Alive, Suspect, Dead, Left]


# Bodies.

@attrs.frozen
class Ping:
    """
    A probe (SWIM section 3.1): answer with L{Ack} of the same C{seq}.
    C{target} is the node id the sender means to reach, None when probing
    a seed whose id it does not know yet; a node that is not C{target}
    does not answer.
    """

    seq: int = attrs.field(validator=_u64)
    target: Optional[str] = attrs.field(default=None, validator=attrs.validators.optional(_node_id))


@attrs.frozen
class PingReq:
    """Probe C{target} at C{address} for me, and tell me with L{Ack} or L{Nack} of C{seq}."""

    seq: int = attrs.field(validator=_u64)
    target: str = attrs.field(validator=_node_id)
    address: Tuple[str, int] = attrs.field(validator=_address)


@attrs.frozen
class Ack:
    """The answer to the L{Ping} (or, relayed, the L{PingReq}) numbered C{seq}."""

    seq: int = attrs.field(validator=_u64)


@attrs.frozen
class Nack:
    """The relay of the L{PingReq} numbered C{seq} heard nothing from its target (Lifeguard 4.1)."""

    seq: int = attrs.field(validator=_u64)


@attrs.frozen
class Gossip:
    """A packet that only carries updates (sent to a few members when there is news)."""


Body = Union[Ping, PingReq, Ack, Nack, Gossip]


@attrs.frozen
class Packet:
    """One datagram's plaintext: who sends it, its body and piggybacked updates."""

    sender: str = attrs.field(validator=_node_id)
    body: Body
    updates: Tuple[Update, ...] = attrs.field(default=(), converter=tuple)


# Effects of the core.

@attrs.frozen
class Send:
    """Send C{packet} to the UDP C{address}."""

    address: Tuple[str, int]
    packet: Packet


@attrs.frozen
class MemberJoined:
    """
    A member this node did not know (or had forgotten after it died or left)
    is alive.  May come again for the same node id after a L{MemberDead} or
    L{MemberLeft} followed by a long silence.
    """

    info: MemberInfo


@attrs.frozen
class MemberUpdated:
    """A known member announced new information (address, jmap-url, replica flag, term or index)."""

    info: MemberInfo


@attrs.frozen
class MemberSuspected:
    """A member is suspected: it may be dead; it stays a member until L{MemberDead}."""

    node_id: str


@attrs.frozen
class MemberAlive:
    """A suspected, dead or departed member proved it is alive (it refuted, or came back)."""

    node_id: str


@attrs.frozen
class MemberDead:
    """A member was confirmed dead: its suspicion timed out unrefuted."""

    node_id: str


@attrs.frozen
class MemberLeft:
    """A member left on purpose (graceful shutdown)."""

    node_id: str


MemberEvent = Union[MemberJoined, MemberUpdated, MemberSuspected, MemberAlive, MemberDead, MemberLeft]
Effect = Union[Send, MemberEvent]
