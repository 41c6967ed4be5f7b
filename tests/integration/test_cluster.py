# -*- test-case-name: tests.integration.test_cluster -*-
"""
A real cluster (DESIGN.md section 3): three C{twistd -n stalwart-jmap}
processes on 127.0.0.1 with JMAP over HTTPS (a self-signed certificate
made here) and the cluster RPC on free ports, seeded as a ring like the
quick start (node i knows only node i+1), plus a read replica and a
stranger with the wrong encryption-key.

Nothing sleeps: every wait polls with reactor timers up to a bound and
fails with what it was waiting for.  Two clusters are formed, one per
test, and each test checks several things in sequence; every step's
failure message names the step.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python import log
from twisted.trial.unittest import TestCase

from tests.integration.server import (
    ServerTestMixin, admin_headers, free_ports, http_client, poll_until,
)
from tests.integration.test_https import self_signed

KEY = "integration-cluster-key"
PASSWORD = "pw-carol"
ADDRESS = "carol@cluster.example"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]

FORM_SECONDS_MAX = 30.0
"""Ring of fresh nodes to one leader and three voters (settling takes ~2 s, then joins)."""
FAILOVER_SECONDS_MAX = 15.0
"""kill -9 of the leader to the first acknowledged write through a new one."""
CATCH_UP_SECONDS_MAX = 20.0
"""A node (restarted, replica) reaching the leader's commit index."""
REQUEST_SECONDS = 5.0
"""Bound of any one HTTP request."""
WRITES_BEFORE_KILL = 15
WRITES_AFTER_FAILOVER = 15


def _lmtp_deliver(port: int, raw: bytes) -> list:
    """On a thread: one LMTP transaction; the (code, reply) of RCPT and DATA."""
    with smtplib.LMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo_or_helo_if_needed()
        code, reply = client.mail("sender@example.org")
        replies = [(code, reply)]
        replies.append(client.rcpt(ADDRESS))
        if replies[-1][0] == 250:
            replies.append(client.data(raw))
        return replies


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 2).close()
        return True
    except OSError:
        return False


class _SteadyWriter:
    """
    A client writing one Mailbox/set create at a time, for ever, until
    told to stop: it sends to a node, follows the 302 to the leader, and on
    a refused connection, a timeout, a 503 or a 302 to a dead address moves
    on to the next node.  Each attempt creates a new name, so an attempt
    cut by the kill (which may or may not have been committed) is never
    retried under the same name.

    @ivar acknowledged: C{{name: mailbox id}} of every 200 with a created id.
    @ivar acks: (sent at, answered at) per acknowledged write, reactor time.
    """

    def __init__(self, test, client, urls, account):
        self.test, self.client, self.urls, self.account = test, client, list(urls), account
        self.acknowledged, self.acks, self.failures = {}, [], []
        self.stopped = False
        self.done = None

    def start(self):
        self.done = self._run()

    @inlineCallbacks
    def _run(self):
        n, target = 0, 0
        while not self.stopped:
            name = f"steady-{n}"
            n += 1
            url = self.urls[target % len(self.urls)] + "/jmap/api"
            sent = reactor.seconds()
            created = None
            for _ in range(3):
                try:
                    code, body, _, location = yield self.test.api(
                        self.client, url, [["Mailbox/set", {"accountId": self.account, "create": {"k": {"name": name}}}, "0"]])
                except Exception as e:  # noqa: BLE001 - the kill cuts connections
                    self.failures.append(f"{url}: {type(e).__name__}")
                    break
                if code in (301, 302, 307, 308) and location:
                    url = location
                    continue
                if code == 200:
                    [[method, result, _]] = body["methodResponses"]
                    created = (result.get("created") or {}).get("k") if method == "Mailbox/set" else None
                if created is None:
                    self.failures.append(f"{url}: {code} {body}")
                break
            if created is not None:
                self.acknowledged[name] = created["id"]
                self.acks.append((sent, reactor.seconds()))
            else:
                target += 1
                yield deferLater(reactor, 0.05, lambda: None)

    def acknowledged_since(self, moment: float) -> int:
        return sum(1 for sent, _ in self.acks if sent >= moment)

    def stop(self):
        self.stopped = True
        return self.done


