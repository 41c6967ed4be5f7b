# -*- test-case-name: tests.push.test_eventsource -*-
"""
The event source resource (RFC 8620 section 7.3):
GET /jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}.

A C{text/event-stream} response (WHATWG HTML, server-sent events) that
stays open: a C{state} event carrying a StateChange for each coalesced
change of the wanted types, with the account's modseq as event id, and a
C{ping} event whenever the ping interval passes without an event.  Given
a C{Last-Event-ID}, the changes since that id are sent at once.
"""

from __future__ import annotations

import json
from typing import Dict, FrozenSet, Optional, Tuple

from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource

from stalwart.jmap.errors import RequestError
from stalwart.jmap.http import HttpError, client_address, run_async
from stalwart.push.feed import state_change, states_since

__all__ = ["EventSourceEndpoint", "format_event", "parse_query", "PING_MIN", "PING_MAX"]

#: Bounds of the ping interval in seconds; RFC 8620 7.3 forbids a minimum
#: above 30 or a maximum below 300.  Fewer pings cost less.
PING_MIN, PING_MAX = 30, 300
#: Open event streams per account: each holds a socket and a listener.
STREAMS_PER_ACCOUNT_MAX = 256


def format_event(name: str, data: object, event_id: Optional[str] = None) -> bytes:
    """One server-sent event; the JSON has no newline, so one data line."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def parse_query(args: Dict[bytes, list]) -> Tuple[Optional[FrozenSet[str]], bool, int]:
    """(types or None for all, close after a state event, ping seconds or 0); raises ValueError."""

    def one(name: bytes, default: str) -> str:
        values = args.get(name, [default.encode()])
        return values[0].decode("utf-8", "replace")

    types_text = one(b"types", "*")
    if types_text == "*":
        types = None
    else:
        names = types_text.split(",")
        if not all(names) or len(names) > 256:
            raise ValueError("types must be * or a comma-separated list of type names")
        types = frozenset(names)
    closeafter = one(b"closeafter", "no")
    if closeafter not in ("state", "no"):
        raise ValueError("closeafter must be state or no")
    ping_text = one(b"ping", "0")
    if not ping_text.isdigit() or len(ping_text) > 9:
        raise ValueError("ping must be a whole number of seconds")
    ping = int(ping_text)
    if ping:
        ping = min(max(ping, PING_MIN), PING_MAX)
    return types, closeafter == "state", ping


class _Stream:
    """One open event stream: its listener and its ping timer."""

    def __init__(self, endpoint: "EventSourceEndpoint", request, account: str, close_after: bool, ping: int) -> None:
        self._endpoint = endpoint
        self._request = request
        self.account = account
        self._close_after = close_after
        self._ping = ping
        self._ping_call = None
        self.listener = None
        self.open = True

    def start(self, types) -> None:
        self.listener = self._endpoint.feed.listen(self.account, self.changed, types)
        self._schedule_ping()

    def changed(self, states, push_state: str) -> None:
        self.send(format_event("state", state_change(self.account, states), push_state))
        if self._close_after:
            self.close()

    def send(self, data: bytes) -> None:
        if not self.open:
            return
        self._request.write(data)
        self._schedule_ping()

    def _schedule_ping(self) -> None:
        if not self._ping or not self.open:
            return
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.reset(self._ping)
        else:
            self._ping_call = self._endpoint.clock.callLater(self._ping, self._send_ping)

    def _send_ping(self) -> None:
        self._ping_call = None
        self.send(format_event("ping", {"interval": self._ping}))

    def close(self) -> None:
        self._stopped()
        if not self._request.finished:
            self._request.finish()

    def _stopped(self, _=None) -> None:
        if not self.open:
            return
        self.open = False
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.cancel()
        if self.listener is not None:
            self.listener.cancel()
        self._endpoint.streams.discard(self)


class EventSourceEndpoint(Resource):
    isLeaf = True

    def __init__(self, node, feed, clock) -> None:
        super().__init__()
        self.node = node
        self.feed = feed
        self.clock = clock
        self.streams = set()

    def render_GET(self, request):
        @inlineCallbacks
        def handle():
            try:
                types, close_after, ping = parse_query(request.args)
            except ValueError as e:
                raise HttpError(400, str(e))
            principal = yield self.node.authenticator.authenticate(
                request.getHeader(b"authorization"), client_address(request)
            )
            account = principal.account_id
            if sum(1 for s in self.streams if s.account == account) >= STREAMS_PER_ACCOUNT_MAX:
                raise RequestError.limit("eventSourceStreams", f"at most {STREAMS_PER_ACCOUNT_MAX} open event streams")
            stream = _Stream(self, request, account, close_after, ping)
            self.streams.add(stream)
            request.notifyFinish().addBoth(stream._stopped)
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
            request.setHeader(b"cache-control", b"no-cache, no-store")
            request.setHeader(b"x-accel-buffering", b"no")
            request.write(b": stalwart-jmap event stream\n\n")
            stream.start(types)
            last_id = request.getHeader(b"last-event-id")
            if last_id is not None:
                yield self._catch_up(stream, last_id.decode("latin-1"))

        return run_async(request, handle)

    @inlineCallbacks
    def _catch_up(self, stream: _Stream, last_id: str):
        found = yield self.node.reader.run(states_since, stream.account, last_id)
        if found is not None and found[0] and stream.open:
            states, push_state = found
            if stream.listener.types is not None:
                states = {k: v for k, v in states.items() if k in stream.listener.types}
            if states:
                stream.changed(states, push_state)

    def close_all(self) -> None:
        """End every stream (the service is stopping)."""
        for stream in list(self.streams):
            stream.close()
