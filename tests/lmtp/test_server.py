"""
Tests for L{stalwart.lmtp.server.LMTPServer} over a L{StringTransport}:
every command and reply of RFC 2033, pipelining (RFC 2920), the limits and
malformed input.  Recipient lookup and delivery are fakes here; the real
ones are in test_service.
"""

import re
from typing import Dict, List

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from stalwart.lmtp.server import LMTPServer, LmtpLimits, reply_for
from stalwart.mail.recipients import Recipient
from stalwart.store.refusal import Refused

ACCOUNTS = {"alice@example.com": "A1", "bob@example.com": "A2", "carol@example.com": "A3"}
LHLO = b"LHLO mx.example.net\r\n"


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):
    """A StringTransport that records STARTTLS."""

    tls_context = None

    def startTLS(self, contextFactory) -> None:
        self.tls_context = contextFactory


class Session:
    """One LMTP server on a StringTransport with fake lookups and delivery."""

    def __init__(self, limits=LmtpLimits(message_bytes_max=1000, recipients_max=5, command_line_bytes_max=100,
                                         data_line_bytes_max=200, queued_lines_max=20),
                 outcomes: Dict[str, str] = {}, peer="10.0.0.5", trusted=lambda ip: True, tls=None,
                 tls_only=False, transport_class=StringTransport, lookups_wait=False, delivery=None) -> None:
        self.clock = Clock()
        self.outcomes = outcomes
        self.lookups: List[Deferred] = []
        self.lookups_wait = lookups_wait
        self.deliveries = []
        self.delivery = delivery
        self.hooked = []
        self.server = LMTPServer(self.resolve, self.deliver, self.clock, b"mail.example.com", limits,
                                 trusted=trusted, tls=tls, tls_only=tls_only,
                                 delivered=lambda *args: self.hooked.append(args))
        self.transport = transport_class(peerAddress=IPv4Address("TCP", peer, 40000),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 11200))
        self.server.makeConnection(self.transport)

    def resolve(self, address):
        account = ACCOUNTS.get(address.lower())
        result = None if account is None else Recipient(address.lower(), account, address.lower())
        if self.lookups_wait:
            d = Deferred()
            self.lookups.append((d, result))
            return d
        return succeed(result)

    def release_lookup(self):
        d, result = self.lookups.pop(0)
        d.callback(result)

    def deliver(self, envelope, specs, message):
        self.deliveries.append((envelope, specs, message))
        if self.delivery is not None:
            return self.delivery()
        return succeed({"recipients": [
            {"rcpt": s["rcpt"], "accountId": s["account"], "status": self.outcomes.get(s["account"], "delivered")}
            for s in specs
        ]})

    def send(self, data: bytes) -> None:
        self.server.dataReceived(data)

    def replies(self) -> List[str]:
        value = self.transport.value()
        self.transport.clear()
        assert value.endswith(b"\r\n") or not value, value
        return value.decode().split("\r\n")[:-1]

    def codes(self) -> List[str]:
        """Reply codes with their enhanced codes (RFC 2034) when they have one."""
        codes = []
        for line in self.replies():
            enhanced = line[4:].split(" ", 1)[0]
            codes.append(line[:3] + (" " + enhanced if re.fullmatch(r"\d\.\d+\.\d+", enhanced) else ""))
        return codes

    def start(self) -> None:
        self.send(LHLO)
        self.replies()


def transaction(*rcpts: str, body: bytes = b"Subject: hi\r\n\r\nhello\r\n", sender=b"<s@example.net>") -> bytes:
    lines = [b"MAIL FROM:" + sender] + [b"RCPT TO:<" + r.encode() + b">" for r in rcpts] + [b"DATA"]
    return b"\r\n".join(lines) + b"\r\n"


