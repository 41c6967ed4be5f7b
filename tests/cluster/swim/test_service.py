# -*- test-case-name: tests.cluster.swim.test_service -*-
"""
L{stalwart.cluster.swim.service.GossipService} over real UDP sockets on
127.0.0.1, with the real reactor: no sleeps, every wait is a Deferred.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Callable, Dict, List

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from stalwart.cluster.swim.config import SwimConfig
from stalwart.cluster.swim.members import ALIVE, LEFT
from stalwart.cluster.swim.messages import MemberEvent, MemberInfo, MemberJoined, MemberLeft, MemberUpdated
from stalwart.cluster.swim.service import GossipService


class WatchedCounter(Counter):
    """A Counter that fires a Deferred when a key first reaches 1."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: Dict[str, defer.Deferred] = {}

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        d = self.waiting.pop(key, None)
        if d is not None:
            d.callback(value)

    def when(self, key: str) -> defer.Deferred:
        if self[key]:
            return defer.succeed(self[key])
        return self.waiting.setdefault(key, defer.Deferred())


class Node:
    """One GossipService with the events it reported and Deferreds waiting on them."""

    def __init__(self, name: str, key: str, seeds: List) -> None:
        self.events: List[MemberEvent] = []
        self._waiting: List[tuple] = []
        self.counters = WatchedCounter()
        me = MemberInfo(node_id=name, rpc_address=("127.0.0.1", 0), jmap_url=f"https://{name}.example/")
        self.service = GossipService(
            reactor=reactor, clock=reactor, config=SwimConfig(), me=me, seeds=seeds, encryption_key=key,
            rng=random.Random(name), urandom=os.urandom, on_event=self._event, bind_host="127.0.0.1",
            counters=self.counters)

    def _event(self, event: MemberEvent) -> None:
        self.events.append(event)
        for entry in list(self._waiting):
            if entry[0](event):
                self._waiting.remove(entry)
                entry[1].callback(event)

    def when(self, match: Callable[[MemberEvent], bool]) -> defer.Deferred:
        for event in self.events:
            if match(event):
                return defer.succeed(event)
        d = defer.Deferred()
        self._waiting.append((match, d))
        return d

    @property
    def address(self):
        return self.service.address


class GossipServiceTests(TestCase):
    """Two services find each other through one seed and see each other leave; a wrong key is refused."""

    timeout = 20

    def start(self, name: str, key: str, seeds: List) -> Node:
        node = Node(name, key, seeds)
        node.service.startService()
        self.addCleanup(lambda: node.service.stopService() if node.service.running else None)
        return node

    @defer.inlineCallbacks
    def test_join_through_seed_and_leave(self):
        """
        B knows only A's address: both report each other joined (B learns
        A's node id from its answer), with the advertised address and
        jmap-url; B's term change reaches A; A's full state teaches C both;
        when B stops, A reports it left.
        """
        a = self.start("node-a", "secret", [])
        b = self.start("node-b", "secret", ["127.0.0.1:%d" % a.address[1]])
        joined_b = yield a.when(lambda e: isinstance(e, MemberJoined) and e.info.node_id == "node-b")
        joined_a = yield b.when(lambda e: isinstance(e, MemberJoined) and e.info.node_id == "node-a")
        self.assertEqual(joined_a.info.rpc_address, a.address)
        self.assertEqual(joined_b.info.jmap_url, "https://node-b.example/")
        self.assertEqual(a.service.membership.status("node-b"), ALIVE)
        b.service.update_local(term=4)
        yield a.when(lambda e: isinstance(e, MemberUpdated) and e.info.term == 4)
        c = self.start("node-c", "secret", [])
        c.service.merge_full_state(a.service.full_state())
        self.assertEqual(sorted(e.info.node_id for e in c.events if isinstance(e, MemberJoined)),
                         ["node-a", "node-b"])
        yield b.service.stopService()
        yield a.when(lambda e: isinstance(e, MemberLeft) and e.node_id == "node-b")
        self.assertEqual(a.service.membership.status("node-b"), LEFT)
        self.assertGreater(a.counters["received"], 0)
        self.assertEqual(a.counters["forged"] + a.counters["unknown_key"], 0)

    @defer.inlineCallbacks
    def test_wrong_key_is_counted_and_ignored(self):
        """
        A node sealing with another key is refused: its packets are counted
        as rejected and never parsed, and it never becomes a member.
        """
        a = self.start("node-a", "secret", [])
        c = self.start("node-c", "another secret", [("127.0.0.1", a.address[1])])
        rejected = defer.DeferredList([a.counters.when("unknown_key"), a.counters.when("forged")],
                                      fireOnOneCallback=True)
        yield rejected
        self.assertIsNone(a.service.membership.status("node-c"))
        self.assertEqual(a.service.membership.full_state()[0].info.node_id, "node-a")
        self.assertEqual(a.counters["received"], 0)
        self.assertEqual(c.service.membership.status("node-a"), None)
