# -*- test-case-name: tests.push.test_delivery -*-
"""
PushSubscription delivery over real sockets: a push endpoint started by
the test on 127.0.0.1:0 (HTTPS, with a certificate made in the test)
receives the PushVerification and then StateChanges from an in-process
node, in plain JSON and encrypted (RFC 8291, decrypted by the test).
"""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import Site

from stalwart.jmap.capabilities import CORE
from stalwart.push.delivery import agent_post
from tests.integration.test_https import self_signed
from tests.push.helpers import PushNode
from tests.push.webpush_decrypt import UserAgentKeys


class PushEndpoint(Resource):
    """Records POSTs; L{next} fires with the next one's (headers, body)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.received = []
        self._waiting = []

    def render_POST(self, request):
        item = ({k.lower(): v[0] for k, v in request.requestHeaders.getAllRawHeaders()}, request.content.read())
        if self._waiting:
            self._waiting.pop(0).callback(item)
        else:
            self.received.append(item)
        request.setResponseCode(201)
        request.setHeader(b"connection", b"close")
        return b""

    def next(self) -> Deferred:
        if self.received:
            d = Deferred()
            d.callback(self.received.pop(0))
            return d
        d = Deferred()
        self._waiting.append(d)
        return d


class _Site(Site):
    """A Site that can close its connections at the end of a test."""

    def __init__(self, resource) -> None:
        super().__init__(resource)
        self.lost = []

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        done = Deferred()
        self.lost.append((channel, done))
        lost = channel.connectionLost

        def connection_lost(reason):
            lost(reason)
            done.callback(None)

        channel.connectionLost = connection_lost
        return channel

    def close_all(self):
        from twisted.internet.defer import gatherResults

        # Every response said "Connection: close": wait for the closes.
        return gatherResults([done for _, done in self.lost])


class DeliveryTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        cert, key = self_signed()
        self.endpoint = PushEndpoint()
        site = _Site(self.endpoint)
        port = reactor.listenSSL(0, site, PrivateCertificate.loadPEM(cert + key).options(),
                                 interface="127.0.0.1")
        self.addCleanup(site.close_all)
        self.addCleanup(port.stopListening)
        self.url = f"https://127.0.0.1:{port.getHost().port}/push"
        self.live = PushNode(self)
        agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(cert)))
        self.live.service.getServiceNamed("push").delivery.post = agent_post(agent, reactor, 10)

    def call(self, name, arguments):
        responses = self.live.process(self.live.account, [[name, arguments, "c"]], using=[CORE])["methodResponses"]
        return responses[0][1]

    @inlineCallbacks
    def subscribe_and_receive(self, keys=None, open_body=lambda body: body):
        created = self.call("PushSubscription/set", {"create": {"k": {
            "deviceClientId": "device", "url": self.url, "keys": keys}}})["created"]["k"]
        headers, body = yield self.endpoint.next()
        verification = json.loads(open_body(body))
        self.assertEqual(verification["@type"], "PushVerification")
        self.assertEqual(verification["pushSubscriptionId"], created["id"])
        self.assertIn(b"ttl", headers)
        updated = self.call("PushSubscription/set", {"update": {created["id"]: {
            "verificationCode": verification["verificationCode"]}}})
        self.assertEqual(updated["updated"], {created["id"]: None})
        self.live.write_note()
        self.live.advance(0)
        headers, body = yield self.endpoint.next()
        state = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(json.loads(open_body(body)),
                         {"@type": "StateChange", "changed": {self.live.account: {"Note": state}}})
        return headers

    @inlineCallbacks
    def test_plain(self) -> None:
        """Without keys: JSON bodies, application/json."""
        headers = yield self.subscribe_and_receive()
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertNotIn(b"content-encoding", headers)

    @inlineCallbacks
    def test_encrypted(self) -> None:
        """With keys: aes128gcm bodies that the user agent decrypts (RFC 8291)."""
        ua = UserAgentKeys.generate()
        headers = yield self.subscribe_and_receive(ua.keys(), ua.decrypt)
        self.assertEqual(headers[b"content-encoding"], b"aes128gcm")
