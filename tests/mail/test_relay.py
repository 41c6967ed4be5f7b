"""
Tests for L{stalwart.mail.relay}: the pure core (Bcc removal, smtpReply
strings, the retry policy) and L{SmtpRelay} against a twisted.mail SMTP
server on 127.0.0.1.
"""

from __future__ import annotations

from typing import List

from twisted.internet import defer, reactor
from twisted.mail import smtp
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from stalwart.mail.relay import (
    RETRY_SECONDS, NoRelay, RelayConfig, SmtpRelay, delivery_outcome, outgoing_message, parse_secret, reply_text,
)

MESSAGE = (b"From: Bob <bob@example.org>\r\nTo: alice@example.net\r\nBcc: dave@example.net,\r\n"
           b" erin@example.net\r\nSubject: Plans\r\nMessage-ID: <plans@example.org>\r\n\r\n"
           b"Bcc: this line is body text\r\nSee you.\r\n")


class OutgoingMessageTests(SynchronousTestCase):
    def test_bcc_removed(self) -> None:
        """Every Bcc field, continuation lines included, leaves the header; the body is untouched (RFC 8621 7.5)."""
        sent = outgoing_message(MESSAGE)
        self.assertEqual(sent, b"From: Bob <bob@example.org>\r\nTo: alice@example.net\r\nSubject: Plans\r\n"
                               b"Message-ID: <plans@example.org>\r\n\r\nBcc: this line is body text\r\nSee you.\r\n")

    def test_case_and_line_ends(self) -> None:
        """Field names match without case; bare LF line ends become CRLF."""
        sent = outgoing_message(b"BCC: x@example.net\nbcc : y@example.net\nSubject: s\n\nbody\n")
        self.assertEqual(sent, b"Subject: s\r\n\r\nbody\r\n")

    def test_no_body(self) -> None:
        """A message of header fields only keeps them."""
        self.assertEqual(outgoing_message(b"Subject: s\r\nBcc: x@example.net"), b"Subject: s")


class ReplyTextTests(SynchronousTestCase):
    def test_multiline(self) -> None:
        """Lines are joined and the repeated enhanced code dropped (RFC 8621 7, the example)."""
        self.assertEqual(reply_text(550, "5.7.1 Our system has detected that this message is\n"
                                         "5.7.1 likely spam."),
                         "550 5.7.1 Our system has detected that this message is likely spam.")

    def test_single(self) -> None:
        self.assertEqual(reply_text(250, "2.1.5 OK"), "250 2.1.5 OK")
        self.assertEqual(reply_text(250, ""), "250")


class DeliveryOutcomeTests(SynchronousTestCase):
    def test_table(self) -> None:
        """2xx is relayed (delivered unknown), 5xx final (no), 4xx queued for a retry while attempts remain."""
        replies = {"a@x.example": (250, "2.1.5 OK"), "b@x.example": (550, "5.1.1 unknown"),
                   "c@x.example": (451, "4.7.1 later")}
        statuses, retry, retry_at = delivery_outcome(replies, 0, now=1000.0)
        self.assertEqual({r: s["delivered"] for r, s in statuses.items()},
                         {"a@x.example": "unknown", "b@x.example": "no", "c@x.example": "queued"})
        self.assertEqual((retry, retry_at), (["c@x.example"], 1000.0 + RETRY_SECONDS[0]))
        for attempts, delay in enumerate(RETRY_SECONDS):
            self.assertEqual(delivery_outcome(replies, attempts, now=0.0)[2], delay)
        statuses, retry, retry_at = delivery_outcome(replies, len(RETRY_SECONDS))
        self.assertEqual((statuses["c@x.example"]["delivered"], retry, retry_at), ("no", [], None))

    def test_no_relay(self) -> None:
        """Without a relay every recipient is refused with 554 5.3.5."""
        replies = self.successResultOf(NoRelay().send("bob@example.org", ["a@x.example"], b""))
        self.assertEqual(replies, {"a@x.example": (554, "5.3.5 No SMTP relay is configured (smtp-relay-host)")})


