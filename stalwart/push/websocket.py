# -*- test-case-name: tests.push.test_websocket -*-
"""
JMAP over WebSocket (RFC 8887), subprotocol C{jmap}, at /jmap/ws.

Messages are JSON text frames with an C{@type}:

  - C{Request} (RFC 8887 4.3.1): a JMAP Request plus an optional C{id};
    run by the same L{Dispatcher} as the HTTP API, so result references
    and creation ids behave alike; answered by a C{Response} with
    C{requestId}.  Requests of one connection may run concurrently (at
    most max-concurrent-requests) and be answered out of order (4.3.3).
  - anything malformed: a C{RequestError} (4.3.4) on that connection,
    which stays open; other connections never notice.
  - C{WebSocketPushEnable} / C{WebSocketPushDisable} (4.3.5): StateChange
    messages for the given C{dataTypes}, with C{pushState}; a given
    C{pushState} gets the changes since it at once.

The server pings every ws-heartbeat-interval and closes a connection that
sent nothing (not even a pong) for ws-client-timeout.

Writes on a follower fail with C{serverUnavailable} until the cluster
forwards them to the leader over RPC (a socket cannot be redirected).

Twisted 26.10's L{WebSocketResource} accepts the upgrade at once and
selects no subprotocol, but RFC 8887 4.2 needs C{jmap} echoed and the
client authenticated first (asynchronously, with a thread for scrypt).
So L{WebSocketEndpoint} does the wsproto handshake itself and upgrades
the channel with the same private hooks Twisted's resource uses
(C{_WebSocketWireProtocol}, C{HTTPChannel._protocolUpgradeForWebsockets}),
kept together in L{_upgrade}.
"""

from __future__ import annotations

import json
from typing import Optional, Union

import attrs
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger
from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from wsproto import ConnectionType
from wsproto.events import AcceptConnection
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from stalwart.jmap.errors import RequestError
from stalwart.jmap.http import client_address, run_async
from stalwart.jmap.request import Request, decode_json, parse_request
from stalwart.logs import observer
from stalwart.push.feed import parse_types, state_change, states_since

__all__ = ["WebSocketEndpoint", "JmapWebSocket", "parse_message", "websocket_capability", "WEBSOCKET", "SUBPROTOCOL"]

WEBSOCKET = "urn:ietf:params:jmap:websocket"
SUBPROTOCOL = "jmap"

log = Logger(observer=observer)


def websocket_capability(jmap_url: str) -> dict:
    """The session's capability object (RFC 8887 4.1): wss for https."""
    scheme, _, rest = jmap_url.partition("://")
    return {"url": ("wss" if scheme == "https" else "ws") + "://" + rest.rstrip("/") + "/jmap/ws", "supportsPush": True}


@attrs.frozen
class WsRequest:
    id: Optional[str]
    request: Request


@attrs.frozen
class PushEnable:
    types: Optional[frozenset]
    push_state: Optional[str]


@attrs.frozen
class PushDisable:
    pass


