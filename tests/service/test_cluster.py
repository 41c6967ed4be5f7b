# -*- test-case-name: tests.service.test_cluster -*-
"""
Tests for L{stalwart.service.cluster}: whole nodes in one process, joined
by a simulated RPC network (L{tests.service.simnet}) on one clock, found
a cluster from seeds alone, grow it through the log, route clients to
the leader and run a follower's writes on the leader.
"""

from __future__ import annotations

import os
from typing import List

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import LEADER
from stalwart.store.commands import Command
from tests.jmap.harness import LiveNode
from tests.service.simnet import SimNetwork

KEY = "cluster key for tests"


class ClusterCase(SynchronousTestCase):
    """Starts nodes on one clock and a simulated network; helpers to find the leader."""

    config: dict = {}

    def start(self, count: int = 3, replicas: int = 0) -> List[LiveNode]:
        """The seed's example: each node seeded with the next one, in a ring (replicas seeded with node 0)."""
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.net = SimNetwork(self.clock)
        nodes = []
        for i in range(count + replicas):
            port = 7911 + i
            seed = f"127.0.0.1:{7911 + (i + 1) % count}" if i < count else "127.0.0.1:7911"
            nodes.append(self.add(port, seed, read_replica=i >= count, seed_number=i + 1))
        return nodes

    extensions = ()

    def add(self, port: int, seed: str, read_replica: bool = False, seed_number: int = 1) -> LiveNode:
        live = LiveNode(
            self, seed=seed_number, clock=self.clock, extensions=list(self.extensions),
            make_rpc=self.net.make_rpc_for(("127.0.0.1", port)),
            encryption_key=KEY, seed_nodes=(seed,), rpc_port=port, rpc_advertise_addr="127.0.0.1",
            jmap_url=f"https://node{port}.example.com", read_replica=read_replica, **self.config,
        )
        live.between_flushes = lambda: self.clock.advance(0.01)
        return live

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.05)):
            self.clock.advance(0.05)

    def cores(self, nodes):
        return [n.service.getServiceNamed("raft").driver.core for n in nodes]

    def leader(self, nodes) -> LiveNode:
        leaders = [n for n, core in zip(nodes, self.cores(nodes)) if core.role == LEADER]
        self.assertEqual(len(leaders), 1, [c.role for c in self.cores(nodes)])
        return leaders[0]