class GreetingTests(SynchronousTestCase):
    def test_greeting_and_lhlo(self) -> None:
        """220 greeting; LHLO lists PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES and SIZE (RFC 2033 4.1)."""
        session = Session()
        self.assertEqual(session.replies(), ["220 mail.example.com LMTP stalwart-jmap ready"])
        session.send(LHLO)
        self.assertEqual(session.replies(), [
            "250-mail.example.com Hello 10.0.0.5, nice to meet you",
            "250-PIPELINING", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250 SIZE 1000",
        ])

    def test_helo_ehlo_refused(self) -> None:
        """HELO and EHLO are refused: RFC 2033 4.1 forbids LMTP servers to accept them."""
        session = Session()
        session.replies()
        session.send(b"HELO mx\r\nEHLO mx\r\nMAIL FROM:<a@b.c>\r\n")
        self.assertEqual(session.codes(), ["500 5.5.1", "500 5.5.1", "503 5.5.1"])

    def test_lhlo_needs_domain(self) -> None:
        """LHLO without an argument is a syntax error."""
        session = Session()
        session.replies()
        session.send(b"LHLO\r\n")
        self.assertEqual(session.codes(), ["501 5.5.4"])

    def test_untrusted_peer(self) -> None:
        """A client outside lmtp-trusted-ips gets 554 5.7.1 and is disconnected."""
        session = Session(peer="203.0.113.9", trusted=lambda ip: ip == "10.0.0.5")
        self.assertEqual(session.codes(), ["554 5.7.1"])
        self.assertTrue(session.transport.disconnecting)

    def test_noop_rset_quit(self) -> None:
        """NOOP and RSET answer 250 2.0.0; QUIT answers 221 2.0.0 and closes."""
        session = Session()
        session.start()
        session.send(b"NOOP\r\nMAIL FROM:<a@b.c>\r\nRSET\r\nRCPT TO:<alice@example.com>\r\nQUIT\r\n")
        self.assertEqual(session.codes(), ["250 2.0.0", "250 2.1.0", "250 2.0.0", "503 5.5.1", "221 2.0.0"])
        self.assertTrue(session.transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """An idle connection is closed with 421 after the timeout, on the injected clock."""
        session = Session()
        session.start()
        session.clock.advance(session.server.timeout + 1)
        self.assertEqual(session.codes()[0], "421 4.4.2")
        self.assertTrue(session.transport.disconnecting)


class TransactionTests(SynchronousTestCase):
    def test_one_reply_per_recipient(self) -> None:
        """
        After the final dot, one reply per accepted recipient in RCPT order
        (RFC 2033 4.2): mixed outcomes in one transaction; an unknown
        recipient is refused at RCPT and gets no reply after the data.
        """
        session = Session(outcomes={"A2": "overQuota", "A3": "duplicate"})
        session.start()
        session.send(transaction("alice@example.com", "nobody@example.com", "bob@example.com", "carol@example.com"))
        self.assertEqual(session.codes(), ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "250 2.1.5", "354"])
        session.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
        replies = session.replies()
        self.assertEqual(replies, [
            "250 2.0.0 <alice@example.com> Delivered",
            "552 5.2.2 <bob@example.com> Mailbox full",
            "250 2.0.0 <carol@example.com> Already delivered",
        ])
        ((envelope, specs, message),) = session.deliveries
        self.assertEqual([s["account"] for s in specs], ["A1", "A2", "A3"])
        self.assertEqual(message, b"Subject: hi\r\n\r\nhello\r\n")
        self.assertEqual((envelope.sender, envelope.helo, envelope.peer, envelope.protocol),
                         ("s@example.net", "mx.example.net", "10.0.0.5", "LMTP"))
        self.assertEqual(len(session.hooked), 1)

    def test_message_bytes_exact(self) -> None:
        """Dot-stuffing is undone; the rest reaches delivery byte for byte, 8-bit included."""
        session = Session()
        session.start()
        session.send(transaction("alice@example.com"))
        session.replies()
        session.send(b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n..dot\r\n\r\n \r\n.\r\n")
        self.assertEqual(session.deliveries[0][2], b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n.dot\r\n\r\n \r\n")

    def test_null_sender(self) -> None:
        """MAIL FROM:<> (bounces) is accepted; the envelope sender is empty."""
        session = Session()
        session.start()
        session.send(transaction("alice@example.com", sender=b"<>") + b"x\r\n.\r\n")
        self.assertEqual(session.codes()[-1], "250 2.0.0")
        self.assertEqual(session.deliveries[0][0].sender, "")

    def test_pipelining_keeps_order(self) -> None:
        """
        Commands sent in one packet while lookups are in progress are
        answered in order; DATA waits for the RCPT results (RFC 2920).
        """
        session = Session(lookups_wait=True)
        session.start()
        session.send(LHLO + transaction("alice@example.com", "nobody@example.com") + b"body\r\n.\r\nNOOP\r\n")
        self.assertEqual([r[:3] for r in session.replies()], ["250"] * 6)
        self.assertEqual(len(session.lookups), 1)
        session.release_lookup()
        self.assertEqual(session.codes(), ["250 2.1.5"])
        session.release_lookup()
        self.assertEqual(session.codes(), ["550 5.1.1", "354", "250 2.0.0", "250 2.0.0"])

    def test_flood_pauses_reading(self) -> None:
        """Lines piling up behind a pending reply pause the transport until they are answered."""
        session = Session(lookups_wait=True)
        session.start()
        session.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\n" + b"NOOP\r\n" * 30)
        self.assertEqual(session.transport.producerState, "paused")
        session.release_lookup()
        self.assertEqual(session.transport.producerState, "producing")
        self.assertEqual(session.codes(), ["250 2.1.0", "250 2.1.5"] + ["250 2.0.0"] * 30)

    def test_replies_wait_for_delivery(self) -> None:
        """Commands after the final dot are answered after the delivery's replies."""
        pending = Deferred()
        session = Session(delivery=lambda: pending)
        session.start()
        session.send(transaction("alice@example.com") + b"x\r\n.\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual(session.codes(), ["250 2.1.0", "250 2.1.5", "354"])
        pending.callback({"recipients": [{"rcpt": "alice@example.com", "status": "delivered"}]})
        self.assertEqual(session.codes(), ["250 2.0.0", "250 2.0.0", "221 2.0.0"])

    def test_rset_forgets(self) -> None:
        """RSET forgets the sender and recipients: DATA then fails with 503."""
        session = Session()
        session.start()
        session.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nRSET\r\nDATA\r\n")
        self.assertEqual(session.codes(), ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"])

    def test_data_without_valid_recipient(self) -> None:
        """DATA after only failed RCPTs is 503 (RFC 2033 4.2)."""
        session = Session()
        session.start()
        session.send(transaction("nobody@example.com"))
        self.assertEqual(session.codes(), ["250 2.1.0", "550 5.1.1", "503 5.5.1"])

    def test_too_many_recipients(self) -> None:
        """RCPTs past the limit get 452 4.5.3; the accepted ones still get their message."""
        session = Session()
        session.start()
        rcpts = ["alice@example.com"] * 6
        session.send(transaction(*rcpts) + b"x\r\n.\r\n")
        codes = session.codes()
        self.assertEqual(codes[1:8], ["250 2.1.5"] * 5 + ["452 4.5.3", "354"])
        self.assertEqual(codes[8:], ["250 2.0.0"] * 5)

    def test_disconnect_before_final_dot(self) -> None:
        """A connection lost before the final dot delivers nothing."""
        session = Session()
        session.start()
        session.send(transaction("alice@example.com") + b"Subject: half\r\n\r\nhalf a message\r\n")
        session.server.connectionLost(None)
        self.assertEqual(session.deliveries, [])


class FailureTests(SynchronousTestCase):
    def test_proposal_fails(self) -> None:
        """No leader or a store error: every recipient gets 451 4.3.0 and the MTA retries."""
        session = Session(delivery=lambda: fail(RuntimeError("no leader")))
        session.start()
        session.send(transaction("alice@example.com", "bob@example.com") + b"x\r\n.\r\n")
        self.assertEqual(session.codes()[-2:], ["451 4.3.0", "451 4.3.0"])
        self.flushLoggedErrors(RuntimeError)

    def test_refused_entry(self) -> None:
        """An entry the state machine refused as a whole is a temporary failure for each recipient."""
        session = Session(delivery=lambda: succeed(Refused("serverFail", "bug")))
        session.start()
        session.send(transaction("alice@example.com") + b"x\r\n.\r\n")
        self.assertEqual(session.codes()[-1], "451 4.3.0")
        self.assertEqual(session.hooked, [])

    def test_delivery_timeout(self) -> None:
        """A delivery that never finishes is answered 451 after the limit."""
        session = Session(delivery=Deferred)
        session.start()
        session.send(transaction("alice@example.com") + b"x\r\n.\r\nNOOP\r\n")
        self.assertEqual(session.codes(), ["250 2.1.0", "250 2.1.5", "354"])
        session.clock.advance(LmtpLimits().delivery_seconds_max)
        self.assertEqual(session.codes(), ["451 4.3.0", "250 2.0.0"])
        self.flushLoggedErrors()

    def test_lookup_fails(self) -> None:
        """A store error during RCPT is 451 4.3.0 for that recipient only."""
        session = Session()
        session.resolve = lambda address: fail(OSError("disk"))
        session.server._resolve = session.resolve
        session.start()
        session.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\n")
        self.assertEqual(session.codes(), ["250 2.1.0", "451 4.3.0"])
        self.flushLoggedErrors(OSError)


class LimitTests(SynchronousTestCase):
    def test_size_parameter(self) -> None:
        """MAIL ... SIZE= over the limit is 552 5.3.4 (RFC 1870); within it, 250."""
        session = Session()
        session.start()
        session.send(b"MAIL FROM:<a@b.c> SIZE=1001\r\nMAIL FROM:<a@b.c> SIZE=1000 BODY=8BITMIME\r\n")
        self.assertEqual(session.codes(), ["552 5.3.4", "250 2.1.0"])

    def test_message_too_large(self) -> None:
        """Data past the limit: 552 5.3.4 per recipient after the dot, nothing delivered."""
        session = Session()
        session.start()
        session.send(transaction("alice@example.com", "bob@example.com"))
        session.replies()
        session.send(b"".join(b"%0150d\r\n" % n for n in range(10)) + b".\r\n")
        self.assertEqual(session.codes(), ["552 5.3.4", "552 5.3.4"])
        self.assertEqual(session.deliveries, [])
        session.send(b"NOOP\r\n")
        self.assertEqual(session.codes(), ["250 2.0.0"])

    def test_overlong_command(self) -> None:
        """A command line past the limit is refused with 500; the next one works."""
        session = Session()
        session.start()
        session.send(b"NOOP " + b"x" * 150 + b"\r\nNOOP\r\n")
        self.assertEqual(session.codes(), ["500 5.5.2", "250 2.0.0"])
        session.send(b"NOOP " + b"y" * 150)  # no CRLF yet: skipped up to it
        session.send(b"y" * 50 + b"\r\nNOOP\r\n")
        self.assertEqual(session.codes(), ["500 5.5.2", "250 2.0.0"])

    def test_overlong_data_line(self) -> None:
        """A message line past the limit refuses the message (554 5.6.0), split across packets or not."""
        session = Session()
        session.start()
        for chunks in ([b"a" * 300 + b"\r\n.\r\n"], [b"a" * 150, b"a" * 150, b"a\r\nend\r\n.\r\n"]):
            session.send(transaction("alice@example.com"))
            session.replies()
            for chunk in chunks:
                session.send(chunk)
            self.assertEqual(session.codes(), ["554 5.6.0"])
        self.assertEqual(session.deliveries, [])


class MalformedTests(SynchronousTestCase):
    def test_bad_commands(self) -> None:
        """Syntax errors, unknown and non-ASCII verbs and bad sequences each get their own code."""
        session = Session()
        session.start()
        session.send(
            b"RCPT TO:<alice@example.com>\r\n"      # no MAIL yet
            b"MAIL FROM:broken<\r\n"
            b"MAIL FROM:<a@b.c> SIZE=big\r\n"
            b"MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n"
            b"MAIL FROM:<a@b.c> RET=FULL\r\n"
            b"MAIL FROM:<a@b.c>\r\n"
            b"MAIL FROM:<a@b.c>\r\n"                # nested
            b"RCPT TO:\r\n"
            b"XYZZY\r\n"
            b"\xff\xfe\r\n"
            b"\r\n"
            b"AUTH PLAIN\r\n"
            b"STARTTLS\r\n"                         # no certificate
            b"VRFY alice\r\n"
        )
        self.assertEqual(session.codes(), [
            "503 5.5.1", "501 5.5.4", "501 5.5.4", "501 5.5.4", "555 5.5.4", "250 2.1.0", "503 5.5.1",
            "501 5.5.4", "500 5.5.1", "500 5.5.1", "500 5.5.2", "500 5.5.1", "454 4.7.0", "500 5.5.1",
        ])

    def test_bare_lf_in_command(self) -> None:
        """A command with a bare LF is refused whole: the QUIT hidden after it is not run."""
        session = Session()
        session.start()
        session.send(b"NOOP\nQUIT\r\nNOOP\rQUIT\r\n")
        self.assertEqual(session.codes(), ["500 5.5.2", "500 5.5.2"])
        self.assertFalse(session.transport.disconnecting)

    def test_bare_lf_in_data(self) -> None:
        """
        A bare LF in the message refuses it (554 5.6.0) for every
        recipient, and LF.LF does not end the data (no smuggling).
        """
        session = Session()
        session.start()
        session.send(transaction("alice@example.com", "bob@example.com"))
        session.replies()
        session.send(b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n")
        self.assertEqual(session.replies(), [])
        session.send(b".\r\n")
        self.assertEqual(session.codes(), ["554 5.6.0", "554 5.6.0"])
        self.assertEqual(session.deliveries, [])


class StartTLSTests(SynchronousTestCase):
    def session(self, **kwargs):
        return Session(tls=object(), transport_class=TLSStringTransport, **kwargs)

    def test_starttls(self) -> None:
        """
        STARTTLS is offered with a certificate; after 220 2.0.0 the plain
        text pipelined behind it is dropped and LHLO is needed again
        (RFC 3207 4.2); it is not offered twice.
        """
        session = self.session()
        session.replies()
        session.send(LHLO)
        self.assertIn("250 STARTTLS", session.replies())
        session.send(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        self.assertEqual(session.codes(), ["220 2.0.0"])
        self.assertIsNotNone(session.transport.tls_context)
        session.send(b"MAIL FROM:<a@b.c>\r\n")
        self.assertEqual(session.codes(), ["503 5.5.1"])
        session.send(LHLO)
        self.assertNotIn("250 STARTTLS", session.replies())
        session.send(b"STARTTLS\r\n" + transaction("alice@example.com") + b"x\r\n.\r\n")
        self.assertEqual(session.codes(), ["503 5.5.1", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"])
        self.assertEqual(session.deliveries[0][0].protocol, "LMTPS")

    def test_tls_only(self) -> None:
        """With lmtp-tls-only, MAIL, RCPT and DATA need STARTTLS first (530 5.7.0)."""
        session = self.session(tls_only=True)
        session.start()
        session.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nNOOP\r\n")
        self.assertEqual(session.codes(), ["530 5.7.0", "530 5.7.0", "530 5.7.0", "250 2.0.0"])


class ReplyTests(SynchronousTestCase):
    def test_reply_table(self) -> None:
        """Each outcome has its reply code and enhanced code."""
        cases = {"delivered": "250 2.0.0", "duplicate": "250 2.0.0", "overQuota": "552 5.2.2",
                 "unknownRecipient": "550 5.1.1", "noMailbox": "450 4.2.1", "surprise": "451 4.3.0"}
        for status, expected in cases.items():
            code, text = reply_for({"rcpt": "a@b.c", "status": status})
            self.assertEqual(f"{code} {text[:5].decode()}", expected, status)