class ClusterTests(ServerTestMixin, TestCase):
    timeout = 150

    # -- helpers -----------------------------------------------------------

    def _certificate(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.cert_pem, key_pem = self_signed()
        self.cert_path, self.key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        for path, data in ((self.cert_path, self.cert_pem), (self.key_path, key_pem)):
            with open(path, "wb") as f:
                f.write(data)
        self.client = http_client(trust_pem=self.cert_pem)

    def _node_arguments(self, port, rpc_port, seed_rpc_port, key=KEY, extra=()):
        return [
            f"--jmap-url=https://127.0.0.1:{port}", f"--jmap-cert-path={self.cert_path}",
            f"--jmap-key-path={self.key_path}", f"--encryption-key={key}", "--rpc-advertise-addr=127.0.0.1",
            f"--rpc-port={rpc_port}", f"--seed-nodes=127.0.0.1:{seed_rpc_port}",
        ] + list(extra)

    @inlineCallbacks
    def _start_nodes(self, specs):
        """Start several nodes at once (spec: name, port, rpc, seed rpc, lmtp, key, extra); wait until all answer."""
        servers = []
        for name, port, rpc, seed, lmtp, key, extra in specs:
            server = yield self.start_server(
                arguments=self._node_arguments(port, rpc, seed, key, extra), port=port, tls=True,
                name=name, lmtp_port=lmtp, wait=False)
            servers.append(server)
        yield gatherResults([s.wait_ready(self.client) for s in servers], consumeErrors=True)
        return servers

    @inlineCallbacks
    def _ring(self, lmtp=False):
        """Three fresh nodes, node i seeded with node i+1; fires with them once one cluster has formed."""
        self._certificate()
        ports = free_ports(9 if lmtp else 6)
        jmap, rpc, lmtp_ports = ports[0:3], ports[3:6], (ports[6:9] if lmtp else [0, 0, 0])
        self.rpc_ports = rpc
        nodes = yield self._start_nodes([
            (f"node{i}", jmap[i], rpc[i], rpc[(i + 1) % 3], lmtp_ports[i], KEY, ()) for i in range(3)])
        yield self._formed(nodes)
        return nodes

    @inlineCallbacks
    def status(self, server):
        response = yield self.client.get(server.url + "/admin/cluster", headers=admin_headers(), timeout=REQUEST_SECONDS)
        body = yield response.json()
        return body

    @inlineCallbacks
    def _statuses(self, servers):
        return (yield gatherResults([self.status(s) for s in servers], consumeErrors=True))

    @inlineCallbacks
    def _formed(self, nodes):
        """Wait until every node agrees on one leader and three voters."""
        def formed(statuses):
            leaders = {s["leader"] for s in statuses}
            roles = sorted(s["role"] for s in statuses)
            voters = [{m["id"] for m in s["members"] if m["voter"]} for s in statuses]
            ids = {s["node"] for s in statuses}
            if len(leaders) == 1 and roles == ["follower", "follower", "leader"] and all(v == ids for v in voters):
                return statuses
            self._last = statuses
            return None

        self._last = None
        try:
            statuses = yield poll_until(
                "the ring forming one cluster (one leader, three voters on every node)",
                lambda: self._statuses(nodes).addCallback(formed), FORM_SECONDS_MAX, 0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\nlast /admin/cluster answers: {self._last}\n"
                                 + "\n".join(n.describe() for n in nodes)) from None
        self.assertEqual(len({s["term"] for s in statuses}), 1, statuses)
        for s in statuses:
            self.assertEqual(len(s["members"]), 3, s)
        return statuses

    @inlineCallbacks
    def _roles(self, nodes):
        """(leader, followers) among the running C{nodes}, from their own /admin/cluster."""
        statuses = yield self._statuses(nodes)
        leaders = [n for n, s in zip(nodes, statuses) if s["role"] == "leader"]
        self.assertEqual(len(leaders), 1, statuses)
        return leaders[0], [n for n in nodes if n is not leaders[0]]

    @inlineCallbacks
    def api(self, client, url, calls, auth=("carol", PASSWORD)):
        """A JMAP API call without following redirects: (code, body, raw, Location)."""
        response = yield client.post(
            url, json={"using": USING, "methodCalls": calls}, auth=auth, allow_redirects=False,
            timeout=REQUEST_SECONDS)
        raw = yield response.content()
        location = response.headers.getRawHeaders(b"location", [None])[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return response.code, body, raw, location.decode("latin-1") if location else None

    @inlineCallbacks
    def _create_account(self, server):
        _, body, _ = yield self.json_request(
            self.client, "POST", server.url + "/admin/accounts",
            {"name": "carol", "password": PASSWORD, "emails": [ADDRESS]}, headers=admin_headers(), expect=201)
        return body["account"]["id"]

    @inlineCallbacks
    def _mailboxes(self, server, account):
        """C{{name: id}} of the account's mailboxes, read on C{server} (which must answer 200 itself)."""
        code, body, raw, location = yield self.api(
            self.client, server.url + "/jmap/api", [["Mailbox/get", {"accountId": account, "ids": None}, "0"]])
        self.assertEqual(code, 200, f"Mailbox/get on {server.url}: {code} Location={location} {raw[:300]!r}")
        [[_, result, _]] = body["methodResponses"]
        return {m["name"]: m["id"] for m in result["list"]}

    @inlineCallbacks
    def _has_all(self, server, account, expected, what):
        """Wait until C{server} serves every C{{name: id}} of C{expected}."""
        missing = {}

        @inlineCallbacks
        def check():
            found = yield self._mailboxes(server, account)
            missing.clear()
            missing.update({n: i for n, i in expected.items() if found.get(n) != i})
            return not missing

        try:
            yield poll_until(what, check, CATCH_UP_SECONDS_MAX, 0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}; missing on {server.url}: {sorted(missing)[:20]} of {len(expected)}") from None

    @inlineCallbacks
    def _caught_up(self, server, leader, what):
        """Wait until C{server}'s appliedIndex reaches the leader's commitIndex as of now."""
        target = (yield self.status(leader))["commitIndex"]
        last = {}

        @inlineCallbacks
        def check():
            s = yield self.status(server)
            last.update(s)
            return s if s["appliedIndex"] >= target else None

        try:
            return (yield poll_until(what, check, CATCH_UP_SECONDS_MAX, 0.1))
        except AssertionError as e:
            raise AssertionError(f"{e}; leader commitIndex {target}, node said {last}\n{server.describe()}") from None

    def _assert_logs(self, servers):
        for server in servers:
            self.assertCleanLog(server)

    # -- tests -------------------------------------------------------------

    @inlineCallbacks
    def test_ring_routing_lmtp_and_stranger(self):
        """
        A ring of three fresh nodes, each seeded only with the next, forms one
        cluster: every node names the same leader and the three nodes as
        voters.  A JMAP write sent to a follower is answered 302 with the
        leader's jmap-url and the same path and query, and succeeds when sent
        there; a read on a follower is answered there (200) and sees the
        write.  An LMTP delivery to a follower is answered 250 (the follower
        runs it on the leader) and the message is then on every node.  A node
        with the wrong encryption-key, seeded with a member, is refused and
        never becomes a member.
        """
        nodes = yield self._ring(lmtp=True)
        leader, followers = yield self._roles(nodes)
        account = yield self._create_account(followers[0])

        # Push on a follower: an EventSource client there gets the
        # StateChange of the write below, which the leader makes.
        follower = followers[0]
        stream = yield self.client.get(
            followers[1].url + "/jmap/eventsource?types=*&closeafter=state&ping=0",
            auth=("carol", PASSWORD), unbuffered=True, timeout=REQUEST_SECONDS)
        self.assertEqual(stream.code, 200)
        events = stream.content()

        # Writes on a follower: 302 to the leader, same path and query.
        create = [["Mailbox/set", {"accountId": account, "create": {"k": {"name": "redirected"}}}, "0"]]
        code, _, raw, location = yield self.api(self.client, follower.url + "/jmap/api?probe=1&x=%2F", create)
        self.assertEqual((code, location), (302, leader.url + "/jmap/api?probe=1&x=%2F"),
                         f"write on a follower: {raw[:300]!r}")
        code, body, raw, _ = yield self.api(self.client, location, create)
        self.assertEqual(code, 200, f"write resent to the leader: {raw[:300]!r}")
        created = body["methodResponses"][0][1]["created"]["k"]["id"]
        pushed = yield events.addTimeout(10, reactor)
        self.assertIn(b"event: state", pushed)
        self.assertIn(b'"Mailbox"', pushed, pushed[:300])
        # Reads on both followers: served there, and they see the write.
        for f in followers:
            yield self._has_all(f, account, {"redirected": created}, f"read on follower {f.url} seeing the write")

        # LMTP on a follower: 250, and the message on every node.
        yield poll_until("LMTP listening on the follower", lambda: deferToThread(_connects, follower.lmtp_port), 10)
        raw_message = (
            f"From: Sender <sender@example.org>\r\nTo: <{ADDRESS}>\r\nSubject: via a follower\r\n"
            "Message-ID: <follower-lmtp@cluster.example>\r\nDate: Tue, 11 Jun 2024 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello through the leader.\r\n"
        ).encode()
        replies = yield deferToThread(_lmtp_deliver, follower.lmtp_port, raw_message)
        self.assertEqual([code for code, _ in replies], [250, 250, 250], f"LMTP replies on a follower: {replies}")

        @inlineCallbacks
        def delivered(server):
            code, body, raw, _ = yield self.api(self.client, server.url + "/jmap/api", [
                ["Email/query", {"accountId": account}, "q"],
                ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                               "properties": ["messageId", "subject"]}, "g"]])
            self.assertEqual(code, 200, f"Email/query on {server.url}: {raw[:300]!r}")
            got = body["methodResponses"][1][1]["list"]
            return [e["messageId"] for e in got] == [["follower-lmtp@cluster.example"]]

        for server in nodes:
            yield poll_until(f"the LMTP message in Email/query on {server.url}", lambda: delivered(server), 10, 0.1)

        # A stranger with another encryption-key, seeded with a member.
        [port, rpc] = free_ports(2)
        [stranger] = yield self._start_nodes([("stranger", port, rpc, self.rpc_ports[0], 0, KEY + "-wrong", ())])
        yield poll_until(
            "the stranger reporting its proof refused three times",
            lambda: stranger.log_text().count("refused our proof") >= 3, 15, 0.1)
        stranger_id = (yield self.status(stranger))["node"]
        statuses = yield self._statuses(nodes)
        for s in statuses:
            self.assertNotIn(stranger_id, [m["id"] for m in s["members"]], f"the stranger joined: {s}")
        own = yield self.status(stranger)
        self.assertEqual([m["id"] for m in own["members"] if m["voter"]], [], f"the stranger's own view: {own}")
        self.assertIn("refused", nodes[0].log_text())

        # Gossip: every member sees the others alive; the stranger's sealed
        # packets to its seed are rejected and counted, and it is nowhere known.
        @inlineCallbacks
        def gossip_settled():
            statuses = yield self._statuses(nodes)
            alive = all(m.get("gossip") == "alive" for s in statuses for m in s["members"] if m["id"] != s["node"])
            rejected = sum(statuses[0].get("gossipCounters", {}).get(reason, 0)
                           for reason in ("forged", "unknown_key"))
            return alive and rejected > 0

        yield poll_until("every member alive in gossip and the stranger's packets rejected", gossip_settled, 15, 0.2)
        for s in (yield self._statuses(nodes)):
            self.assertNotIn(stranger_id, [k["id"] for k in s.get("known", [])], f"the stranger is known: {s}")
        self._assert_logs(nodes)

    @inlineCallbacks
    def test_replica_and_leader_killed(self):
        """
        A fourth node started with read-replica, seeded with one member,
        becomes a learner: it replicates, serves reads and is never a voter.
        Then the leader is killed with SIGKILL while a client writes one
        Mailbox/set at a time: a new leader (never the replica) takes the
        writes within a bound, and every acknowledged write is on every
        surviving node.  The old leader, restarted on its data directory,
        rejoins as a follower, applies up to the leader's commit index and
        serves every acknowledged write.
        """
        nodes = yield self._ring()
        leader, followers = yield self._roles(nodes)
        account = yield self._create_account(leader)

        # The read replica.
        [port, rpc] = free_ports(2)
        [replica] = yield self._start_nodes(
            [("replica", port, rpc, self.rpc_ports[0], 0, KEY, ("--read-replica=true",))])
        replica_id = (yield self.status(replica))["node"]

        @inlineCallbacks
        def learner():
            s = yield self.status(leader)
            row = [m for m in s["members"] if m["id"] == replica_id]
            return row and not row[0]["voter"] and row[0].get("match", 0) > 0

        yield poll_until("the replica added as a learner and replicating", learner, FORM_SECONDS_MAX, 0.1)
        code, body, raw, _ = yield self.api(
            self.client, leader.url + "/jmap/api",
            [["Mailbox/set", {"accountId": account, "create": {"k": {"name": "before-replica-read"}}}, "0"]])
        self.assertEqual(code, 200, raw[:300])
        first = body["methodResponses"][0][1]["created"]["k"]["id"]
        yield self._has_all(replica, account, {"before-replica-read": first}, "a read on the replica")
        s = yield self.status(replica)
        self.assertNotEqual(s["role"], "leader", s)

        # kill -9 the leader under steady writes.
        writer = _SteadyWriter(self, self.client, [n.url for n in nodes], account)
        writer.start()
        self.addCleanup(lambda: writer.stop() if not writer.stopped else None)
        yield poll_until(f"{WRITES_BEFORE_KILL} writes acknowledged before the kill",
                         lambda: len(writer.acknowledged) >= WRITES_BEFORE_KILL, 20, 0.05)
        old = yield self.status(leader)
        old_term, old_id = old["term"], old["node"]
        killed_at = reactor.seconds()
        leader.signal(signal.SIGKILL)
        yield leader.wait_exit(10)
        survivors = followers
        try:
            yield poll_until("a write acknowledged through a new leader after the kill",
                             lambda: writer.acknowledged_since(killed_at) >= 1, FAILOVER_SECONDS_MAX, 0.02)
        except AssertionError as e:
            raise AssertionError(f"{e}; client failures: {writer.failures[-10:]}\n"
                                 + "\n".join(n.describe() for n in survivors)) from None
        failover = min(answered for sent, answered in writer.acks if sent >= killed_at) - killed_at
        log.msg(f"cluster failover after kill -9 of the leader: {failover:.3f} s")
        yield poll_until(f"{WRITES_AFTER_FAILOVER} more writes through the new leader",
                         lambda: writer.acknowledged_since(killed_at) >= WRITES_AFTER_FAILOVER, 30, 0.05)
        yield writer.stop()
        new_leader, _ = yield self._roles(survivors + [replica])
        self.assertIn(new_leader, survivors, "the read replica became leader")
        new_status = yield self.status(new_leader)
        self.assertGreater(new_status["term"], old_term, new_status)
        row = [m for m in new_status["members"] if m["id"] == replica_id]
        self.assertEqual([m["voter"] for m in row], [False], f"the replica in the new leader's members: {new_status}")
        acknowledged = dict(writer.acknowledged)
        for server in survivors + [replica]:
            yield self._has_all(server, account, acknowledged,
                                f"every acknowledged write ({len(acknowledged)}) on {server.url}")

        @inlineCallbacks
        def gossip_says(state):
            statuses = yield self._statuses(survivors)
            return all(m.get("gossip") == state for st in statuses for m in st["members"] if m["id"] == old_id)

        # Gossip on the survivors convicted the killed node.
        yield poll_until("the killed node dead in gossip on every survivor", lambda: gossip_says("dead"), 15, 0.2)

        # The old leader comes back as a follower and catches up.
        leader.restart()
        yield leader.wait_ready(self.client)
        yield poll_until("the restarted node alive again in gossip", lambda: gossip_says("alive"), 15, 0.2)
        s = yield self._caught_up(leader, new_leader, "the restarted old leader applying up to the commit index")
        self.assertEqual(s["leader"], new_status["node"], s)
        self.assertIn(s["role"], ("follower",), s)
        yield self._has_all(leader, account, acknowledged, "every acknowledged write on the restarted old leader")
        s = yield self.status(replica)
        self.assertNotEqual(s["role"], "leader", s)
        self.assertEqual([m["voter"] for m in s["members"] if m["id"] == replica_id], [False], s)
        self.assertLess(failover, FAILOVER_SECONDS_MAX)
        self._assert_logs(survivors + [replica])