class InProcessClusterTests(ClusterCase):
    def test_ring_of_seeds_forms_one_cluster(self) -> None:
        """Three brand-new nodes seeded in a ring found one cluster: one founder, all three voters."""
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        for core in self.cores(nodes):
            self.assertEqual(core.voters, {n.service.getServiceNamed("raft").node_id for n in nodes})
            self.assertEqual(core.learners, frozenset())
        states = [n.service.getServiceNamed("store").state_machine for n in nodes]
        self.assertEqual(len({s.cluster_id for s in states}), 1)
        self.assertIsNotNone(states[0].cluster_id)
        self.assertIn(leader, nodes)

    def test_follower_write_runs_on_leader_and_reads_locally(self) -> None:
        """A proposal on a follower is forwarded; the follower answers with its own apply's result."""
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        d = follower.node.propose(Command(kind="account.create", args={
            "name": "alice", "password": "x", "emails": [], "quota": None, "now": follower.node.now()}))
        self.run_for(1)
        created = self.successResultOf(d)
        # Every node applied it: the account is in each state.db.
        for node in nodes:
            row = node.service.getServiceNamed("store").state_machine._conn.execute(
                "SELECT id FROM accounts WHERE name = 'alice'").fetchone()
            self.assertEqual(row, (created["id"],))

    def test_routing_names_the_leader(self) -> None:
        """On a follower, a write request gets a 302 to the leader's jmap-url; a read is served locally."""
        from tests.jmap.harness import basic

        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.assertEqual(follower.node.routing_state(), (False, leader.config.jmap_url))
        self.assertEqual(leader.node.routing_state(), (True, leader.config.jmap_url))
        account = leader.create_account("erin", "a long password")["id"]
        self.run_for(0.5)
        auth = basic("erin", "a long password")
        write = follower.api([["Note/set", {"accountId": account, "create": {"n": {"title": "x"}}}, "0"]], auth)
        self.assertEqual(write.status, 302)
        self.assertEqual(write.header("location"), leader.config.jmap_url + "/jmap/api")
        read = follower.api([["Note/get", {"accountId": account, "ids": None}, "0"]], auth)
        self.assertEqual(read.status, 200, read.body)
        self.assertEqual(read.json()["methodResponses"][0][1]["list"], [])
        written = leader.api([["Note/set", {"accountId": account, "create": {"n": {"title": "x"}}}, "0"]], auth)
        self.assertEqual(written.status, 200)
        self.run_for(0.5)
        read = follower.api([["Note/get", {"accountId": account, "ids": None}, "0"]], auth)
        self.assertEqual([n["title"] for n in read.json()["methodResponses"][0][1]["list"]], ["x"])

    def test_cut_off_follower_redirects_reads(self) -> None:
        """A follower that has not heard from a leader lately does not serve reads: it cannot tell it is up to date."""
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.assertTrue(self.successResultOf(follower.node.catch_up()))
        self.net.cut.add(follower.service.getServiceNamed("raft").node_id)
        self.run_for(3)
        d = follower.node.catch_up()
        self.run_for(1)
        self.assertFalse(self.successResultOf(d))

    def test_read_replica_replicates_but_never_votes(self) -> None:
        nodes = self.start(count=3, replicas=1)
        self.run_for(10)
        replica_id = nodes[3].service.getServiceNamed("raft").node_id
        for core in self.cores(nodes[:3]):
            self.assertNotIn(replica_id, core.voters)
            self.assertIn(replica_id, core.learners)
        leader = self.leader(nodes)
        self.successResultOf(_propose_account(leader, "bob", self))
        self.run_for(1)
        row = nodes[3].service.getServiceNamed("store").state_machine._conn.execute(
            "SELECT name FROM accounts WHERE name = 'bob'").fetchone()
        self.assertEqual(row, ("bob",))

    def test_leader_loss_elects_another_and_keeps_writes(self) -> None:
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        self.successResultOf(_propose_account(leader, "carol", self))
        self.net.cut.add(leader.service.getServiceNamed("raft").node_id)
        self.run_for(5)
        others = [n for n in nodes if n is not leader]
        new_leader = self.leader(others)
        follower = next(n for n in others if n is not new_leader)
        d = _propose_account(follower, "dave", self)
        self.run_for(1)
        self.successResultOf(d)
        for node in others:
            names = {r[0] for r in node.service.getServiceNamed("store").state_machine._conn.execute(
                "SELECT name FROM accounts")}
            self.assertEqual(names, {"carol", "dave"})

    def test_clean_shutdown_hands_leadership_over(self) -> None:
        """A stopping leader makes another voter leader at once, well before an election timeout (thesis 3.10)."""
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        stopped = leader.service.stopService()
        self.run_for(0.3)
        self.successResultOf(stopped)  # well before the 3 s hand-over deadline
        others = [n for n in nodes if n is not leader]
        self.assertEqual(self.leader(others).node.routing_state()[0], True)

    def test_admin_removes_a_member(self) -> None:
        """DELETE /admin/cluster/members/ID on the leader shrinks the configuration; a follower answers 421."""
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        gone = follower.service.getServiceNamed("raft").node_id
        self.assertEqual(leader.admin("DELETE", f"/cluster/members/{gone}x").status, 404)
        self.assertEqual(follower.admin("DELETE", f"/cluster/members/{gone}").status, 421)
        self.assertEqual(leader.admin("DELETE", f"/cluster/members/{gone}").status, 204)
        self.run_for(1)
        for node in nodes:
            if node is not follower:
                self.assertNotIn(gone, node.service.getServiceNamed("raft").driver.core.configuration.members)
        self.assertEqual(len(self.cores([leader])[0].voters), 2)

    def test_leave_for_good(self) -> None:
        """
        POST /admin/cluster/leave on a node (a follower, then the leader
        itself) takes it out of the configuration through the log, and no
        leader adds it back; a restart never does this.
        """
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        gone = follower.service.getServiceNamed("raft").node_id
        reply = follower.admin("POST", "/cluster/leave")
        self.assertEqual(reply.status, 202, reply.body)
        self.run_for(2)
        for node in nodes:
            if node is not follower:  # the leader stops replicating to it at once (Raft: in force on append)
                self.assertNotIn(gone, node.service.getServiceNamed("raft").driver.core.configuration.members)
        self.assertIn(gone, leader.service.getServiceNamed("store").state_machine.removed_members)
        # The leader leaves too: it removes itself, steps down, the last node leads alone.
        last = next(n for n in nodes if n is not leader and n is not follower)
        self.assertEqual(leader.admin("POST", "/cluster/leave").status, 202)
        self.run_for(5)
        last_core = self.cores([last])[0]
        self.assertEqual(last_core.voters, {last.service.getServiceNamed("raft").node_id})
        self.assertEqual(last_core.role, LEADER)

    def test_websocket_write_on_follower_runs_on_leader(self) -> None:
        """
        A write over JMAP-over-WebSocket on a follower (a socket cannot be
        redirected) runs on the leader; the Response comes from the follower
        once it applied it, and back-references in the same request work.
        """
        from twisted.internet.address import IPv4Address
        from twisted.test.iosim import FakeTransport, connect

        from tests.jmap.harness import basic
        from tests.jmap.notes import NOTES
        from tests.push.test_websocket import WsClient

        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        account = leader.create_account("wendy", "a long password")["id"]
        self.run_for(0.5)
        follower = next(n for n in nodes if n is not leader)
        client = WsClient(basic("wendy", "a long password"))
        site = follower.service.getServiceNamed("jmap").site
        server = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        server.callLater = self.clock.callLater
        pump = connect(server, FakeTransport(server, isServer=True), client, FakeTransport(client, isServer=False))
        pump.flush()
        client.send({"@type": "Request", "id": "R1", "using": ["urn:ietf:params:jmap:core", NOTES], "methodCalls": [
            ["Note/set", {"accountId": account, "create": {"a": {"title": "over ws"}}}, "0"],
            ["Note/query", {"accountId": account}, "1"],
            ["Note/get", {"accountId": account, "#ids": {"resultOf": "1", "name": "Note/query", "path": "/ids"},
                          "properties": ["title"]}, "2"]]})
        for _ in range(40):
            pump.flush()
            self.clock.advance(0.05)
            if client.messages:
                break
        [response] = client.messages
        self.assertEqual(response["methodResponses"][2][1]["list"][0]["title"], "over ws", response)
        self.run_for(0.5)
        for node in nodes:
            reply = node.process(account, [["Note/get", {"accountId": account, "ids": None}, "0"]])
            self.assertEqual([n["title"] for n in reply["methodResponses"][0][1]["list"]], ["over ws"])


