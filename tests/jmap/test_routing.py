# -*- test-case-name: tests.jmap.test_routing -*-
"""
Tests for L{stalwart.jmap.routing}: which requests write, where a request
is served, and the API and upload endpoints acting on the decision (on a
node told per instance that it is not the leader).
"""

from __future__ import annotations

import json

import attrs
import treq
from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE
from stalwart.jmap.routing import Redirect, Serve, Unavailable, is_write_request, route
from tests.jmap.harness import JMAP_URL, LiveNode, Reply, basic
from tests.jmap.notes import NOTES

LEADER = "https://leader.example.com:8443"
PASSWORD = "correct horse"


class IsWriteRequestTests(SynchronousTestCase):
    def test_table(self):
        """A request writes if any method ends with /set, /copy or /import."""
        table = [
            ([], False),
            (["Core/echo"], False),
            (["Mailbox/get", "Email/query", "Email/changes", "Email/queryChanges"], False),
            (["Email/parse", "SearchSnippet/get", "Blob/get", "Blob/lookup", "Thread/get"], False),
            (["Email/set"], True),
            (["Email/import"], True),
            (["Email/copy"], True),
            (["Blob/copy"], True),
            (["EmailSubmission/set"], True),
            (["PushSubscription/set"], True),
            (["Identity/set"], True),
            (["VacationResponse/set"], True),
            (["Mailbox/get", "Mailbox/set", "Mailbox/get"], True),
            (["Email/setting", "Email/settle", "Email/copying"], False),
        ]
        for names, expected in table:
            self.assertEqual(is_write_request(names), expected, names)

    def test_any_sequence(self):
        """A tuple or a generator-built list works as well as a list."""
        self.assertTrue(is_write_request(("Core/echo", "Email/set")))
        self.assertFalse(is_write_request(tuple(n for n in ("Core/echo",))))


def _route(**overrides):
    arguments = dict(
        write=False, is_leader=True, leader_url=LEADER, caught_up=True,
        path_and_query=b"/jmap/api?x=1&y=%20z",
    )
    arguments.update(overrides)
    return route(**arguments)


class RouteTests(SynchronousTestCase):
    def test_table(self):
        """Each combination of kind, role, known leader and lag."""
        here = Serve()
        to_leader = Redirect(302, LEADER + "/jmap/api?x=1&y=%20z")
        wait = Unavailable(1)
        table = [
            # write, is_leader, leader_url, caught_up -> decision
            (True, True, LEADER, True, here),
            (True, True, LEADER, False, here),
            (True, True, None, True, here),
            (False, True, None, False, here),
            (True, False, LEADER, True, to_leader),
            (True, False, LEADER, False, to_leader),
            (True, False, None, True, wait),
            (False, False, LEADER, True, here),
            (False, False, None, True, here),
            (False, False, LEADER, False, to_leader),
            (False, False, None, False, wait),
        ]
        for write, is_leader, leader_url, caught_up, expected in table:
            self.assertEqual(
                _route(write=write, is_leader=is_leader, leader_url=leader_url, caught_up=caught_up),
                expected, (write, is_leader, leader_url, caught_up),
            )

    def test_redirect_statuses(self):
        """302, 307 and 308 are used as given; anything else is refused."""
        for status in (302, 307, 308):
            self.assertEqual(_route(write=True, is_leader=False, redirect_status=status).status, status)
        for status in (301, 303, 200, 503):
            self.assertRaises(ValueError, _route, redirect_status=status)

    def test_path_and_query_kept(self):
        """The location is the leader's URL (one slash) plus the path and query as received."""
        for leader, uri, location in [
            (LEADER, b"/jmap/upload/a1/", LEADER + "/jmap/upload/a1/"),
            (LEADER + "/", b"/jmap/api", LEADER + "/jmap/api"),
            ("https://l.example/base", b"/jmap/api?q=%C3%A9&r", "https://l.example/base/jmap/api?q=%C3%A9&r"),
        ]:
            decision = _route(write=True, is_leader=False, leader_url=leader, path_and_query=uri)
            self.assertEqual(decision, Redirect(302, location))

    def test_empty_leader_url_is_no_leader(self):
        self.assertEqual(_route(write=True, is_leader=False, leader_url=""), Unavailable(1))

    def test_frozen(self):
        """Decisions are immutable values."""
        for decision in (Redirect(302, LEADER), Unavailable(1)):
            self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, decision, "status", 0)


