# -*- test-case-name: tests.push.test_eventsource -*-
"""
Tests for L{stalwart.push.eventsource}: the event source resource of
RFC 8620 7.3 on an in-process node, driven by its clock.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.push.eventsource import PING_MAX, PING_MIN, format_event, parse_query
from tests.push.helpers import PushNode, events


class FormatTests(SynchronousTestCase):
    def test_format_event(self) -> None:
        """One event: name, optional id, one data line, blank line."""
        self.assertEqual(format_event("ping", {"interval": 30}), b'event: ping\ndata: {"interval":30}\n\n')
        self.assertEqual(format_event("state", {}, "7"), b"event: state\nid: 7\ndata: {}\n\n")

    def test_parse_query(self) -> None:
        """types, closeafter and ping (clamped to PING_MIN..PING_MAX; 0 is none)."""
        self.assertEqual(parse_query({b"types": [b"*"], b"closeafter": [b"no"], b"ping": [b"0"]}), (None, False, 0))
        self.assertEqual(
            parse_query({b"types": [b"Email,Mailbox"], b"closeafter": [b"state"], b"ping": [b"1"]}),
            (frozenset({"Email", "Mailbox"}), True, PING_MIN),
        )
        self.assertEqual(parse_query({b"ping": [b"100000"]})[2], PING_MAX)
        for bad in ({b"closeafter": [b"maybe"]}, {b"ping": [b"-1"]}, {b"types": [b"Email,,"]}):
            self.assertRaises(ValueError, parse_query, bad)


class EventSourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.live = PushNode(self)

    def test_state_after_write(self) -> None:
        """
        A write produces a state event with the new state of the type
        within one throttle period; the event id is the account's state.
        """
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=*&closeafter=no&ping=0")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"])
        self.live.write_note()
        self.live.pump(0)
        [(name, data, event_id)] = events(chunks)
        self.assertEqual(name, "state")
        state = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(data, {"@type": "StateChange", "changed": {self.live.account: {"Note": state}}})
        self.assertEqual(event_id, state)
        self.assertNoResult(done)

    def test_coalesced(self) -> None:
        """Writes within the throttle after the first come as one event at its end."""
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=*&closeafter=no&ping=0")
        self.live.write_note()
        self.live.pump(0)
        self.live.write_note("two")
        self.live.pump(0.1)
        self.live.write_note("three")
        self.live.pump(0.1)
        self.assertEqual(len(events(chunks)), 1)
        self.live.pump(self.live.config.event_source_throttle / 1000)
        self.assertEqual(len(events(chunks)), 2)
        state = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(events(chunks)[1][1]["changed"][self.live.account], {"Note": state})

    def test_types_filter(self) -> None:
        """Only the listed types are pushed."""
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=Mailbox&closeafter=no&ping=0")
        self.live.write_note()
        self.live.pump(5)
        self.assertEqual(events(chunks), [])

    def test_closeafter_state(self) -> None:
        """closeafter=state ends the response after the first state event."""
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=*&closeafter=state&ping=0")
        self.assertNoResult(done)
        self.live.write_note()
        self.live.pump(0)
        self.successResultOf(done)
        self.assertEqual([e[0] for e in events(chunks)], ["state"])

    def test_ping(self) -> None:
        """A ping event with the interval used arrives when it has passed without an event."""
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=*&closeafter=no&ping=45")
        self.live.pump(44)
        self.assertEqual(events(chunks), [])
        self.live.pump(1)
        self.assertEqual(events(chunks), [("ping", {"interval": 45}, None)])
        self.live.pump(30)
        self.live.write_note()
        self.live.pump(0)
        self.live.pump(44)  # a ping is due 45 s after the state event, not after the ping
        self.assertEqual([e[0] for e in events(chunks)], ["ping", "state"])
        self.live.pump(1)
        self.assertEqual([e[0] for e in events(chunks)], ["ping", "state", "ping"])

    def test_last_event_id(self) -> None:
        """Given Last-Event-ID, the changes since are sent at once."""
        self.live.write_note()
        before = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.live.write_note("two")
        response, chunks, done = self.live.open_stream(
            "/jmap/eventsource?types=*&closeafter=no&ping=0", {"Last-Event-ID": before})
        self.live.pump(0)
        after = self.live.call(self.live.account, "Note/get", {"ids": []})[1]["state"]
        self.assertEqual(events(chunks)[0][1]["changed"], {self.live.account: {"Note": after}})

    def test_unauthenticated(self) -> None:
        """Without credentials: 401, no stream."""
        reply = self.live.request("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0")
        self.assertEqual(reply.status, 401)

    def test_bad_parameters(self) -> None:
        """A bad closeafter is a 400."""
        reply = self.live.request("GET", "/jmap/eventsource?types=*&closeafter=x&ping=0", authorization=self.live.auth)
        self.assertEqual(reply.status, 400)

    def test_stop(self) -> None:
        """Stopping the push service ends the streams and removes their listeners."""
        response, chunks, done = self.live.open_stream("/jmap/eventsource?types=*&closeafter=no&ping=30")
        feed = self.live.service.getServiceNamed("push").feed
        self.assertEqual(feed.listening(self.live.account), 1)
        self.live.service.getServiceNamed("push").eventsource.close_all()
        self.assertEqual(feed.listening(self.live.account), 0)
        self.live.pump(0)
        self.successResultOf(done)


class DeliveryEventTests(SynchronousTestCase):
    def test_lmtp_delivery(self) -> None:
        """
        A message delivered over LMTP produces a state event with Email,
        Mailbox, Thread and EmailDelivery within one throttle period.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        from stalwart.mail.extension import mail_extension

        live = PushNode(self, extensions=[mail_extension()])
        response, chunks, done = live.open_stream("/jmap/eventsource?types=*&closeafter=no&ping=0")
        factory = live.service.getServiceNamed("lmtp").factory
        peer = IPv4Address("TCP", "127.0.0.1", 5000)
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"LHLO mta.example.com\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
            b"From: bob@example.org\r\nTo: alice@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n"
        )
        live.pump(0)
        self.assertIn(b"250 2.0.0", transport.value().splitlines()[-1], transport.value())
        [(name, data, event_id)] = events(chunks)
        changed = data["changed"][live.account]
        self.assertEqual(set(changed), {"Email", "Mailbox", "Thread", "EmailDelivery"})
        self.assertEqual(changed["EmailDelivery"], changed["Email"])
        email_state = live.call(live.account, "Email/get", {"ids": []}, using=[
            "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"])[1]["state"]
        self.assertEqual(changed["Email"], email_state)