class SnapshotClusterTests(ClusterCase):
    """Snapshots every 20 entries: new and lagging nodes catch up from a snapshot (InstallSnapshot)."""

    config = {"raft_snapshot_entries": 20}

    def names(self, live) -> set:
        return {r[0] for r in live.service.getServiceNamed("store").state_machine._conn.execute(
            "SELECT name FROM accounts")}

    def test_new_node_and_lagging_node_get_the_snapshot(self) -> None:
        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        lagging = next(n for n in nodes if n is not leader)
        self.net.cut.add(lagging.service.getServiceNamed("raft").node_id)
        for i in range(60):
            _propose_account(leader, f"user{i}", self)
        self.run_for(2)
        leader_log = leader.service.getServiceNamed("raft").driver.core.log
        self.assertGreater(leader_log.snapshot_index, 20)  # compacted past what the lagging node has
        self.net.cut.clear()
        late = self.add(7915, "127.0.0.1:7911", seed_number=9)
        self.run_for(10)
        expected = {f"user{i}" for i in range(60)}
        for node in (lagging, late):
            self.assertEqual(self.names(node), expected)
        late_id = late.service.getServiceNamed("raft").node_id
        self.assertIn(late_id, self.cores([leader])[0].voters)
        snapshots = os.listdir(os.path.join(late.config.data_dir, "raft", "snapshots"))
        self.assertTrue(snapshots)


class MailClusterTests(ClusterCase):
    """LMTP and push on followers (the mail extension on every node)."""

    def setUp(self) -> None:
        from stalwart.mail.extension import mail_extension

        self.extensions = [mail_extension()]

    def test_lmtp_on_follower_runs_on_leader(self) -> None:
        """An LMTP delivery to a follower is carried out on the leader; the MTA gets 250 and every node has the message."""
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        leader.create_account("alice@example.com", "a long password")
        self.run_for(0.5)
        follower = next(n for n in nodes if n is not leader)
        factory = follower.service.getServiceNamed("lmtp").factory
        peer = IPv4Address("TCP", "127.0.0.1", 5000)
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"LHLO mta.example.com\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
            b"From: bob@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n"
        )
        self.run_for(1)
        self.assertIn(b"250 2.0.0", transport.value().splitlines()[-1], transport.value())
        for node in nodes:
            rows = node.service.getServiceNamed("store").state_machine._conn.execute(
                "SELECT COUNT(*) FROM emails").fetchone()
            self.assertEqual(rows, (1,))

    def test_push_on_follower_sees_leader_write(self) -> None:
        """An EventSource client on a follower gets the StateChange of a write made through the leader."""
        import treq

        from tests.jmap.harness import JMAP_URL, basic

        nodes = self.start()
        self.run_for(8)
        leader = self.leader(nodes)
        account = leader.create_account("alice@example.com", "a long password")["id"]
        self.run_for(0.5)
        follower = next(n for n in nodes if n is not leader)
        d = follower.http.request("GET", JMAP_URL + "/jmap/eventsource?types=*&closeafter=no&ping=0",
                                  headers={"Authorization": basic("alice@example.com", "a long password")})
        follower.http.flush()
        response = self.successResultOf(d)
        chunks = []
        treq.collect(response, chunks.append)
        follower.http.flush()
        reply = leader.api([["Mailbox/set", {"accountId": account, "create": {"m": {"name": "Projects"}}}, "0"]],
                           basic("alice@example.com", "a long password"), using=["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"])
        self.assertEqual(reply.status, 200, reply.body)
        self.run_for(1.5)
        follower.http.flush()
        stream = b"".join(chunks)
        self.assertIn(b"event: state", stream)
        self.assertIn(b'"Mailbox"', stream)


def _propose_account(live: LiveNode, name: str, case):
    d = live.node.propose(Command(kind="account.create", args={
        "name": name, "password": "x", "emails": [], "quota": None, "now": live.node.now()}))
    live.clock.advance(0.05)
    return d