class ConfigTests(SynchronousTestCase):
    def test_secret(self) -> None:
        """user:password splits at the first colon; a password may hold colons."""
        self.assertEqual(parse_secret("relay-user:pa:ss\n"), ("relay-user", "pa:ss"))
        self.assertRaises(ValueError, parse_secret, "no-colon")

    def test_auth_needs_credentials(self) -> None:
        self.assertRaises(ValueError, RelayConfig, host="relay.example", auth="plain")
        self.assertRaises(ValueError, RelayConfig, host="relay.example", tls="ssl")


class _Message:
    def __init__(self, server: "Server") -> None:
        self.server, self.lines = server, []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self):
        if self.server.refuse_data:
            return defer.fail(Exception("no thanks"))
        self.server.messages.append(b"\r\n".join(self.lines) + b"\r\n")
        return defer.succeed(None)

    def connectionLost(self) -> None:
        pass


@implementer(smtp.IMessageDelivery)
class Server:
    """An SMTP server that records envelopes and messages; nobody@ does not exist."""

    def __init__(self) -> None:
        self.mail_from: List[str] = []
        self.rcpts: List[str] = []
        self.messages: List[bytes] = []
        self.refuse_data = False

    def receivedHeader(self, helo, origin, recipients):
        return None

    def validateFrom(self, helo, origin):
        self.mail_from.append(str(origin))
        return origin

    def validateTo(self, user):
        if user.dest.local == b"nobody":
            raise smtp.SMTPBadRcpt(user)
        self.rcpts.append(str(user.dest))
        return lambda: _Message(self)


class _Factory(smtp.SMTPFactory):
    protocol = smtp.ESMTP

    def __init__(self, delivery: Server) -> None:
        super().__init__()
        self.delivery = delivery
        self.closed: List[defer.Deferred] = []

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        p.delivery = self.delivery
        closed = defer.Deferred()
        self.closed.append(closed)
        lost = p.connectionLost

        def connectionLost(reason):
            lost(reason)
            closed.callback(None)

        p.connectionLost = connectionLost
        return p


