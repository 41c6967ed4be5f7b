# -*- test-case-name: tests.cluster.test_roster -*-
"""
The nodes this node knows of, and the two decisions made from them: when
a brand-new cluster is founded, and which member the leader adds to the
Raft configuration next (DESIGN.md section 3, Membership).

Every node describes itself in a L{NodeRecord} and spreads what it knows
by exchanging its whole roster with a seed or a known member (over cluster
RPC, until the gossip protocol carries records too).  Only the node itself
changes its record; it raises C{version} each time, so merging keeps the
newest record of each node whatever path it took.

Nothing here adds anything to the quorum by itself: the leader turns new
records into configuration changes through the log, one at a time, and
only for nodes that belong to no other cluster (L{next_change}).

Exchange document (JSON, version 1)::

    {"v": 1, "records": [{"id": str, "rpc": [host, port], "jmap": url,
      "replica": bool, "cluster": str | null, "fresh": bool,
      "version": int}, ...],
     "swim": base64 | absent}

C{swim} is the sender's gossip membership (L{stalwart.cluster.swim.codec}),
the push-pull full-state exchange of SWIM riding on the same call.

Pure: no I/O, no clock (times are arguments).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import attrs

__all__ = [
    "NodeRecord", "Roster", "AddLearner", "Promote", "BadRoster",
    "encode_records", "decode_records", "decode_exchange", "should_found", "next_change", "parse_seed",
]

_VERSION = 1
#: Most records accepted in one exchange document: far above any real
#: cluster, low enough that a hostile peer cannot grow our memory much.
RECORDS_MAX = 1024
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class BadRoster(ValueError):
    """An exchange document that does not parse or breaks a limit."""


@attrs.frozen
class NodeRecord:
    """
    What one node says of itself.

    @ivar rpc_address: (host, port) its cluster RPC listens on, as advertised.
    @ivar jmap_url: where clients reach its JMAP service (redirect target).
    @ivar read_replica: it never votes nor leads.
    @ivar cluster_id: the cluster its state belongs to (the founder's node
        id, see L{stalwart.store.apply}), or None while it has applied nothing.
    @ivar fresh: its log is empty: it can join any cluster.
    @ivar version: raised by the node at each change of its record.
    """

    node_id: str
    rpc_address: Tuple[str, int]
    jmap_url: str
    read_replica: bool = False
    cluster_id: Optional[str] = None
    fresh: bool = True
    version: int = 0

    def to_json(self) -> dict:
        return {"id": self.node_id, "rpc": list(self.rpc_address), "jmap": self.jmap_url,
                "replica": self.read_replica, "cluster": self.cluster_id, "fresh": self.fresh,
                "version": self.version}

    @classmethod
    def from_json(cls, value: object) -> "NodeRecord":
        if not isinstance(value, dict):
            raise BadRoster("a record is not an object")
        try:
            node_id, rpc, jmap = value["id"], value["rpc"], value["jmap"]
            replica, cluster, fresh, version = value["replica"], value["cluster"], value["fresh"], value["version"]
        except KeyError as e:
            raise BadRoster(f"a record lacks {e.args[0]!r}") from None
        if not isinstance(node_id, str) or not _ID.match(node_id):
            raise BadRoster("bad node id")
        if not (isinstance(rpc, list) and len(rpc) == 2 and isinstance(rpc[0], str) and 0 < len(rpc[0]) <= 255
                and isinstance(rpc[1], int) and 0 < rpc[1] < 65536):
            raise BadRoster(f"bad rpc address for {node_id}")
        if not isinstance(jmap, str) or len(jmap) > 2048:
            raise BadRoster(f"bad jmap url for {node_id}")
        if cluster is not None and (not isinstance(cluster, str) or not _ID.match(cluster)):
            raise BadRoster(f"bad cluster id for {node_id}")
        if not isinstance(replica, bool) or not isinstance(fresh, bool):
            raise BadRoster(f"bad flags for {node_id}")
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2 ** 63:
            raise BadRoster(f"bad version for {node_id}")
        return cls(node_id=node_id, rpc_address=(rpc[0], rpc[1]), jmap_url=jmap, read_replica=replica,
                   cluster_id=cluster, fresh=fresh, version=version)


def encode_records(records: Iterable[NodeRecord], swim: Optional[bytes] = None) -> bytes:
    document = {"v": _VERSION, "records": [r.to_json() for r in records]}
    if swim is not None:
        document["swim"] = base64.b64encode(swim).decode("ascii")
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def decode_records(data: bytes) -> List[NodeRecord]:
    """@raise BadRoster: with what is wrong."""
    return decode_exchange(data)[0]


def decode_exchange(data: bytes) -> Tuple[List[NodeRecord], Optional[bytes]]:
    """The records and the gossip full state (or None) of an exchange document; @raise BadRoster."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRoster("not JSON") from None
    if not isinstance(document, dict) or document.get("v") != _VERSION:
        raise BadRoster("unknown exchange version")
    records = document.get("records")
    if not isinstance(records, list) or len(records) > RECORDS_MAX:
        raise BadRoster("records missing or too many")
    swim = document.get("swim")
    if swim is not None:
        try:
            swim = base64.b64decode(swim, validate=True) if isinstance(swim, str) else None
        except ValueError:
            swim = None
        if swim is None:
            raise BadRoster("swim state is not base64")
    return [NodeRecord.from_json(r) for r in records], swim