class EndpointRoutingTests(SynchronousTestCase):
    """The API and upload endpoints on a node that is told it is not the leader."""

    def setUp(self) -> None:
        self.live = LiveNode(self)
        self.alice = self.live.create_account("alice@example.com", PASSWORD)
        self.auth = basic("alice@example.com", PASSWORD)

    def follow(self, leader_url=LEADER) -> None:
        """Make this node (this instance only) a follower of C{leader_url}, or of none."""
        self.live.node.routing_state = lambda: (False, leader_url)

    def post(self, path, body, content_type):
        """POST to this node, not following redirects (treq would); the L{Reply}."""
        headers = {"Content-Type": content_type, "Authorization": self.auth}
        d = self.live.http.request("POST", JMAP_URL + path, data=body, headers=headers, allow_redirects=False)
        response = self.successResultOf(self.live._flushed(d))
        return Reply(response.code, response.headers, self.successResultOf(self.live._flushed(treq.content(response))))

    def api(self, calls, path="/jmap/api"):
        body = json.dumps({"using": [CORE, NOTES], "methodCalls": calls}).encode()
        return self.post(path, body, "application/json")

    def upload(self):
        path = f"/jmap/upload/{self.alice['id']}/"
        return path, self.post(path, b"hello", "text/plain")

    def create_note(self):
        return [["Note/set", {"accountId": self.alice["id"], "create": {"n": {"title": "x"}}}, "c0"]]

    def test_single_node_serves_writes(self):
        """A single node is its own leader at its jmap-url: nothing changes."""
        self.assertEqual(self.live.node.routing_state(), (True, self.live.config.jmap_url))
        reply = self.api(self.create_note())
        self.assertEqual(reply.status, 200, reply.body)
        self.assertIn("created", reply.json()["methodResponses"][0][1])

    def test_write_redirected(self):
        """A write on a follower: 302 to the leader, same path and query, empty body, nothing written."""
        self.follow()
        reply = self.api(self.create_note(), path="/jmap/api?trace=1")
        self.assertEqual(reply.status, 302, reply.body)
        self.assertEqual(reply.header("location"), LEADER + "/jmap/api?trace=1")
        self.assertEqual(reply.body, b"")
        del self.live.node.routing_state  # the class's again: leader
        get = self.api([["Note/get", {"accountId": self.alice["id"]}, "g"]])
        self.assertEqual(get.json()["methodResponses"][0][1]["list"], [])

    def test_redirect_status_configurable(self):
        """The node's redirect status (307 here) is the one sent."""
        self.follow()
        self.live.node.redirect_status = 307
        reply = self.api(self.create_note())
        self.assertEqual((reply.status, reply.header("location")), (307, LEADER + "/jmap/api"))

    def test_read_served(self):
        """A read-only request on a follower is served there."""
        self.follow()
        reply = self.api([
            ["Core/echo", {"hello": True}, "e"],
            ["Note/get", {"accountId": self.alice["id"]}, "g"],
        ])
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual([r[0] for r in reply.json()["methodResponses"]], ["Core/echo", "Note/get"])

    def test_read_served_without_leader(self):
        """A read needs no leader."""
        self.follow(None)
        reply = self.api([["Core/echo", {}, "e"]])
        self.assertEqual(reply.status, 200, reply.body)

    def test_upload_redirected(self):
        """An upload on a follower: 302 to the leader's upload URL, before its body is read."""
        self.follow()
        path, reply = self.upload()
        self.assertEqual(reply.status, 302, reply.body)
        self.assertEqual(reply.header("location"), LEADER + path)
        self.assertEqual(reply.body, b"")

    def test_no_leader_write(self):
        """A write with no leader known: 503 problem+json with Retry-After."""
        self.follow(None)
        reply = self.api(self.create_note())
        self.assertEqual(reply.status, 503, reply.body)
        self.assertTrue(reply.header("content-type").startswith("application/problem+json"))
        self.assertEqual(reply.header("retry-after"), "1")
        self.assertEqual(reply.json()["status"], 503)

    def test_no_leader_upload(self):
        self.follow(None)
        path, reply = self.upload()
        self.assertEqual((reply.status, reply.header("retry-after")), (503, "1"))

    def test_concurrency_slot_released(self):
        """Redirected requests do not hold a maxConcurrentRequests slot."""
        self.follow()
        for _ in range(self.live.config.max_concurrent_requests + 2):
            self.assertEqual(self.api(self.create_note()).status, 302)