class MessageError(Exception):
    def __init__(self, error: RequestError, request_id: Optional[str] = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.request_id = request_id


def parse_message(text: str, capabilities, max_calls: int) -> Union[WsRequest, PushEnable, PushDisable]:
    """One client message (RFC 8887 4.3); raises L{MessageError}."""
    raw = text.encode("utf-8", "surrogatepass")
    try:
        value = decode_json(raw)
    except RequestError as e:
        raise MessageError(e) from None
    if not isinstance(value, dict):
        raise MessageError(RequestError.notRequest("a message must be a JSON object"))
    kind = value.get("@type")
    request_id = value.get("id")
    if kind == "Request":
        if request_id is not None and not isinstance(request_id, str):
            raise MessageError(RequestError.notRequest("'id' must be a string"))
        try:
            return WsRequest(request_id, parse_request(raw, capabilities, max_calls))
        except RequestError as e:
            raise MessageError(e, request_id) from None
    if kind == "WebSocketPushEnable":
        try:
            types = parse_types(value.get("dataTypes"))
        except ValueError as e:
            raise MessageError(RequestError.notRequest(f"dataTypes: {e}")) from None
        push_state = value.get("pushState")
        if push_state is not None and not isinstance(push_state, str):
            raise MessageError(RequestError.notRequest("'pushState' must be a string"))
        return PushEnable(types, push_state)
    if kind == "WebSocketPushDisable":
        return PushDisable()
    raise MessageError(RequestError.notRequest(f"unknown '@type' {kind!r:.60}"))


def _error_message(error: RequestError, request_id: Optional[str]) -> dict:
    message = {"@type": "RequestError", **error.to_json()}
    if request_id is not None:
        message["requestId"] = request_id
    return message


class JmapWebSocket:
    """One client's WebSocket (a L{twisted.web.websocket.WebSocketProtocol})."""

    def __init__(self, endpoint: "WebSocketEndpoint", principal) -> None:
        self._endpoint = endpoint
        self._node = endpoint.node
        self._clock = endpoint.clock
        self.principal = principal
        self.transport = None
        self._listener = None
        self._in_flight = 0
        self._last_heard = self._clock.seconds()
        self._heartbeat = None
        self.open = False

    # -- WebSocketProtocol ---------------------------------------------------

    def negotiationStarted(self, transport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        self.open = True
        self._endpoint.connections.add(self)
        self._heartbeat = self._clock.callLater(self._endpoint.heartbeat, self._beat)

    def pongReceived(self, payload: bytes) -> None:
        self._last_heard = self._clock.seconds()

    def bytesMessageReceived(self, data) -> None:
        self._last_heard = self._clock.seconds()
        self.send(_error_message(RequestError.notJSON("JMAP messages are text frames"), None))

    def textMessageReceived(self, text: str) -> None:
        self._last_heard = self._clock.seconds()
        config = self._node.config
        if len(text) > config.max_size_request:
            self.send(_error_message(RequestError.limit("maxSizeRequest", f"message over {config.max_size_request} bytes"), None))
            return
        try:
            message = parse_message(text, self._node.capability_uris(), config.max_calls_in_request)
        except MessageError as e:
            self.send(_error_message(e.error, e.request_id))
            return
        if isinstance(message, WsRequest):
            self._run(message)
        elif isinstance(message, PushEnable):
            self._enable_push(message)
        else:
            self._disable_push()

    def connectionLost(self, reason) -> None:
        self.open = False
        self._endpoint.connections.discard(self)
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._disable_push()

    # -- requests ------------------------------------------------------------

    def _run(self, message: WsRequest) -> None:
        limit = self._node.config.max_concurrent_requests
        if self._in_flight >= limit:
            error = RequestError.limit("maxConcurrentRequests", f"at most {limit} requests at once")
            self.send(_error_message(error, message.id))
            return
        self._in_flight += 1
        d = self._node.request_context(self.principal)
        d.addCallback(lambda context: self._node.dispatcher.process(message.request, context))

        def answered(response):
            self._in_flight -= 1
            reply = {"@type": "Response", **response}
            if message.id is not None:
                reply["requestId"] = message.id
            self.send(reply)

        def failed(failure):
            self._in_flight -= 1
            log.failure("WebSocket request failed", failure)
            error = RequestError("about:blank", 500, "internal server error")
            self.send(_error_message(error, message.id))

        d.addCallbacks(answered, failed)

    def send(self, message: dict) -> None:
        if self.open:
            self.transport.sendTextMessage(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    # -- push ------------------------------------------------------------------

    def _enable_push(self, message: PushEnable) -> None:
        self._disable_push()
        account = self.principal.account_id
        self._listener = self._endpoint.feed.listen(account, self._pushed, message.types)
        if message.push_state is not None:
            listener = self._listener
            d = self._node.reader.run(states_since, account, message.push_state)

            def caught_up(found):
                if found is None or listener is not self._listener:
                    return
                states, push_state = found
                if listener.types is not None:
                    states = {k: v for k, v in states.items() if k in listener.types}
                if states:
                    self._pushed(states, push_state)

            d.addCallback(caught_up).addErrback(lambda f: log.failure("push catch-up failed", f))

    def _disable_push(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None

    def _pushed(self, states, push_state: str) -> None:
        self.send(state_change(self.principal.account_id, states, push_state))

    # -- heartbeat -------------------------------------------------------------

    def _beat(self) -> None:
        self._heartbeat = None
        if not self.open:
            return
        if self._clock.seconds() - self._last_heard >= self._endpoint.client_timeout:
            self.close(1001, "client timed out")
            return
        self.transport.ping(b"")
        self._heartbeat = self._clock.callLater(self._endpoint.heartbeat, self._beat)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.open:
            return
        self.open = False
        try:
            self.transport.loseConnection(code, reason)
        except LocalProtocolError:
            # wsproto is already closing (the client sent a Close first).
            self.transport.transport.loseConnection()


def _upgrade(request, handshake: H11Handshake, protocol: JmapWebSocket) -> None:
    """Accept the upgrade with subprotocol jmap and hand the channel to C{protocol}."""
    data = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
    wire = _WebSocketWireProtocol(handshake.connection, serverBootstrap, protocol)
    transport = request.channel.transport
    request.channel._protocolUpgradeForWebsockets(wire)
    transport.write(data)
    protocol.negotiationFinished()


def _offers_jmap(request) -> bool:
    offered = b",".join(request.requestHeaders.getRawHeaders(b"sec-websocket-protocol", []))
    return SUBPROTOCOL.encode() in (p.strip() for p in offered.split(b","))


class WebSocketEndpoint(Resource):
    isLeaf = True

    def __init__(self, node, feed, clock, heartbeat: float, client_timeout: float) -> None:
        """
        @param heartbeat: seconds between pings (ws-heartbeat-interval).
        @param client_timeout: seconds of silence before closing (ws-client-timeout).
        """
        super().__init__()
        self.node = node
        self.feed = feed
        self.clock = clock
        self.heartbeat = heartbeat
        self.client_timeout = client_timeout
        self.connections = set()

    def render_GET(self, request):
        handshake = H11Handshake(ConnectionType.SERVER)
        headers = [(k, v) for k, vs in request.requestHeaders.getAllRawHeaders() for v in vs]
        try:
            handshake.initiate_upgrade_connection(headers, request.path)
        except RemoteProtocolError as e:
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain")
            return f"not a WebSocket handshake: {e}".encode()
        if not _offers_jmap(request):
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain")
            return b"the WebSocket subprotocol must be jmap (RFC 8887)"

        @inlineCallbacks
        def handle():
            principal = yield self.node.authenticator.authenticate(
                request.getHeader(b"authorization"), client_address(request)
            )
            if request.channel is None or request.channel.transport is None:
                return  # the client left while we authenticated
            _upgrade(request, handshake, JmapWebSocket(self, principal))

        result = run_async(request, handle)
        assert result is NOT_DONE_YET
        return result

    def close_all(self) -> None:
        for connection in list(self.connections):
            connection.close(1001, "server stopping")