def parse_seed(text: str, default_port: int) -> Tuple[str, int]:
    """C{"host"}, C{"host:port"} or C{"[v6]:port"} as (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"seed {text!r} has no host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"seed {text!r} has a bad port")
    return host, int(port)


class Roster:
    """
    The newest record of every node known, ours included, and when the set
    of known nodes last changed (a founder waits for it to settle).
    """

    def __init__(self, me: NodeRecord, now: float) -> None:
        self.me = me.node_id
        self._records: Dict[str, NodeRecord] = {me.node_id: me}
        self.changed_at = now

    def records(self) -> List[NodeRecord]:
        return sorted(self._records.values(), key=lambda r: r.node_id)

    def get(self, node_id: str) -> Optional[NodeRecord]:
        return self._records.get(node_id)

    @property
    def own(self) -> NodeRecord:
        return self._records[self.me]

    def update_own(self, now: float, **changes) -> bool:
        """Change our record (raising its version); whether anything changed."""
        own = self.own
        new = attrs.evolve(own, **changes)
        if new == own:
            return False
        self._records[self.me] = attrs.evolve(new, version=max(own.version + 1, int(now * 1000)))
        return True

    def merge(self, records: Iterable[NodeRecord], now: float) -> List[NodeRecord]:
        """
        Keep each record newer than ours; never take another's word for our
        own.  Returns the records that were new or changed.
        """
        changed = []
        for record in records:
            if record.node_id == self.me:
                continue
            known = self._records.get(record.node_id)
            if known is not None and known.version >= record.version:
                continue
            if known is None:
                self.changed_at = now
            self._records[record.node_id] = record
            changed.append(record)
        return changed

    def addresses(self) -> Dict[str, Tuple[str, int]]:
        """node id -> RPC address, for the RPC service's address book."""
        return {r.node_id: r.rpc_address for r in self._records.values()}


def should_found(roster: Roster, now: float, settle_seconds: float) -> bool:
    """
    Whether this brand-new node founds the cluster: it becomes the first
    voter, and the others join it.  A node founds when it has learnt of at
    least one other node (two make a cluster), none of the nodes it knows
    belongs to a cluster yet, the set of known nodes has not changed for
    C{settle_seconds} (so that a ring of seeds has had time to learn of
    everyone), and it has the smallest node id among the fresh nodes that
    may vote.  A read replica never founds.
    """
    own = roster.own
    if own.read_replica or not own.fresh:
        return False
    records = roster.records()
    if len(records) < 2 or now - roster.changed_at < settle_seconds:
        return False
    if any(r.cluster_id is not None or not r.fresh for r in records):
        return False
    candidates = [r.node_id for r in records if not r.read_replica]
    return min(candidates) == own.node_id


@attrs.frozen
class AddLearner:
    node_id: str


@attrs.frozen
class Promote:
    node_id: str


def next_change(roster: Roster, cluster_id: Optional[str], voters: Iterable[str], learners: Iterable[str],
                matched: Mapping[str, int], last_index: int, promote_lag_max: int,
                removed: Iterable[str] = ()):
    """
    The leader's next configuration change, or None: add a known node that
    may join (fresh, or already of this cluster) as a learner; promote a
    learner that is not a read replica once its log is within
    C{promote_lag_max} entries of ours (C{matched}: each peer's match
    index).  Members are never removed here: an unreachable node may come
    back, and shrinking the quorum silently is what the issue forbids.
    Nodes an operator removed (C{removed}, kept by the state machine) are
    not added back.
    """
    members = set(voters) | set(learners)
    removed = set(removed)
    for record in roster.records():
        if record.node_id in members or record.node_id in removed:
            continue
        if record.fresh or (cluster_id is not None and record.cluster_id == cluster_id):
            return AddLearner(record.node_id)
    for node_id in sorted(set(learners)):
        record = roster.get(node_id)
        if record is None or record.read_replica:
            continue
        if last_index - matched.get(node_id, 0) <= promote_lag_max:
            return Promote(node_id)
    return None
