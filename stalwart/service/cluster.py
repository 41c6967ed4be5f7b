# -*- test-case-name: tests.service.test_cluster -*-
"""
The "cluster" service: what turns a node into a member of a cluster
(DESIGN.md section 3).

  - It runs the cluster RPC (L{stalwart.cluster.rpc.service.RPCService}):
    Raft messages both ways, roster exchanges, forwarded proposals.
  - Every L{EXCHANGE_SECONDS} it exchanges rosters (L{stalwart.cluster.roster})
    with each seed not yet known as a node and with one random member,
    so a node seeded with one address learns every node.
  - A brand-new node founds the cluster when L{should_found} says so; the
    leader adds every other node that may join as a learner, then
    promotes it once caught up (never a read replica), one change at a
    time through the log (L{next_change}).  This is the one code path that
    adds a member; gossip will feed the same roster.
  - It runs SWIM gossip (L{stalwart.cluster.swim.service.GossipService}) on
    the same port over UDP: liveness (alive, suspect, dead, phi) of every
    member for the cluster status, its term and last index, and
    discovery: a node gossip reports that the roster lacks is asked for
    its record at once.  The gossip's full state rides on each roster
    exchange (SWIM's push-pull).  Members are never removed because
    gossip says they died or left: a restart also leaves, and only an
    operator knows a node is gone for good (admin cluster remove).
  - It tells the JMAP resources where the leader's jmap-url is, and runs a
    write proposed on a follower (LMTP, WebSocket, admin) on the leader:
    the leader answers with the entry's term and index once applied, and
    the follower answers with its own state machine's result for that
    entry once it has applied it too (the result is the same on every
    node), so the caller also reads its own write afterwards.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Tuple

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.raft.core import ConfigChangeRefused, NotLeader
from stalwart.cluster.raft.driver import ProposalDropped, Stopping, StorageFailed
from stalwart.cluster.roster import (
    AddLearner, BadRoster, NodeRecord, Roster, decode_exchange, encode_records, next_change, parse_seed, should_found,
)
from stalwart.store.commands import Command, encode_command
from stalwart.store.refusal import Refused
from stalwart.cluster.swim.messages import MemberDead, MemberInfo, MemberJoined, MemberLeft, MemberSuspected, MemberUpdated
from stalwart.cluster.rpc import commands as rpc_errors
from stalwart.cluster.rpc.calls import CallFailed

__all__ = ["ClusterService", "EXCHANGE_SECONDS", "SETTLE_SECONDS", "LEAVE_COMMAND", "apply_leave"]

#: The command a node proposes to leave the cluster for good.
LEAVE_COMMAND = "cluster.leave"


def apply_leave(ctx) -> dict:
    """State machine: remember that a node leaves; the leader then removes it (L{ClusterService._grow})."""
    node_id = ctx.command.args.get("node")
    if not isinstance(node_id, str) or not node_id:
        raise Refused("badCommand", "cluster.leave needs a node id")
    ctx.tx.execute("INSERT OR IGNORE INTO cluster_leaving VALUES (?)", (node_id,))
    return {"leaving": node_id}


def _leaving(conn) -> set:
    return {row[0] for row in conn.execute("SELECT node_id FROM cluster_leaving")}

#: Seconds between roster exchanges: quick enough that a new node is
#: known everywhere within a couple of seconds, a few hundred bytes each.
EXCHANGE_SECONDS = 0.5
#: Seconds the set of known nodes must stay the same before a brand-new
#: node founds a cluster: a ring of seeds needs a few exchanges to spread.
SETTLE_SECONDS = 2.0
#: Results of applied entries kept while forwarded proposals are pending,
#: so the follower's answer is its own apply's result.
RESULTS_KEPT_MAX = 4096
#: Seconds a follower waits to apply a forwarded entry the leader applied.
FORWARD_APPLY_SECONDS = 30.0
#: Seconds a leader that is shutting down waits for another voter to take
#: over (thesis 3.10) before it stops anyway.
HAND_OVER_SECONDS = 3.0


class ClusterService(Service):
    log = Logger(observer=observer)

    def __init__(self, config, raft, store, reactor, make_rpc: Callable[..., Any],
                 rng: Optional[random.Random] = None, make_gossip: Optional[Callable[..., Any]] = None) -> None:
        """
        @param raft: the L{stalwart.service.raft.RaftService}, started before this.
        @param make_rpc: C{make_rpc(node_id=, address_book=, deliver=, exchange=,
            forward=, peer_lost=)} returns the RPC service (L{RPCService} with the rest of
            its arguments bound; tests pass a simulated network).
        @param make_gossip: C{make_gossip(me=, on_event=)} returns the gossip
            service (L{GossipService} with the rest bound), or None for none.
        """
        self.config = config
        self.raft = raft
        self.store = store
        self._reactor = reactor
        self._make_rpc = make_rpc
        self._make_gossip = make_gossip
        self.gossip: Any = None
        self._gossiped: Tuple[int, int] = (-1, -1)
        self._rng = rng or random.SystemRandom()
        self.seeds = [parse_seed(s, config.rpc_port) for s in config.seed_nodes]
        self.roster: Optional[Roster] = None
        self.rpc: Any = None
        self.address_book: Dict[str, Tuple[str, int]] = {}
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._forwards = 0
        #: Nodes that asked to leave for good, from the state (see L{leave}).
        self.leaving: set = set()
        self._results: "OrderedDict[int, Tuple[int, Any]]" = OrderedDict()
        raft.attach(self._send)

    @property
    def node_id(self) -> str:
        return self.raft.node_id

    def startService(self) -> None:
        now = self._reactor.seconds()
        self.roster = Roster(self._own_record(), now)
        self.address_book.update(self.roster.addresses())
        self.rpc = self._make_rpc(node_id=self.node_id, address_book=self.address_book, deliver=self.raft.deliver,
                                  exchange=self._exchanged, forward=self._forwarded, peer_lost=self._peer_lost)
        self.rpc.startService()
        if self._make_gossip is not None:
            own = self.roster.own
            self.gossip = self._make_gossip(
                me=MemberInfo(node_id=own.node_id, rpc_address=own.rpc_address, jmap_url=own.jmap_url,
                              read_replica=own.read_replica),
                on_event=self._gossip_event)
            self.gossip.startService()
        self.raft.driver.on_applied(self._applied)
        self.store.reader.run(_leaving).addCallback(self.leaving.update)
        self._loop.start(EXCHANGE_SECONDS, now=True)
        super().startService()

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        stopping = [maybeDeferred(service.stopService) for service in (self.gossip, self.rpc) if service is not None]
        return DeferredList(stopping, consumeErrors=True)

    def hand_over(self) -> Deferred:
        """
        On a clean shutdown of the leader: make the most up-to-date voter
        leader at once, so that clients wait for a transfer (a round
        trip) instead of an election timeout.  Fires when another node
        leads, or after L{HAND_OVER_SECONDS}.
        """
        driver = self.raft.driver
        if driver is None or not driver.is_leader:
            return succeed(None)
        try:
            target = driver.transfer_leadership()
        except NotLeader:
            return succeed(None)
        if target is None:
            return succeed(None)
        self.log.info("handing leadership over to {node}", node=target)
        deadline = self._reactor.seconds() + HAND_OVER_SECONDS

        def check(_=None):
            if not driver.is_leader or self._reactor.seconds() >= deadline:
                return None
            return deferLater(self._reactor, 0.05, lambda: None).addCallback(check)

        return check()

    # -- what the rest of the node asks ------------------------------------

    def routing_state(self) -> Tuple[bool, Optional[str]]:
        """(is_leader, leader's jmap-url or None) for L{stalwart.jmap.routing}."""
        driver = self.raft.driver
        if driver.is_leader:
            return True, self.config.jmap_url
        leader = driver.core.leader
        record = self.roster.get(leader) if leader is not None and self.roster is not None else None
        return False, record.jmap_url if record is not None else None

    def propose(self, payload: bytes) -> Deferred:
        """Propose here when leading; otherwise on the leader over RPC (see the module docstring)."""
        driver = self.raft.driver
        if driver.is_leader:
            return driver.propose(payload)
        leader = driver.core.leader
        record = self.roster.get(leader) if leader is not None else None
        if record is None or self.rpc is None:
            return fail(NotLeader(leader))
        self._forwards += 1
        d = self.rpc.forward(record.rpc_address, payload)
        d.addCallback(lambda answer: self._local_result(*answer))
        d.addErrback(_forward_failed)

        def done(result):
            self._forwards -= 1
            if not self._forwards:
                self._results.clear()
            return result

        return d.addBoth(done)

    # -- forwarding --------------------------------------------------------

    def leave(self) -> Deferred:
        """
        Leave the cluster for good (decommission): propose that this node
        leaves, which the leader carries out by removing it from the Raft
        configuration, and say so in gossip.  A plain shutdown or restart
        never does this.  Fires once the request is in the log.
        """
        d = self.propose(encode_command(Command(kind=LEAVE_COMMAND, args={"node": self.node_id})))

        def announced(result):
            if self.gossip is not None and self.gossip.running:
                self.gossip.leave()
            return result

        return d.addCallback(announced)

    def _applied(self, entry, result) -> None:
        if isinstance(result, dict) and set(result) == {"leaving"}:
            self.leaving.add(result["leaving"])
        if self._forwards:
            self._results[entry.index] = (entry.term, result)
            if len(self._results) > RESULTS_KEPT_MAX:
                self._results.popitem(last=False)

    def _local_result(self, term: int, index: int) -> Deferred:
        def found(_):
            kept = self._results.get(index)
            if kept is None:
                raise ProposalDropped(f"entry {index} was applied here before its answer could be kept")
            if kept[0] != term:
                raise ProposalDropped(f"entry {index} was replaced")
            return kept[1]

        d = self.raft.driver.wait_applied(index)
        d.addTimeout(FORWARD_APPLY_SECONDS, self._reactor)
        return d.addCallback(found)

    def _forwarded(self, payload: bytes) -> Deferred:
        """The leader's side: propose, answer (term, index) once applied here."""
        d = self.raft.driver.propose_entry(payload)
        d.addCallback(lambda applied: (applied[0], applied[1]))

        def refused(failure):
            if failure.check(NotLeader):
                raise rpc_errors.NotLeader(failure.value.leader or "")
            failure.trap(ProposalDropped, Stopping, StorageFailed)
            raise rpc_errors.Unavailable(str(failure.value) or failure.type.__name__)

        return d.addErrback(refused)

    # -- membership --------------------------------------------------------

    def _peer_lost(self, node_id: str) -> None:
        """A peer's connection dropped; if it led, stand for election soon (L{RaftCore.leader_unreachable})."""
        driver = self.raft.driver
        if driver is not None and driver.core.leader == node_id:
            self.log.info("lost the connection from leader {node}", node=node_id)
            driver.core.leader_unreachable(node_id)

    def _send(self, message) -> None:
        if self.rpc is not None:
            self.rpc.send(message)

    def _own_record(self) -> NodeRecord:
        config = self.config
        state = self.store.state_machine
        fresh = self.raft.segments.last_index == 0 and state.last_applied == 0
        cluster_id = state.cluster_id
        if cluster_id is None and state.last_applied > 0 and state.configuration is None:
            cluster_id = self.node_id  # a single node from before configurations were logged
        return NodeRecord(
            node_id=self.node_id,
            rpc_address=(config.rpc_advertise_addr or config.rpc_bind_addr, config.rpc_port),
            jmap_url=config.jmap_url, read_replica=config.read_replica,
            cluster_id=cluster_id, fresh=fresh,
        )

    def _exchanged(self, data: bytes) -> bytes:
        """A peer's roster: merge it, answer with ours."""
        self._merge(data)
        return self._document()

    def _document(self) -> bytes:
        gossip = self.gossip.full_state() if self.gossip is not None and self.gossip.running else None
        return encode_records(self.roster.records(), swim=gossip)

    def _merge(self, data: bytes) -> None:
        records, swim = decode_exchange(data)
        changed = self.roster.merge(records, self._reactor.seconds())
        for record in changed:
            self.address_book[record.node_id] = record.rpc_address
        if swim is not None and self.gossip is not None and self.gossip.running:
            try:
                self.gossip.merge_full_state(swim)
            except ValueError as e:  # the gossip codec's errors
                self.log.warn("bad gossip state in a roster exchange: {why}", why=e)

    def _gossip_event(self, event) -> None:
        """Gossip found a node the roster lacks, or one that moved: ask it for its record now."""
        if isinstance(event, (MemberJoined, MemberUpdated)):
            info = event.info
            known = self.roster.get(info.node_id) if self.roster is not None else None
            if (known is None or known.rpc_address != info.rpc_address) and self.rpc is not None:
                self._exchange_with(info.rpc_address)
        elif isinstance(event, (MemberDead, MemberSuspected, MemberLeft)):
            self.log.info("gossip: {event}", event=event)

    def liveness(self) -> Dict[str, Tuple[str, float]]:
        """node id -> (gossip status, phi), for the cluster status; empty without gossip."""
        if self.gossip is None or not self.gossip.running:
            return {}
        now = self._reactor.seconds()
        return {m.info.node_id: (m.status, m.phi) for m in self.gossip.membership.members(now)}

    def _tick(self) -> None:
        now = self._reactor.seconds()
        # Every field the node describes itself with; the roster keeps the version.
        self.roster.update_own(now, **attrs.asdict(self._own_record(), recurse=False,
                                                   filter=lambda a, _: a.name not in ("node_id", "version")))
        self._exchange_round()
        driver = self.raft.driver
        core = driver.core
        if self.gossip is not None and self.gossip.running and (core.term, core.log.last_index) != self._gossiped:
            self._gossiped = (core.term, core.log.last_index)
            self.gossip.update_local(term=core.term, last_index=core.log.last_index)
        if not core.configuration.members and core.log.last_index == 0 and should_found(self.roster, now, SETTLE_SECONDS):
            self.log.info("founding the cluster as {node}", node=self.node_id)
            driver.bootstrap()
        if driver.is_leader:
            self._grow()

    def _exchange_round(self) -> None:
        known = {r.rpc_address for r in self.roster.records()}
        targets = [seed for seed in self.seeds if seed not in known]
        others = [r.rpc_address for r in self.roster.records() if r.node_id != self.node_id]
        if others:
            targets.append(self._rng.choice(others))
        for address in dict.fromkeys(targets):
            self._exchange_with(address)

    def _exchange_with(self, address) -> None:
        d = self.rpc.exchange(address, self._document())
        d.addCallback(self._merge)
        d.addErrback(self._exchange_failed, address)

    def _exchange_failed(self, failure, address) -> None:
        if failure.check(BadRoster):
            self.log.warn("bad roster from {address}: {why}", address=address, why=failure.value)
        else:
            self.log.debug("roster exchange with {address} failed: {why}", address=address,
                           why=failure.getErrorMessage())

    def _grow(self) -> None:
        driver = self.raft.driver
        core = driver.core
        matched = {peer: p.match for peer, p in core.progress().items()}
        state = self.store.state_machine
        gone = sorted((core.voters | core.learners) & self.leaving)
        if gone:
            # Thesis 4.2.2: a leader removing itself steps down once the change commits.
            self._change(remove=gone[0])
            return
        change = next_change(self.roster, state.cluster_id, core.voters, core.learners, matched,
                             core.log.last_index, core.config.promote_lag_entries_max, state.removed_members)
        if isinstance(change, AddLearner):
            self._change(add_learner=change.node_id)
        elif change is not None:
            self._change(promote=change.node_id)

    def _change(self, **change) -> None:
        [(what, node)] = change.items()
        try:
            self.raft.driver.change_configuration(**change)
        except (ConfigChangeRefused, NotLeader) as e:
            self.log.debug("configuration change {what} {node} must wait: {why}", what=what, node=node, why=e)
            return
        self.log.info("configuration change: {what} {node}", what=what, node=node)


def _forward_failed(failure):
    """The leader's refusals, as the local write path's own exceptions."""
    if failure.check(rpc_errors.NotLeader):
        raise NotLeader(failure.value.leader or None)
    if failure.check(rpc_errors.Unavailable):
        raise ProposalDropped(str(failure.value))
    if failure.check(CallFailed):
        # Unreachable leader, lost connection, timeout: the write may or
        # may not have been made; the caller retries (LMTP answers 451).
        raise ProposalDropped(f"forwarding to the leader failed: {failure.value!r}")
    return failure
