# -*- test-case-name: tests.cluster.swim.test_members -*-
"""
The SWIM membership core (Das, Gupta and Motivala, DSN 2002), with the
Lifeguard refinements (Dadgar et al., 2018) and phi accrual suspicion.

L{Membership} takes time and packets as arguments and returns effects
(L{Send} and member events); it has no socket, reactor or clock.  Its
shell calls L{Membership.tick} whenever L{Membership.next_wake} is due.

Rules:

  - Probing (SWIM 3.1, 4.3): one member per (health-scaled) ping interval,
    in round-robin order (L{stalwart.cluster.swim.probe}); ping, then
    ping-req through k others, nacks from relays (Lifeguard 4.1).
  - Suspicion (SWIM 4.2): a member is suspected when a probe of it went
    unanswered I{and} its phi, over the inter-arrival times of its acks to
    our probes, reaches C{phi_threshold}.  The failed probe is the
    evidence and phi judges it: a member whose acks come irregularly gets
    more time.  Relays' nacks count as independent confirmations.
  - Conviction (Lifeguard 4.2): a suspicion times out after a timeout that
    shrinks with confirmations (L{stalwart.cluster.swim.suspicion}); the
    member is then dead.  A member refutes a suspicion or death about
    itself by raising its incarnation (SWIM 4.2), and sends the
    refutation straight to the accuser as well as gossiping it.
  - Accusations (suspect, dead) made by a member this node holds dead or
    departed are ignored: a node cut off from its peers (a one-way
    partition) cannot evict the majority once the majority has convicted
    it.
  - Local health (Lifeguard 4.3, L{stalwart.cluster.swim.awareness}).
  - Dissemination (SWIM 4.1): updates ride on every packet, each a bounded
    number of times (L{stalwart.cluster.swim.broadcasts}); while there is
    news it is also pushed every C{gossip_interval} to a few random
    members.  Every packet starts with the sender's own record, then what
    this node knows about the recipient when the recipient seems not to
    know it (so a restarted or condemned member learns it must refute),
    then news, then (anti-entropy) current records of random members.
  - Seeds: probed with a ping without a target until they answer; their
    ids come from the answer.  They are probed again when no member is
    left alive.
  - Leaving: the member announces L{Left} at a higher incarnation to every
    member it knows, then falls silent.

Local information (term, last index...) changes raise the incarnation,
so the newest record always wins.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import attrs

from stalwart.cluster.phi.detector import PhiDetector
from stalwart.cluster.swim import codec
from stalwart.cluster.swim.awareness import Awareness
from stalwart.cluster.swim.broadcasts import Broadcasts
from stalwart.cluster.swim.config import SwimConfig
from stalwart.cluster.swim.messages import (
    Ack,
    Alive,
    Body,
    Dead,
    Effect,
    Gossip,
    Left,
    MemberAlive,
    MemberDead,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    Nack,
    Packet,
    Ping,
    PingReq,
    Send,
    Suspect,
    Update,
)
from stalwart.cluster.swim.probe import Probe, Relay, RoundRobin
from stalwart.cluster.swim.seal import OVERHEAD_BYTES
from stalwart.cluster.swim.suspicion import Suspicion

__all__ = ["ALIVE", "SUSPECT", "DEAD", "LEFT", "MemberStatus", "Membership"]

ALIVE, SUSPECT, DEAD, LEFT = "alive", "suspect", "dead", "left"
_LIVE = (ALIVE, SUSPECT)
#: Probes whose late acks still count as signs of life.
_RECENT_PROBES_MAX = 32


@attrs.define
class _Member:
    """
    What this node holds about one member.

    Phi is kept on the member's own probe schedule: each of our probes of it
    advances a virtual clock by one ping interval, and within a probe the
    virtual clock runs with real time.  An ack's virtual arrival time is
    then the time between two acks minus the time between the two probes
    they answer, plus one ping interval: the detector sees how irregularly
    the member answers (slow or indirect acks, lost pings), not how our
    round robin spaces its probes as members come and go.
    """

    info: MemberInfo
    incarnation: int
    status: str
    since: float
    detector: PhiDetector
    #: Virtual time of our latest probe of it, and the real time it started.
    probe_virtual: float = 0.0
    probe_started: Optional[float] = None
    accuser: str = ""
    suspicion: Optional[Suspicion] = None
    #: A probe of it failed at this time and no ack came since.
    unanswered: Optional[float] = None
    #: Relays that could not reach it either during that probe.
    confirmers: Tuple[str, ...] = ()
    #: When to look at its phi again.
    recheck: Optional[float] = None
    #: It announced itself with a record older than ours: tell it.
    correct: bool = False


def _virtual_now(member: _Member, now: float) -> float:
    if member.probe_started is None:
        return member.probe_virtual
    return member.probe_virtual + max(0.0, now - member.probe_started)


def _reset_detector(member: _Member, config: SwimConfig) -> None:
    member.detector = PhiDetector(config.phi, config.ping_interval, 0.0)
    member.probe_virtual, member.probe_started = 0.0, None


@attrs.frozen
class MemberStatus:
    """A member as this node sees it, for status pages."""

    info: MemberInfo
    incarnation: int
    status: str
    since: float
    phi: float


class Membership:
    """
    One node's view of the cluster.

    @param config: the protocol parameters.
    @param me: this node's own information.
    @param rng: the only source of randomness (seeded in tests).
    @param seeds: UDP addresses to probe until they answer.
    """

    def __init__(self, config: SwimConfig, me: MemberInfo, rng: random.Random,
                 seeds: Iterable[Tuple[str, int]] = ()) -> None:
        self.config = config
        self.me = me
        self.incarnation = 0
        self.awareness = Awareness(config.awareness_max)
        self._rng = rng
        self._members: Dict[str, _Member] = {}
        self._order = RoundRobin()
        self._broadcasts = Broadcasts()
        self._tombstones: Dict[str, Tuple[int, float]] = {}
        #: seed address -> True once it answered
        self._seeds: Dict[Tuple[str, int], bool] = {}
        self._seed_probes: Dict[int, Tuple[str, int]] = {}
        self._probe: Optional[Probe] = None
        self._recent_probes: "OrderedDict[int, str]" = OrderedDict()
        self._relays: Dict[int, Relay] = {}
        self._seq = 0
        self._next_probe: Optional[float] = None
        self._next_gossip = 0.0
        self._next_reconnect = 0.0
        self._reconnect = RoundRobin()
        self._left = False
        self._pending_index: Optional[int] = None
        self._own_cache: Optional[Alive] = None
        self._next_index_announce = 0.0
        self.add_seeds(seeds)

    # Inputs.

    def add_seeds(self, addresses: Iterable[Tuple[str, int]]) -> None:
        """Probe these addresses (host, port) until they answer."""
        for address in addresses:
            if tuple(address) != tuple(self.me.rpc_address):
                self._seeds.setdefault(tuple(address), False)

    def update_local(self, **changes) -> None:
        """
        Change this node's own information (C{term}, C{last_index},
        C{jmap_url}, C{rpc_address}, C{read_replica}): the incarnation goes
        up and the new record is gossiped.  A change of C{last_index} alone
        (every commit) is announced at most once per
        C{index_gossip_interval}, at a tick; any other change at once.
        """
        if self._left:
            return
        info = attrs.evolve(self.me, **changes)
        if info == self.me:
            return
        if info == attrs.evolve(self.me, last_index=info.last_index):
            self._pending_index = info.last_index
            return
        self.me = attrs.evolve(info, last_index=max(info.last_index, self._pending_index or 0))
        self._pending_index = None
        self._announce_self()

    def _announce_self(self) -> None:
        self.incarnation += 1
        self._broadcasts.add(self._own_record())

    def tick(self, now: float) -> List[Effect]:
        """Run every timer due at C{now}."""
        effects: List[Effect] = []
        if self._left:
            return effects
        if self._next_probe is None:
            self._next_probe = now
            self._next_gossip = now
            self._next_reconnect = now + self.config.reconnect_interval
        if self._pending_index is not None and now >= self._next_index_announce:
            self.me = attrs.evolve(self.me, last_index=self._pending_index)
            self._pending_index = None
            self._next_index_announce = now + self.config.index_gossip_interval
            self._announce_self()
        self._advance_probe(now, effects)
        self._expire_relays(now, effects)
        self._check_members(now, effects)
        if now >= self._next_probe:
            if now - self._next_probe > self.config.loop_lag_max:
                self.awareness.apply(1)
            self._start_probe(now, effects)
            self._probe_seeds(now, effects)
            self._next_probe = now + self.awareness.scale(self.config.ping_interval)
        if now >= self._next_reconnect:
            self._probe_dead(now, effects)
            self._next_reconnect = now + self.config.reconnect_interval
        if now >= self._next_gossip and (len(self._broadcasts) or self._accusing()):
            self._gossip(effects)
            self._next_gossip = now + self.config.gossip_interval
        self._reap(now)
        return effects

    def receive(self, now: float, sender_address: Tuple[str, int], packet: Packet) -> List[Effect]:
        """
        Handle one packet that came from the UDP address C{sender_address}:
        its updates first, then its body.
        """
        effects: List[Effect] = []
        if self._left:
            return effects
        if packet.sender == self.me.node_id:
            if isinstance(packet.body, Ping) and packet.body.seq in self._seed_probes:
                self._seeds.pop(self._seed_probes.pop(packet.body.seq), None)
            return effects
        for update in packet.updates:
            self._apply(now, update, packet.sender, effects)
        self._handle_body(now, tuple(sender_address), packet.sender, packet.body, effects)
        return effects

    def leave(self, now: float) -> List[Effect]:
        """
        Leave the cluster: announce L{Left} to every live member, then stay
        silent (ticks and packets do nothing any more).
        """
        if self._left:
            return []
        self.incarnation += 1
        announcement = Left(node_id=self.me.node_id, incarnation=self.incarnation)
        self._broadcasts.add(announcement)
        self._left = True
        return [
            Send(member.info.rpc_address, self._packet(node_id, Gossip()))
            for node_id, member in self._members.items() if member.status in _LIVE
        ]

    def merge_full_state(self, now: float, records: Sequence[Update]) -> List[Effect]:
        """
        Merge the records of another node's L{full_state} (a push-pull
        exchange over the RPC connection), as if gossiped.
        """
        effects: List[Effect] = []
        if not self._left:
            for record in records:
                self._apply(now, record, None, effects)
        return effects

    # Outputs.

    def next_wake(self) -> Optional[float]:
        """When L{tick} must next be called, or None (not before some packet arrives)."""
        if self._left:
            return None
        if self._next_probe is None:
            return 0.0
        times = [self._next_probe]
        if self._pending_index is not None:
            times.append(self._next_index_announce)
        if len(self._broadcasts) or self._accusing():
            times.append(self._next_gossip)
        probe = self._probe
        if probe is not None:
            times.append(probe.deadline)
            if not probe.acked and not probe.indirect_sent:
                times.append(probe.indirect_at)
        times.extend(relay.deadline for relay in self._relays.values())
        for member in self._members.values():
            if member.suspicion is not None:
                times.append(member.suspicion.deadline)
            if member.recheck is not None:
                times.append(member.recheck)
            if member.status in (DEAD, LEFT):
                times.append(member.since + self.config.dead_reap_timeout)
                if member.status == DEAD:
                    times.append(self._next_reconnect)
        return min(times)

    def full_state(self) -> List[Update]:
        """Every record this node holds, its own first."""
        return [self._own_record()] + [self._record(node_id) for node_id in self._members]

    def members(self, now: float) -> List[MemberStatus]:
        """A snapshot of every member (this node excluded), by node id."""
        return [
            MemberStatus(info=m.info, incarnation=m.incarnation, status=m.status, since=m.since,
                         phi=m.detector.phi(_virtual_now(m, now), self._phi_pause()))
            for _, m in sorted(self._members.items())
        ]

    def status(self, node_id: str) -> Optional[str]:
        """ALIVE, SUSPECT, DEAD, LEFT, or None for an unknown node."""
        member = self._members.get(node_id)
        return None if member is None else member.status

    @property
    def left(self) -> bool:
        return self._left

    # Records and packets.

    def _own_record(self) -> Update:
        if self._left:
            return Left(node_id=self.me.node_id, incarnation=self.incarnation)
        cached = self._own_cache
        if cached is None or cached.incarnation != self.incarnation or cached.info is not self.me:
            cached = self._own_cache = Alive(info=self.me, incarnation=self.incarnation)
        return cached

    def _record(self, node_id: str) -> Update:
        member = self._members[node_id]
        if member.status == DEAD:
            return Dead(node_id=node_id, incarnation=member.incarnation, accuser=member.accuser)
        if member.status == LEFT:
            return Left(node_id=node_id, incarnation=member.incarnation)
        return Alive(info=member.info, incarnation=member.incarnation)

    def _news_for(self, recipient: Optional[str]) -> Optional[Update]:
        """What the recipient must hear about itself, if anything."""
        member = self._members.get(recipient) if recipient else None
        if member is not None:
            if member.status == SUSPECT:
                return Suspect(node_id=recipient, incarnation=member.incarnation,
                               accuser=member.suspicion.accuser if member.suspicion else self.me.node_id)
            if member.status in (DEAD, LEFT) or member.correct:
                member.correct = False
                return self._record(recipient)
        elif recipient in self._tombstones:
            return Dead(node_id=recipient, incarnation=self._tombstones[recipient][0], accuser=self.me.node_id)
        return None

    def _packet(self, recipient: Optional[str], body: Body, fill: bool = False) -> Packet:
        """
        A packet to C{recipient} (a node id, or None for an address whose
        node is unknown) that fits in C{udp_payload_bytes_max} once sealed.

        @param fill: fill it with records of random members (the answer to a
            seed probe, so that a newcomer learns the cluster at once).
        """
        budget = self.config.udp_payload_bytes_max - OVERHEAD_BYTES - codec.packet_size(self.me.node_id, body)
        first = [self._own_record()]
        news = self._news_for(recipient)
        if news is not None:
            first.append(news)
        updates = [u for u in first]
        used = sum(codec.update_size(u) for u in updates)
        assert used <= budget, "own record and news must always fit"
        skip = tuple(u.node_id for u in updates)
        taken, size = self._broadcasts.take(budget - used, codec.UPDATES_MAX - len(updates),
                                            self.config.retransmit_limit(len(self._members) + 1),
                                            codec.update_size, skip)
        updates.extend(taken)
        used += size
        extra = len(self._members) if fill else self.config.anti_entropy_records
        if extra and self._members:
            present = set(u.node_id for u in updates)
            candidates = [n for n in self._members if n not in present and n != recipient]
            for node_id in self._rng.sample(candidates, min(len(candidates), extra)):
                record = self._record(node_id)
                cost = codec.update_size(record)
                if used + cost <= budget and len(updates) < codec.UPDATES_MAX:
                    updates.append(record)
                    used += cost
        return Packet(sender=self.me.node_id, body=body, updates=tuple(updates))

    def _send(self, effects: List[Effect], address: Tuple[str, int], recipient: Optional[str], body: Body,
              fill: bool = False) -> None:
        effects.append(Send(address, self._packet(recipient, body, fill)))

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % (2 ** 32)
        return self._seq

    # Updates (SWIM 4.2).

    def _apply(self, now: float, update: Update, sender: Optional[str], effects: List[Effect]) -> None:
        if update.node_id == self.me.node_id:
            self._about_me(now, update, effects)
        elif isinstance(update, Alive):
            self._apply_alive(now, update, sender, effects)
        elif isinstance(update, (Suspect, Dead)):
            accuser = self._members.get(update.accuser)
            if accuser is not None and accuser.status not in _LIVE:
                return
            if isinstance(update, Suspect):
                self._apply_suspect(now, update, effects)
            else:
                self._apply_dead(now, update, effects)
        else:
            self._apply_left(now, update, effects)

    def _about_me(self, now: float, update: Update, effects: List[Effect]) -> None:
        """Refute anything about this node that is not its current record."""
        if update == self._own_record():
            return
        if update.incarnation < self.incarnation:
            if isinstance(update, (Suspect, Dead)):
                self._answer_accuser(update.accuser, effects)
            return
        if isinstance(update, Alive) and update.incarnation == self.incarnation:
            return
        self.incarnation = max(self.incarnation, update.incarnation) + 1
        refutation = self._own_record()
        self._broadcasts.add(refutation)
        if isinstance(update, (Suspect, Dead)):
            self.awareness.apply(1)
            self._answer_accuser(update.accuser, effects)

    def _answer_accuser(self, accuser: str, effects: List[Effect]) -> None:
        """Send this node's current record straight to a member that accused it."""
        member = self._members.get(accuser)
        if member is not None and member.status in _LIVE:
            self._send(effects, member.info.rpc_address, accuser, Gossip())

    def _apply_alive(self, now: float, update: Alive, sender: Optional[str], effects: List[Effect]) -> None:
        node_id = update.node_id
        member = self._members.get(node_id)
        if member is None:
            tombstone = self._tombstones.get(node_id)
            if tombstone is not None and update.incarnation <= tombstone[0]:
                return
            self._tombstones.pop(node_id, None)
            member = _Member(info=update.info, incarnation=update.incarnation, status=ALIVE, since=now,
                             detector=PhiDetector(self.config.phi, self.config.ping_interval, 0.0))
            self._members[node_id] = member
            self._order.add(node_id, self._rng)
            self._broadcasts.add(update)
            effects.append(MemberJoined(update.info))
            return
        if update.incarnation < member.incarnation or (
                update.incarnation == member.incarnation and (member.status != ALIVE or update.info == member.info)):
            if sender == node_id and (update.incarnation < member.incarnation or member.status != ALIVE):
                member.correct = True
            return
        was = member.status
        changed = update.info != member.info
        member.info = update.info
        member.incarnation = update.incarnation
        member.unanswered = member.recheck = None
        member.suspicion = None
        if was != ALIVE:
            member.status, member.since = ALIVE, now
            if was in (DEAD, LEFT):
                _reset_detector(member, self.config)
                if node_id not in self._order:
                    self._order.add(node_id, self._rng)
            effects.append(MemberAlive(node_id))
        if changed:
            effects.append(MemberUpdated(update.info))
        self._broadcasts.add(update)

    def _apply_suspect(self, now: float, update: Suspect, effects: List[Effect]) -> None:
        member = self._members.get(update.node_id)
        if member is None or update.incarnation < member.incarnation:
            return
        if member.status == SUSPECT and member.suspicion is not None:
            if update.incarnation > member.incarnation:
                member.incarnation = member.suspicion.incarnation = update.incarnation
            if member.suspicion.confirm(update.accuser):
                self._broadcasts.add(update)
            return
        if member.status != ALIVE:
            return
        member.incarnation = update.incarnation
        self._suspect(now, update.node_id, member, update.accuser, (), effects)
        self._broadcasts.add(update)

    def _apply_dead(self, now: float, update: Dead, effects: List[Effect]) -> None:
        member = self._members.get(update.node_id)
        if member is None or update.incarnation < member.incarnation or member.status not in _LIVE:
            return
        member.incarnation = update.incarnation
        self._convict(now, update.node_id, member, update.accuser, effects)
        self._broadcasts.add(update)

    def _apply_left(self, now: float, update: Left, effects: List[Effect]) -> None:
        member = self._members.get(update.node_id)
        if member is None or update.incarnation < member.incarnation or member.status == LEFT:
            return
        member.incarnation = update.incarnation
        member.status, member.since = LEFT, now
        member.suspicion = None
        member.unanswered = member.recheck = None
        self._drop_from_probes(update.node_id)
        effects.append(MemberLeft(update.node_id))
        self._rejoin_if_alone()
        self._broadcasts.add(update)

    def _suspect(self, now: float, node_id: str, member: _Member, accuser: str, confirmers: Iterable[str],
                 effects: List[Effect]) -> None:
        shortest, longest = self.config.suspicion_timeouts(len(self._members) + 1)
        expected = max(0, min(self.config.suspicion_confirmations, len(self._members) - 1))
        member.status, member.since = SUSPECT, now
        member.unanswered = member.recheck = None
        member.suspicion = Suspicion(member.incarnation, now, accuser, self.awareness.scale(shortest),
                                     self.awareness.scale(longest), expected, confirmers)
        effects.append(MemberSuspected(node_id))

    def _convict(self, now: float, node_id: str, member: _Member, accuser: str, effects: List[Effect]) -> None:
        member.status, member.since, member.accuser = DEAD, now, accuser
        member.suspicion = None
        member.unanswered = member.recheck = None
        self._drop_from_probes(node_id)
        if node_id not in self._reconnect:
            self._reconnect.add(node_id, self._rng)
        effects.append(MemberDead(node_id))
        self._rejoin_if_alone()

    def _rejoin_if_alone(self) -> None:
        """With no member left alive, probe the seeds again."""
        if not any(m.status in _LIVE for m in self._members.values()):
            self._seeds = dict.fromkeys(self._seeds, False)

    def _drop_from_probes(self, node_id: str) -> None:
        if node_id in self._order:
            self._order.remove(node_id)
        if self._probe is not None and self._probe.target == node_id:
            self._probe = None

    # Bodies (SWIM 3.1, Lifeguard 4.1).

    def _handle_body(self, now: float, address: Tuple[str, int], sender: str, body: Body,
                     effects: List[Effect]) -> None:
        if isinstance(body, Ping):
            if body.target is None or body.target == self.me.node_id:
                self._send(effects, address, sender, Ack(seq=body.seq), fill=body.target is None)
        elif isinstance(body, PingReq):
            if body.target == self.me.node_id:
                self._send(effects, address, sender, Ack(seq=body.seq))
                return
            seq = self._next_seq()
            self._relays[seq] = Relay(requester=address, requester_seq=body.seq, target=body.target,
                                      deadline=now + self.awareness.scale(self.config.ping_timeout))
            self._send(effects, body.address, body.target, Ping(seq=seq, target=body.target))
        elif isinstance(body, Ack):
            self._handle_ack(now, address, sender, body.seq, effects)
        elif isinstance(body, Nack):
            probe = self._probe
            if probe is not None and probe.seq == body.seq and sender in probe.relays:
                probe.nacks.add(sender)
                if len(probe.nacks) == len(probe.relays):
                    probe.deadline = min(probe.deadline, now)

    def _handle_ack(self, now: float, address: Tuple[str, int], sender: str, seq: int,
                    effects: List[Effect]) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            if not probe.acked:
                probe.acked = True
                self._recent_probes.pop(seq, None)
                self._heard(now, probe.target)
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(effects, relay.requester, None, Ack(seq=relay.requester_seq))
            return
        seed = self._seed_probes.pop(seq, None)
        if seed is not None:
            self._seeds[seed] = True
            return
        target = self._recent_probes.pop(seq, None)
        if target is not None:
            self._heard(now, target)

    def _heard(self, now: float, node_id: str) -> None:
        """An ack from C{node_id} to one of our probes: a heartbeat for its phi."""
        member = self._members.get(node_id)
        if member is not None and member.status in _LIVE:
            member.detector.heartbeat(_virtual_now(member, now))
            member.unanswered = member.recheck = None
            member.confirmers = ()

    # Timers.

    def _phi_pause(self) -> float:
        return self.awareness.score * self.config.ping_interval

    def _start_probe(self, now: float, effects: List[Effect]) -> None:
        node_id = self._order.next(lambda n: self._members[n].status in _LIVE)
        if node_id is None:
            return
        member = self._members[node_id]
        member.probe_virtual = _virtual_now(member, now) if member.unanswered is not None else (
            member.probe_virtual + self.config.ping_interval)
        member.probe_started = now
        seq = self._next_seq()
        self._probe = Probe(seq=seq, target=node_id, address=member.info.rpc_address, started=now,
                            indirect_at=now + self.awareness.scale(self.config.ping_timeout),
                            deadline=now + self.awareness.scale(self.config.ping_interval))
        self._recent_probes[seq] = node_id
        while len(self._recent_probes) > _RECENT_PROBES_MAX:
            self._recent_probes.popitem(last=False)
        self._send(effects, member.info.rpc_address, node_id, Ping(seq=seq, target=node_id))

    def _advance_probe(self, now: float, effects: List[Effect]) -> None:
        probe = self._probe
        if probe is None:
            return
        if not probe.acked and not probe.indirect_sent and now >= probe.indirect_at:
            probe.indirect_sent = True
            candidates = [n for n, m in self._members.items() if m.status == ALIVE and n != probe.target]
            relays = self._rng.sample(candidates, min(len(candidates), self.config.indirect_checks))
            probe.relays = tuple(relays)
            for relay in relays:
                self._send(effects, self._members[relay].info.rpc_address, relay,
                           PingReq(seq=probe.seq, target=probe.target, address=probe.address))
            self._send(effects, probe.address, probe.target, Ping(seq=probe.seq, target=probe.target))
        if now < probe.deadline:
            return
        self._probe = None
        if probe.acked:
            self.awareness.apply(-1)
            return
        self.awareness.apply(len(probe.relays) - len(probe.nacks) if probe.relays else 1)
        member = self._members.get(probe.target)
        if member is not None and member.status == ALIVE and member.unanswered is None:
            member.unanswered = now
            member.confirmers = tuple(sorted(probe.nacks))
            member.recheck = now

    def _check_members(self, now: float, effects: List[Effect]) -> None:
        for node_id, member in list(self._members.items()):
            if member.recheck is not None and now >= member.recheck:
                self._check_phi(now, node_id, member, effects)
            suspicion = member.suspicion
            if suspicion is not None and now >= suspicion.deadline:
                self._convict(now, node_id, member, self.me.node_id, effects)
                self._broadcasts.add(Dead(node_id=node_id, incarnation=member.incarnation,
                                          accuser=self.me.node_id))

    def _check_phi(self, now: float, node_id: str, member: _Member, effects: List[Effect]) -> None:
        """A member whose probe failed: suspect it once its phi reaches the threshold."""
        pause = self._phi_pause()
        virtual_now = _virtual_now(member, now)
        if member.detector.phi(virtual_now, pause) < self.config.phi_threshold:
            crossing = member.detector.crossing(self.config.phi_threshold, pause)
            member.recheck = None if crossing is None else now + max(0.001, crossing - virtual_now)
            return
        self._suspect(now, node_id, member, self.me.node_id, member.confirmers, effects)
        accusation = Suspect(node_id=node_id, incarnation=member.incarnation, accuser=self.me.node_id)
        self._broadcasts.add(accusation)
        self._send(effects, member.info.rpc_address, node_id, Gossip())

    def _expire_relays(self, now: float, effects: List[Effect]) -> None:
        for seq, relay in list(self._relays.items()):
            if now >= relay.deadline:
                del self._relays[seq]
                self._send(effects, relay.requester, None, Nack(seq=relay.requester_seq))

    def _probe_seeds(self, now: float, effects: List[Effect]) -> None:
        self._seed_probes.clear()
        for address, answered in self._seeds.items():
            if not answered:
                seq = self._next_seq()
                self._seed_probes[seq] = address
                self._send(effects, address, None, Ping(seq=seq))

    def _probe_dead(self, now: float, effects: List[Effect]) -> None:
        node_id = self._reconnect.next(lambda n: n in self._members and self._members[n].status == DEAD)
        if node_id is not None:
            self._send(effects, self._members[node_id].info.rpc_address, node_id, Ping(seq=self._next_seq(),
                                                                                     target=node_id))

    def _gossip(self, effects: List[Effect]) -> None:
        for node_id, member in self._members.items():
            if member.suspicion is not None and member.suspicion.accuser == self.me.node_id:
                self._send(effects, member.info.rpc_address, node_id, Gossip())
        live = [n for n, m in self._members.items() if m.status in _LIVE]
        for node_id in self._rng.sample(live, min(len(live), self.config.gossip_fanout)):
            if not len(self._broadcasts):
                break
            self._send(effects, self._members[node_id].info.rpc_address, node_id, Gossip())

    def _accusing(self) -> bool:
        """True while this node holds a suspicion it started: it repeats it to the suspect."""
        return any(m.suspicion is not None and m.suspicion.accuser == self.me.node_id
                   for m in self._members.values())

    def _reap(self, now: float) -> None:
        timeout = self.config.dead_reap_timeout
        for node_id, member in list(self._members.items()):
            if member.status in (DEAD, LEFT) and now >= member.since + timeout:
                del self._members[node_id]
                if node_id in self._reconnect:
                    self._reconnect.remove(node_id)
                self._tombstones[node_id] = (member.incarnation, now + timeout)
        for node_id, (_, until) in list(self._tombstones.items()):
            if now >= until:
                del self._tombstones[node_id]
