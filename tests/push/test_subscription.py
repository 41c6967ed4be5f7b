# -*- test-case-name: tests.push.test_subscription -*-
"""
Tests for L{stalwart.push.subscription} and L{stalwart.push.delivery}:
PushSubscription/get and /set (RFC 8620 7.2) on an in-process node whose
POSTs are recorded, with retries driven by its clock.
"""

from __future__ import annotations

import json
from typing import List

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE
from stalwart.push.subscription import parse_utc_date
from tests.push.helpers import PushNode

URL = "https://push.example.net/p/1"


class Recorder:
    """A C{post} that records each POST and answers with the next status."""

    def __init__(self) -> None:
        self.posts: List[tuple] = []
        self.statuses: List[int] = []

    def __call__(self, url, headers, body):
        self.posts.append((url, headers, body))
        return succeed((self.statuses.pop(0) if self.statuses else 201, b""))

    def messages(self) -> List[dict]:
        return [json.loads(body) for url, headers, body in self.posts]


class SubscriptionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = PushNode(self)
        self.delivery = self.live.service.getServiceNamed("push").delivery
        self.recorder = Recorder()
        self.delivery.post = self.recorder

    def set(self, arguments):
        name, args = self.live.call(self.live.account, "PushSubscription/set", arguments)
        return name, args

    def call(self, name, arguments):
        responses = self.live.process(self.live.account, [[name, arguments, "c"]], using=[CORE])["methodResponses"]
        return responses[0][0], responses[0][1]

    def create(self, **extra) -> str:
        name, args = self.call("PushSubscription/set", {"create": {"k": {"deviceClientId": "dev1", "url": URL, **extra}}})
        self.assertEqual(name, "PushSubscription/set", args)
        return args["created"]["k"]["id"]

    def verify(self, subscription_id: str) -> None:
        code = self.recorder.messages()[-1]["verificationCode"]
        name, args = self.call("PushSubscription/set", {"update": {subscription_id: {"verificationCode": code}}})
        self.assertEqual(args["updated"], {subscription_id: None})

    def test_create_sends_verification(self) -> None:
        """Creating pushes a PushVerification with a hard-to-guess code, and nothing else."""
        name, args = self.call("PushSubscription/set", {"create": {"k": {"deviceClientId": "dev1", "url": URL, "types": None}}})
        created = args["created"]["k"]
        self.assertEqual(created["keys"], None)
        self.assertNotIn("accountId", args)
        self.assertNotIn("newState", args)
        [message] = self.recorder.messages()
        self.assertEqual(message["@type"], "PushVerification")
        self.assertEqual(message["pushSubscriptionId"], created["id"])
        self.assertEqual(len(message["verificationCode"]), 32)
        url, headers, body = self.recorder.posts[0]
        self.assertEqual((url, headers[b"content-type"], headers[b"ttl"]), (URL, b"application/json", b"86400"))
        self.live.write_note()
        self.live.advance(5)
        self.assertEqual(len(self.recorder.posts), 1)  # not verified: nothing more

    def test_expires_capped(self) -> None:
        """No expiry, or one too far, becomes now + push-expires-max (RFC 8620 7.2)."""
        name, args = self.call("PushSubscription/set", {"create": {
            "a": {"deviceClientId": "d", "url": URL},
            "b": {"deviceClientId": "d", "url": URL, "expires": "2999-01-01T00:00:00Z"},
            "c": {"deviceClientId": "d", "url": URL, "expires": "2023-11-15T00:00:00.5Z"},
        }})
        latest = self.live.clock.seconds() + self.live.config.push_expires_max / 1000
        for key in "ab":
            self.assertEqual(parse_utc_date(args["created"][key]["expires"]).timestamp(), int(latest))
        self.assertEqual(args["created"]["c"]["expires"], "2023-11-15T00:00:00Z")

    def test_get(self) -> None:
        """get returns the client's own subscriptions without url and keys; asking for them is forbidden."""
        subscription_id = self.create()
        name, args = self.call("PushSubscription/get", {"ids": None})
        [item] = args["list"]
        self.assertEqual(set(item), {"id", "deviceClientId", "verificationCode", "expires", "types"})
        self.assertEqual(item["id"], subscription_id)
        self.assertNotIn("state", args)
        name, args = self.call("PushSubscription/get", {"ids": [subscription_id, "S999"], "properties": ["types"]})
        self.assertEqual(args["list"], [{"id": subscription_id, "types": None}])
        self.assertEqual(args["notFound"], ["S999"])
        for private in ("url", "keys"):
            name, args = self.call("PushSubscription/get", {"properties": [private]})
            self.assertEqual((name, args["type"]), ("error", "forbidden"))

    def test_bad_creates(self) -> None:
        """http URLs, bad keys, a preset code or server-set properties are invalidProperties."""
        name, args = self.call("PushSubscription/set", {"create": {
            "http": {"deviceClientId": "d", "url": "http://push.example.net/"},
            "keys": {"deviceClientId": "d", "url": URL, "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            "code": {"deviceClientId": "d", "url": URL, "verificationCode": "x"},
            "id": {"deviceClientId": "d", "url": URL, "id": "S1"},
        }})
        self.assertEqual({k: v["type"] for k, v in args["notCreated"].items()},
                         dict.fromkeys(["http", "keys", "code", "id"], "invalidProperties"))
        self.assertEqual(self.recorder.posts, [])

    def test_wrong_code_and_immutable(self) -> None:
        """A wrong verification code or a changed url is refused."""
        subscription_id = self.create()
        name, args = self.call("PushSubscription/set", {"update": {
            subscription_id: {"verificationCode": "0" * 32}}})
        self.assertEqual(args["notUpdated"][subscription_id]["properties"], ["verificationCode"])
        name, args = self.call("PushSubscription/set", {"update": {subscription_id: {"url": URL + "x"}}})
        self.assertEqual(args["notUpdated"][subscription_id]["type"], "invalidProperties")

    def test_state_changes_after_verification(self) -> None:
        """Once verified, each change is POSTed as a StateChange within one throttle period."""
        subscription_id = self.create()
        self.verify(subscription_id)
        self.live.write_note()
        self.live.advance(0)
        state = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(self.recorder.messages()[-1], {"@type": "StateChange", "changed": {self.live.account: {"Note": state}}})

    def test_types_filter(self) -> None:
        """A subscription with types gets changes of those types only."""
        subscription_id = self.create(types=["Mailbox"])
        self.verify(subscription_id)
        count = len(self.recorder.posts)
        self.live.write_note()
        self.live.advance(5)
        self.assertEqual(len(self.recorder.posts), count)

    def test_retries(self) -> None:
        """A failed POST is retried after push-retry-interval, at most push-attempts-max times."""
        self.verify(self.create())
        count = len(self.recorder.posts)
        self.recorder.statuses = [503] * 10
        self.live.write_note()
        self.live.advance(0)
        retry = self.live.config.push_retry_interval / 1000
        for _ in range(5):
            self.live.advance(retry)
        self.assertEqual(len(self.recorder.posts) - count, self.live.config.push_attempts_max)

    def test_429_holds(self) -> None:
        """A 429 with Retry-After holds the next push that long."""
        self.verify(self.create())
        count = len(self.recorder.posts)
        statuses = [429]

        def post(url, headers, body):
            self.recorder.posts.append((url, headers, body))
            return succeed((statuses.pop(0), b"120") if statuses else (201, b""))

        self.delivery.post = post
        self.live.write_note()
        self.live.advance(0)
        self.live.advance(119)
        self.assertEqual(len(self.recorder.posts) - count, 1)
        self.live.advance(1)
        self.assertEqual(len(self.recorder.posts) - count, 2)

    def test_destroy(self) -> None:
        """A destroyed subscription gets nothing more."""
        subscription_id = self.create()
        self.verify(subscription_id)
        name, args = self.call("PushSubscription/set", {"destroy": [subscription_id, "S77"]})
        self.assertEqual(args["destroyed"], [subscription_id])
        self.assertEqual(args["notDestroyed"]["S77"]["type"], "notFound")
        count = len(self.recorder.posts)
        self.live.write_note()
        self.live.advance(5)
        self.assertEqual(len(self.recorder.posts), count)