class SmtpRelayTests(TestCase):
    """A real SMTP transaction over TCP on 127.0.0.1."""

    def setUp(self) -> None:
        self.server = Server()
        self.factory = _Factory(self.server)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(lambda: defer.gatherResults(self.factory.closed))
        self.relay = SmtpRelay(RelayConfig(host="127.0.0.1", port=self.port.getHost().port, tls="none"), reactor)

    @defer.inlineCallbacks
    def test_send(self) -> None:
        """The envelope and the Bcc-free bytes reach the server; each recipient gets its own reply."""
        replies = yield self.relay.send("bob@example.org", ["alice@example.net", "nobody@example.net",
                                                             "dave@example.net"], outgoing_message(MESSAGE))
        self.assertEqual(self.server.mail_from, ["bob@example.org"])
        self.assertEqual(self.server.rcpts, ["alice@example.net", "dave@example.net"])
        self.assertEqual(replies["alice@example.net"][0], 250)
        self.assertEqual(replies["nobody@example.net"][0], 550)
        # One message object per accepted recipient, the same bytes.
        self.assertEqual(len(self.server.messages), 2)
        received = self.server.messages[0]
        self.assertEqual(self.server.messages[1], received)
        self.assertNotIn(b"Bcc: dave", received)
        self.assertNotIn(b"erin", received)
        self.assertIn(b"Message-ID: <plans@example.org>\r\n", received)
        self.assertTrue(received.endswith(b"Bcc: this line is body text\r\nSee you.\r\n"))

    @defer.inlineCallbacks
    def test_null_sender(self) -> None:
        """An auto-reply goes from the null reverse-path, MAIL FROM:<> (RFC 3834 3.3)."""
        replies = yield self.relay.send("", ["alice@example.net"], b"Subject: auto\r\n\r\nx\r\n")
        self.assertEqual(replies["alice@example.net"][0], 250)
        self.assertEqual(self.server.mail_from, [""])

    @defer.inlineCallbacks
    def test_all_refused(self) -> None:
        """When no recipient is accepted each keeps its RCPT reply."""
        replies = yield self.relay.send("bob@example.org", ["nobody@example.net"], b"Subject: s\r\n\r\nx\r\n")
        self.assertEqual(replies["nobody@example.net"][0], 550)
        self.assertEqual(self.server.messages, [])

    @defer.inlineCallbacks
    def test_data_refused(self) -> None:
        """A message refused after DATA gives every accepted recipient the DATA reply."""
        self.server.refuse_data = True
        replies = yield self.relay.send("bob@example.org", ["alice@example.net", "dave@example.net"],
                                        b"Subject: s\r\n\r\nx\r\n")
        self.assertEqual({code for code, _ in replies.values()}, {550})
        self.flushLoggedErrors(Exception)

    @defer.inlineCallbacks
    def test_starttls_required(self) -> None:
        """With smtp-relay-tls starttls, a relay without STARTTLS gets nothing (a permanent 5xx, no plain text)."""
        from twisted.internet.ssl import optionsForClientTLS

        relay = SmtpRelay(RelayConfig(host="127.0.0.1", port=self.port.getHost().port, tls="starttls"), reactor,
                          client_tls=optionsForClientTLS("relay.example"))
        replies = yield relay.send("bob@example.org", ["alice@example.net"], b"Subject: s\r\n\r\nx\r\n")
        self.assertEqual(replies["alice@example.net"][0] // 100, 5)
        self.assertEqual(self.server.mail_from, [])

    @defer.inlineCallbacks
    def test_connection_refused(self) -> None:
        """An unreachable relay is a transient 451 4.4.1 for every recipient, with the error."""
        port = self.port.getHost().port
        yield self.port.stopListening()
        relay = SmtpRelay(RelayConfig(host="127.0.0.1", port=port, tls="none"), reactor)
        replies = yield relay.send("bob@example.org", ["alice@example.net", "dave@example.net"], b"x")
        self.assertEqual(set(replies), {"alice@example.net", "dave@example.net"})
        for code, text in replies.values():
            self.assertEqual(code, 451)
            self.assertTrue(text.startswith("4.4.1 Relay unreachable:"), text)
            self.assertIn("refused", text.lower())
        self.flushLoggedErrors()

    def test_non_ascii(self) -> None:
        """Without SMTPUTF8 a non-ASCII address is refused before connecting."""
        replies = self.successResultOf(self.relay.send("bob@example.org", ["jürgen@example.de"], b"x"))
        self.assertEqual(replies["jürgen@example.de"][0], 553)


class FromConfigTests(SynchronousTestCase):
    def test_secret_file(self) -> None:
        """smtp-relay-secret starting with / names a file holding user:password, read at start."""
        from stalwart.mail.relay import relay_from_config
        from stalwart.service.config import ServerConfig
        from stalwart.service.errors import ConfigError

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("relay-user:s3cret\n")
        import os

        path = os.path.abspath(path)
        config = ServerConfig(smtp_relay_host="relay.example.com", smtp_relay_port=465, smtp_relay_tls="tls",
                              smtp_relay_auth="login", smtp_relay_secret=path)
        relay = relay_from_config(config, reactor)
        self.assertEqual((relay.config.username, relay.config.password, relay.config.port, relay.config.tls),
                         ("relay-user", "s3cret", 465, "tls"))
        inline = ServerConfig(smtp_relay_host="relay.example.com", smtp_relay_auth="plain",
                              smtp_relay_secret="u:p")
        self.assertEqual(relay_from_config(inline, reactor).config.username, "u")
        missing = ServerConfig(smtp_relay_host="relay.example.com", smtp_relay_auth="plain",
                               smtp_relay_secret=path + ".missing")
        self.assertRaises(ConfigError, relay_from_config, missing, reactor)
        self.assertIsInstance(relay_from_config(ServerConfig(), reactor), NoRelay)
