# -*- test-case-name: tests.admin.test_api -*-
"""
Tests for L{stalwart.admin.api}: the admin HTTP API under /admin, on a
whole node run in-process (L{tests.jmap.harness}).  Every change goes
through the Raft log like any other write.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.admin.api import cluster_status
from stalwart.cluster.raft.progress import PeerProgress
from tests.jmap.harness import LiveNode, basic


class AuthorisationTests(SynchronousTestCase):
    def test_disabled_without_secret(self):
        """Without an admin-secret configured the API answers 403 to everyone."""
        live = LiveNode(self, admin_secret=None)
        reply = live.admin("GET", "/accounts", secret="anything")
        self.assertEqual(reply.status, 403)
        self.assertTrue(reply.header("content-type").startswith("application/problem+json"))

    def test_wrong_secret(self):
        """A wrong or missing secret is 401 with a Bearer challenge (RFC 6750 3)."""
        live = LiveNode(self)
        for secret in ("wrong", None):
            reply = live.admin("GET", "/accounts", secret=secret)
            self.assertEqual(reply.status, 401)
            self.assertIn("Bearer", reply.header("www-authenticate"))


class AccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = LiveNode(self)

    def accounts(self) -> list:
        reply = self.live.admin("GET", "/accounts")
        self.assertEqual(reply.status, 200)
        return reply.json()["accounts"]

    def test_create_and_list(self):
        """
        POST /accounts creates an account (201, its JSON with id, name,
        emails, quota, usedBytes); addresses are lower-cased; a name that is an address is also an
        address; GET /accounts lists them by name.
        """
        reply = self.live.admin("POST", "/accounts", {"name": "bob@example.com", "password": "pw", "quota": 1000,
                                                      "emails": ["Bob.Smith@Example.COM"]})
        self.assertEqual(reply.status, 201)
        bob = reply.json()["account"]
        self.assertEqual(bob["name"], "bob@example.com")
        self.assertEqual(sorted(bob["emails"]), ["bob.smith@example.com", "bob@example.com"])
        self.assertEqual((bob["quota"], bob["usedBytes"]), (1000, 0))
        self.live.create_account("alice")
        self.assertEqual([a["name"] for a in self.accounts()], ["alice", "bob@example.com"])
        self.assertEqual(self.accounts()[1], bob)

    def test_duplicate(self):
        """Creating an account whose name exists is 409, and nothing changes."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts", {"name": "alice", "password": "other"})
        self.assertEqual(reply.status, 409)
        self.assertEqual(len(self.accounts()), 1)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "other")).status, 401)

    def test_address_taken(self):
        """
        An address that belongs to another account is 409, on create and
        on add-email.
        """
        self.live.create_account("alice", emails=["a@example.com"])
        self.live.create_account("bob")
        reply = self.live.admin("POST", "/accounts", {"name": "carol", "password": "pw", "emails": ["A@example.com"]})
        self.assertEqual(reply.status, 409)
        reply = self.live.admin("POST", "/accounts/bob/emails", {"email": "a@example.com"})
        self.assertEqual(reply.status, 409)
        self.assertEqual([a["name"] for a in self.accounts()], ["alice", "bob"])

    def test_add_and_remove_email(self):
        """Addresses are added and removed; removing one the account lacks is 404."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts/alice/emails", {"email": "alice@example.com"})
        self.assertEqual((reply.status, reply.json()["account"]["emails"]), (200, ["alice@example.com"]))
        reply = self.live.admin("DELETE", "/accounts/alice/emails/alice@example.com")
        self.assertEqual((reply.status, reply.json()["account"]["emails"]), (200, []))
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice/emails/alice@example.com").status, 404)
        self.assertEqual(self.live.admin("POST", "/accounts/alice/emails", {"email": "not an address"}).status, 400)

    def test_delete(self):
        """DELETE removes the account (204); a second DELETE is 404, and it cannot log in."""
        self.live.create_account("alice", password="pw")
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice").status, 204)
        self.assertEqual(self.accounts(), [])
        self.assertEqual(self.live.admin("DELETE", "/accounts/alice").status, 404)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "pw")).status, 401)

    def test_password(self):
        """PUT .../password sets a new password (204); the old one stops working."""
        self.live.create_account("alice", password="old")
        reply = self.live.admin("PUT", "/accounts/alice/password", {"password": "new"})
        self.assertEqual(reply.status, 204)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "old")).status, 401)
        self.assertEqual(self.live.request("GET", "/jmap/session", authorization=basic("alice", "new")).status, 200)
        self.assertEqual(self.live.admin("PUT", "/accounts/nobody/password", {"password": "x"}).status, 404)
        self.assertEqual(self.live.admin("PUT", "/accounts/alice/password", {"password": ""}).status, 400)

    def test_token(self):
        """POST .../tokens issues a bearer token (201) for the account; unknown account is 404."""
        self.live.create_account("alice")
        reply = self.live.admin("POST", "/accounts/alice/tokens")
        self.assertEqual(reply.status, 201)
        token = reply.json()["token"]
        session = self.live.request("GET", "/jmap/session", authorization=b"Bearer " + token.encode())
        self.assertEqual((session.status, session.json()["username"]), (200, "alice"))
        self.assertEqual(self.live.admin("POST", "/accounts/nobody/tokens").status, 404)

    def test_bad_json(self):
        """A body that is not a JSON object is 400."""
        for body in (b"{nope", b"[1, 2]"):
            reply = self.live.admin("POST", "/accounts", body)
            self.assertEqual(reply.status, 400, body)
            self.assertTrue(reply.header("content-type").startswith("application/problem+json"))
        self.assertEqual(self.accounts(), [])

    def test_bad_values(self):
        """A missing password or an unusable name is 400."""
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "alice"}).status, 400)
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "has space", "password": "pw"}).status, 400)
        self.assertEqual(self.live.admin("POST", "/accounts", {"name": "q", "password": "pw", "quota": -1}).status, 400)

    def test_unknown_operation(self):
        """An operation the API does not have is 404."""
        self.assertEqual(self.live.admin("PATCH", "/accounts").status, 404)
        self.assertEqual(self.live.admin("GET", "/nothing").status, 404)


class ClusterStatusTests(SynchronousTestCase):
    """
    GET /admin/cluster: this node's view of the Raft group.
    """

    def test_single_node(self):
        """
        A single node is the leader and the only member, a voter with lag
        0; its last, commit and applied indexes follow the log.
        """
        live = LiveNode(self)
        live.create_account("alice")
        reply = live.admin("GET", "/cluster")
        self.assertEqual(reply.status, 200)
        status = reply.json()
        me = live.node.raft.driver.core.id
        self.assertEqual((status["node"], status["role"], status["leader"]), (me, "leader", me))
        self.assertGreaterEqual(status["term"], 1)
        self.assertGreaterEqual(status["lastIndex"], 2)  # the configuration, the no-op, the account
        self.assertEqual(status["commitIndex"], status["lastIndex"])
        self.assertEqual(status["appliedIndex"], status["lastIndex"])
        self.assertEqual(status["members"], [{"id": me, "voter": True, "role": "leader", "lag": 0}])
        before = status["lastIndex"]
        live.create_account("bob")
        self.assertEqual(live.admin("GET", "/cluster").json()["appliedIndex"], before + 1)

    def test_authorisation(self):
        """The admin secret guards it like every admin route: 403 disabled, 401 wrong."""
        self.assertEqual(LiveNode(self, admin_secret=None).admin("GET", "/cluster", secret="x").status, 403)
        live = LiveNode(self)
        for secret in ("wrong", None):
            self.assertEqual(live.admin("GET", "/cluster", secret=secret).status, 401)

    def test_other_methods(self):
        """Only GET: anything else is 404."""
        self.assertEqual(LiveNode(self).admin("POST", "/cluster", {}).status, 404)


class _Log:
    def __init__(self, last_index, committed):
        self.last_index, self.committed = last_index, committed


class _Core:
    def __init__(self, role, leader, progress, voters=("n1", "n2", "n3"), learners=("r1",)):
        self.id, self.role, self.term, self.leader = "n1", role, 7, leader
        self.log = _Log(120, 118)
        self.voters, self.learners = frozenset(voters), frozenset(learners)
        self._progress = progress

    def progress(self):
        return self._progress


class _Driver:
    def __init__(self, core):
        self.core, self.applied = core, 117


class ClusterStatusViewTests(SynchronousTestCase):
    """
    L{cluster_status} on several members, with the core's interface faked.
    """

    def test_leader(self):
        """
        On the leader each peer carries its replication progress and lag =
        lastIndex - match; a learner is not a voter.
        """
        progress = {
            "n2": PeerProgress(match=120, next=121, state="replicate", recent_active=True, learner=False),
            "n3": PeerProgress(match=100, next=101, state="probe", recent_active=False, learner=False),
            "r1": PeerProgress(match=90, next=111, state="replicate", recent_active=True, learner=True),
        }
        status = cluster_status(_Driver(_Core("leader", "n1", progress)))
        self.assertEqual(
            {k: v for k, v in status.items() if k != "members"},
            {"node": "n1", "role": "leader", "term": 7, "leader": "n1",
             "lastIndex": 120, "commitIndex": 118, "appliedIndex": 117},
        )
        self.assertEqual(status["members"], [
            {"id": "n1", "voter": True, "role": "leader", "lag": 0},
            {"id": "n2", "voter": True, "role": "voter", "match": 120, "next": 121,
             "state": "replicate", "recentActive": True, "lag": 0},
            {"id": "n3", "voter": True, "role": "voter", "match": 100, "next": 101,
             "state": "probe", "recentActive": False, "lag": 20},
            {"id": "r1", "voter": False, "role": "learner", "match": 90, "next": 111,
             "state": "replicate", "recentActive": True, "lag": 30},
        ])

    def test_follower(self):
        """A follower knows its peers' membership but not their progress: lag is null."""
        status = cluster_status(_Driver(_Core("follower", "n2", {})))
        self.assertEqual((status["role"], status["leader"]), ("follower", "n2"))
        self.assertEqual(status["members"], [
            {"id": "n1", "voter": True, "role": "follower", "lag": None},
            {"id": "n2", "voter": True, "role": "voter", "lag": None},
            {"id": "n3", "voter": True, "role": "voter", "lag": None},
            {"id": "r1", "voter": False, "role": "learner", "lag": None},
        ])

    def test_read_replica(self):
        """A read replica is a learner, not a voter, whatever its role."""
        core = _Core("follower", None, {}, voters=("n2",), learners=("n1",))
        status = cluster_status(_Driver(core))
        self.assertEqual(status["leader"], None)
        self.assertEqual(status["members"][0], {"id": "n1", "voter": False, "role": "follower", "lag": None})

    def test_roster_fields(self):
        """A cluster node adds each member's addresses from its roster, and lists known non-members."""
        from stalwart.cluster.roster import NodeRecord, Roster

        roster = Roster(NodeRecord("n2", ("10.0.0.2", 7911), "https://two"), now=0)
        roster.merge([NodeRecord("n1", ("10.0.0.1", 7911), "https://one", version=1),
                      NodeRecord("x9", ("10.0.0.9", 7911), "https://nine", cluster_id="x9", fresh=False, version=1)],
                     now=0)
        status = cluster_status(_Driver(_Core("follower", "n2", {})), roster)
        by_id = {m["id"]: m for m in status["members"]}
        self.assertEqual((by_id["n2"]["rpcAddress"], by_id["n2"]["jmapUrl"]), ("10.0.0.2:7911", "https://two"))
        self.assertEqual(by_id["n1"]["jmapUrl"], "https://one")
        self.assertEqual([(k["id"], k["clusterId"]) for k in status["known"]], [("x9", "x9")])

    def test_gossip_fields(self):
        """With gossip, each other node's status and phi, and the packet counters."""
        from stalwart.cluster.roster import NodeRecord, Roster

        roster = Roster(NodeRecord("n1", ("10.0.0.1", 7911), "https://one"), now=0)
        status = cluster_status(_Driver(_Core("follower", "n2", {})), roster, {"n2": ("alive", 0.4321)},
                                {"forged": 3})
        by_id = {m["id"]: m for m in status["members"]}
        self.assertEqual((by_id["n2"]["gossip"], by_id["n2"]["phi"]), ("alive", 0.43))
        self.assertEqual((by_id["n3"]["gossip"], by_id["n3"]["phi"]), (None, None))
        self.assertNotIn("gossip", by_id["n1"])
        self.assertEqual(status["gossipCounters"], {"forged": 3})
