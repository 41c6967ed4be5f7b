# -*- test-case-name: tests.push.test_websocket -*-
"""
Tests for L{stalwart.push.websocket}: JMAP over WebSocket (RFC 8887) on an
in-process node, with a wsproto client over an in-memory connection
(L{twisted.test.iosim}) to the node's real HTTP site.
"""

from __future__ import annotations

import json
from typing import List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, RejectConnection, Request, TextMessage

from stalwart.jmap.capabilities import CORE
from stalwart.push.websocket import WEBSOCKET, parse_message, websocket_capability, MessageError
from tests.jmap.harness import basic
from tests.jmap.notes import NOTES
from tests.push.helpers import USER, PushNode


class WsClient(Protocol):
    """A WebSocket client on wsproto: records what the server sends."""

    def __init__(self, authorization: Optional[bytes], subprotocols=("jmap",), answer_pings: bool = True) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.authorization = authorization
        self.subprotocols = list(subprotocols)
        self.answer_pings = answer_pings
        self.accepted: Optional[AcceptConnection] = None
        self.rejected: Optional[int] = None
        self.closed: Optional[int] = None
        self.pings = 0
        self.messages: List[dict] = []
        self._text = ""

    def connectionMade(self) -> None:
        headers = [(b"authorization", self.authorization)] if self.authorization else []
        self.transport.write(self.ws.send(Request(
            host="jmap.example.com", target="/jmap/ws", subprotocols=self.subprotocols, extra_headers=headers)))

    def dataReceived(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = event
            elif isinstance(event, RejectConnection):
                self.rejected = event.status_code
            elif isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self.messages.append(json.loads(self._text))
                    self._text = ""
            elif isinstance(event, Ping):
                self.pings += 1
                if self.answer_pings:
                    self.transport.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = event.code

    def send(self, message) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.transport.write(self.ws.send(TextMessage(text)))


class ParseTests(SynchronousTestCase):
    def parse(self, text):
        return parse_message(text, {CORE}, 16)

    def test_request(self) -> None:
        """A Request with an id (RFC 8887 4.3.1)."""
        message = self.parse(json.dumps({"@type": "Request", "id": "R1", "using": [CORE], "methodCalls": []}))
        self.assertEqual(message.id, "R1")
        self.assertEqual(message.request.using, (CORE,))

    def test_errors(self) -> None:
        """Malformed messages are request errors, with the request id when known."""
        cases = [
            ("{", "notJSON", None),
            ("[]", "notRequest", None),
            ('{"@type": "Nope"}', "notRequest", None),
            ('{"@type": "Request", "id": "R2", "using": ["urn:x"], "methodCalls": []}', "unknownCapability", "R2"),
            ('{"@type": "Request", "id": 5, "using": [], "methodCalls": []}', "notRequest", None),
            ('{"@type": "WebSocketPushEnable", "dataTypes": "Email"}', "notRequest", None),
        ]
        for text, kind, request_id in cases:
            error = self.assertRaises(MessageError, self.parse, text)
            self.assertEqual(error.error.type, "urn:ietf:params:jmap:error:" + kind, text)
            self.assertEqual(error.request_id, request_id)

    def test_capability(self) -> None:
        """The capability's URL is wss for an https JMAP URL."""
        self.assertEqual(websocket_capability("https://mail.example.com")["url"], "wss://mail.example.com/jmap/ws")
        self.assertEqual(websocket_capability("http://127.0.0.1:8080")["url"], "ws://127.0.0.1:8080/jmap/ws")


class WebSocketTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = PushNode(self)
        self.site = self.live.service.getServiceNamed("jmap").site

    def connect(self, authorization=None, **kwargs) -> tuple:
        client = WsClient(self.live.auth if authorization is None else authorization, **kwargs)
        server = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        server.callLater = self.live.clock.callLater
        pump = connect(server, FakeTransport(server, isServer=True), client, FakeTransport(client, isServer=False))
        pump.flush()
        return client, pump

    def advance(self, pump, seconds: float) -> None:
        self.live.clock.advance(seconds)
        pump.flush()

    def test_session_capability(self) -> None:
        """The session announces the WebSocket URL, not in accountCapabilities."""
        session = self.live.request("GET", "/jmap/session", authorization=self.live.auth).json()
        self.assertEqual(session["capabilities"][WEBSOCKET], {"url": "wss://jmap.example.com/jmap/ws", "supportsPush": True})
        self.assertNotIn(WEBSOCKET, session["accounts"][self.live.account]["accountCapabilities"])

    def test_handshake(self) -> None:
        """The server selects subprotocol jmap (RFC 8887 4.2)."""
        client, pump = self.connect()
        self.assertIsNotNone(client.accepted)
        self.assertEqual(client.accepted.subprotocol, "jmap")

    def test_refused(self) -> None:
        """Bad credentials get 401 and no upgrade; no jmap subprotocol gets 400."""
        client, pump = self.connect(basic(USER, "wrong"))
        self.assertEqual(client.rejected, 401)
        client, pump = self.connect(subprotocols=["chat"])
        self.assertEqual(client.rejected, 400)

    def test_request_with_back_reference(self) -> None:
        """A Request runs in the dispatcher: back-references work; the Response carries requestId."""
        client, pump = self.connect()
        client.send({
            "@type": "Request", "id": "R1", "using": [CORE, NOTES],
            "methodCalls": [
                ["Note/set", {"accountId": self.live.account, "create": {"a": {"title": "one"}}}, "0"],
                ["Note/query", {"accountId": self.live.account}, "1"],
                ["Note/get", {"accountId": self.live.account, "#ids": {
                    "resultOf": "1", "name": "Note/query", "path": "/ids"}, "properties": ["title"]}, "2"],
            ],
        })
        pump.flush()
        [response] = client.messages
        self.assertEqual(response["@type"], "Response", response)
        self.assertEqual(response["requestId"], "R1")
        self.assertEqual(response["methodResponses"][2][0], "Note/get", response)
        self.assertEqual([n["title"] for n in response["methodResponses"][2][1]["list"]], ["one"])
        self.assertIn("sessionState", response)

    def test_malformed(self) -> None:
        """Malformed messages get RequestError; the connection and other clients carry on."""
        client, pump = self.connect()
        other, other_pump = self.connect()
        client.send("this is not JSON")
        client.send({"@type": "Request", "id": "R9", "using": ["urn:nope"], "methodCalls": []})
        client.transport.write(client.ws.send(__import__("wsproto").events.BytesMessage(b"\x00")))
        pump.flush()
        self.assertEqual([m["@type"] for m in client.messages], ["RequestError"] * 3)
        self.assertEqual(client.messages[0]["type"], "urn:ietf:params:jmap:error:notJSON")
        self.assertEqual(client.messages[0]["status"], 400)
        self.assertEqual(client.messages[1]["type"], "urn:ietf:params:jmap:error:unknownCapability")
        self.assertEqual(client.messages[1]["requestId"], "R9")
        self.assertIsNone(client.closed)
        client.send({"@type": "Request", "id": "R10", "using": [CORE], "methodCalls": [["Core/echo", {"x": 1}, "e"]]})
        other.send({"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {"y": 2}, "e"]]})
        pump.flush()
        other_pump.flush()
        self.assertEqual(client.messages[-1]["methodResponses"], [["Core/echo", {"x": 1}, "e"]])
        self.assertEqual(other.messages[-1]["methodResponses"], [["Core/echo", {"y": 2}, "e"]])
        self.assertNotIn("requestId", other.messages[-1])

    def test_push(self) -> None:
        """
        After WebSocketPushEnable, a write produces a StateChange with
        pushState within one throttle period; after Disable, nothing.
        """
        client, pump = self.connect()
        client.send({"@type": "WebSocketPushEnable", "dataTypes": ["Note"]})
        pump.flush()
        self.live.write_note()
        self.advance(pump, 0)
        state = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(client.messages, [{
            "@type": "StateChange", "changed": {self.live.account: {"Note": state}}, "pushState": state}])
        client.send({"@type": "WebSocketPushDisable"})
        pump.flush()
        self.live.write_note()
        self.advance(pump, 5)
        self.assertEqual(len(client.messages), 1)

    def test_push_data_types(self) -> None:
        """Only the dataTypes asked for are pushed."""
        client, pump = self.connect()
        client.send({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]})
        pump.flush()
        self.live.write_note()
        self.advance(pump, 5)
        self.assertEqual(client.messages, [])

    def test_push_state_catch_up(self) -> None:
        """Enabling with an old pushState sends the changes since at once."""
        self.live.write_note()
        before = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.live.write_note("two")
        after = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        client, pump = self.connect()
        client.send({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": before})
        self.advance(pump, 0)
        self.assertEqual(client.messages[0]["changed"], {self.live.account: {"Note": after}})
        self.assertEqual(client.messages[0]["pushState"], after)

    def test_heartbeat_and_timeout(self) -> None:
        """The server pings each heartbeat; a client silent for ws-client-timeout is closed."""
        heartbeat = self.live.config.ws_heartbeat_interval / 1000
        timeout = self.live.config.ws_client_timeout / 1000
        client, pump = self.connect()
        self.advance(pump, heartbeat)
        self.assertEqual(client.pings, 1)
        for _ in range(int(timeout / heartbeat) + 1):
            self.advance(pump, heartbeat)
        self.assertIsNone(client.closed)  # it answers pings
        silent, silent_pump = self.connect(answer_pings=False)
        for _ in range(int(timeout / heartbeat) + 1):
            self.advance(silent_pump, heartbeat)
        self.assertEqual(silent.closed, 1001)
