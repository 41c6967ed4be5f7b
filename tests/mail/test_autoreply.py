"""
Tests for L{stalwart.mail.autoreply}: the RFC 3834 rules, the reply
message, and the once-per-sender-per-period record kept in the log.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from typing import Dict, List

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.capabilities import CORE, VACATION
from stalwart.mail.autoreply import PERIOD_SECONDS, AutoReplier, build_reply, exclusion, read_headers
from stalwart.mail.delivery import Envelope, build_delivery
from stalwart.mail.extension import mail_extension
from stalwart.mail.relay import NoRelay
from tests.jmap.harness import LiveNode

OWN = ["bob@example.org", "robert@example.org"]


def incoming(sender: str = "alice@example.net", to: str = "Bob <bob@example.org>", extra: str = "",
             subject: str = "Lunch", message_id: str = "m1@example.net") -> bytes:
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{message_id}>",
               "References: <m0@example.net>"]
    if extra:
        headers.append(extra)
    return ("\r\n".join(headers) + "\r\n\r\nHello\r\n").encode()


class ExclusionTests(SynchronousTestCase):
    def why(self, sender: str = "alice@example.net", **kwargs):
        return exclusion(sender, read_headers(incoming(**kwargs)), OWN)

    def test_personal_mail_answered(self) -> None:
        """Mail addressed to the account in To or Cc, subaddress or case aside, may be answered."""
        self.assertIsNone(self.why())
        self.assertIsNone(self.why(to="BOB+lists@Example.org"))
        self.assertIsNone(self.why(to="x@example.com", extra="Cc: robert@example.org"))
        self.assertIsNone(self.why(extra="Auto-Submitted: no"))

    def test_exclusions(self) -> None:
        """Each RFC 3834 exclusion, and mail not addressed to the account (3.1.1), gets no reply."""
        table = [
            ({"sender": ""}, "null sender"),
            ({"sender": "Bob+x@example.org"}, "own address"),
            ({"sender": "MAILER-DAEMON@example.net"}, "automated sender"),
            ({"sender": "owner-list@example.net"}, "automated sender"),
            ({"sender": "list-request@example.net"}, "automated sender"),
            ({"extra": "Auto-Submitted: auto-replied"}, "auto-submitted"),
            ({"extra": "Auto-Submitted: auto-generated; owner-email=x@example.net"}, "auto-submitted"),
            ({"extra": "List-Id: <team.example.net>"}, "mailing list"),
            ({"extra": "List-Unsubscribe: <mailto:u@example.net>"}, "mailing list"),
            ({"extra": "Precedence: bulk"}, "bulk"),
            ({"extra": "Precedence: list"}, "bulk"),
            ({"extra": "Precedence: JUNK"}, "bulk"),
            ({"to": "team@example.net"}, "not addressed in To or Cc"),
        ]
        for kwargs, reason in table:
            self.assertEqual(self.why(**kwargs), reason, kwargs)


class BuildReplyTests(SynchronousTestCase):
    def test_reply(self) -> None:
        """The reply is auto-replied, threads with the original, and has a Message-ID from its log index."""
        raw = build_reply("bob@example.org", "alice@example.net", read_headers(incoming()),
                          {"index": 42, "subject": None, "textBody": "Away until Monday.", "htmlBody": None},
                          1_700_000_000)
        message = message_from_bytes(raw, policy=default)
        self.assertEqual(message["Auto-Submitted"], "auto-replied")
        self.assertEqual(message["To"], "alice@example.net")
        self.assertEqual(message["From"], "bob@example.org")
        self.assertEqual(message["Subject"], "Auto: Lunch")
        self.assertEqual(message["In-Reply-To"], "<m1@example.net>")
        self.assertEqual(message["References"], "<m0@example.net> <m1@example.net>")
        self.assertEqual(message["Message-ID"], "<vacation.42@example.org>")
        self.assertEqual(message.get_content().strip(), "Away until Monday.")

    def test_html(self) -> None:
        """With an htmlBody the reply is multipart/alternative, its text derived when none is given."""
        raw = build_reply("bob@example.org", "alice@example.net", read_headers(incoming()),
                          {"index": 1, "subject": "Away", "textBody": None, "htmlBody": "<p>Away</p>"}, 0)
        message = message_from_bytes(raw, policy=default)
        self.assertEqual(message["Subject"], "Away")
        self.assertEqual(message.get_content_type(), "multipart/alternative")
        self.assertIn("Away", message.get_body(("plain",)).get_content())


class Driver:
    def __init__(self, real) -> None:
        self._real = real
        self.is_leader = True

    def on_applied(self, listener) -> None:
        self._real.on_applied(listener)


class Relay:
    def __init__(self) -> None:
        self.sent: List = []

    def send(self, mail_from, rcpts, message):
        self.sent.append((mail_from, list(rcpts), message))
        return succeed({r: (250, "2.0.0 OK") for r in rcpts})


class AutoReplierTests(SynchronousTestCase):
    """Replies go out from the leader, at most once per sender per period, decided in the log."""

    def setUp(self) -> None:
        self.live = LiveNode(self, extensions=[mail_extension()])
        self.live.service.getServiceNamed("outbox").stopService()
        self.account = self.live.quick_account("bob@example.org")
        self.relay = Relay()
        node = self.live.node
        self.driver = Driver(node.raft.driver)
        self.replier = AutoReplier(self.live.clock, self.driver, node.propose, node.reader, self.relay)
        self.replier.start()
        self.addCleanup(self.replier.stop)
        self.time = 1_700_000_000

    def vacation(self, **patch) -> None:
        calls = [["VacationResponse/set", {"accountId": self.account, "update": {"singleton": patch}}, "c0"]]
        response = self.live.process(self.account, calls, using=[CORE, VACATION])["methodResponses"]
        self.assertEqual(response[0][1]["updated"], {"singleton": None}, response)

    def deliver(self, raw: bytes = None, sender: str = "alice@example.net", after: float = 0) -> Dict:
        self.time += after
        self.count = getattr(self, "count", 0) + 1
        # A distinct Message-ID each time: delivery suppresses MTA retries by it.
        raw = (raw or incoming(sender or "alice@example.net")).replace(
            b"<m1@example.net>", f"<m{self.count}@example.net>".encode())
        envelope = Envelope(sender=sender, helo="mx.example.net", peer="192.0.2.1", host="mail.example.org")
        command = build_delivery(envelope, [{"rcpt": "bob@example.org", "account": self.account}],
                                 raw, self.time)
        result = self.successResultOf(self.live.node.propose(command))
        self.assertEqual(result["recipients"][0]["status"], "delivered")
        return result

    def test_once_per_sender_per_period(self) -> None:
        """The first message of a sender is answered from <>; more within 7 days are not; later ones are."""
        self.vacation(isEnabled=True, textBody="Away.")
        self.deliver()
        (reply,) = self.relay.sent
        self.assertEqual(reply[:2], ("", ["alice@example.net"]))
        self.assertIn(b"Auto-Submitted: auto-replied", reply[2])
        self.deliver(after=3600)
        self.deliver(raw=incoming("ALICE@example.net"), sender="ALICE@example.net", after=3600)
        self.assertEqual(len(self.relay.sent), 1)
        self.deliver(raw=incoming("carol@example.net"), sender="carol@example.net")
        self.assertEqual(len(self.relay.sent), 2)
        self.deliver(after=PERIOD_SECONDS)
        self.assertEqual(len(self.relay.sent), 3)

    def test_disabled(self) -> None:
        """With the VacationResponse off nothing is proposed or sent."""
        self.deliver()
        self.assertEqual(self.relay.sent, [])
        conn = self.live.node.store.state_machine._conn
        self.assertEqual(conn.execute("SELECT COUNT(*) FROM vacation_replies").fetchone(), (0,))

    def test_dates(self) -> None:
        """Outside fromDate..toDate (judged at the delivery's time) there is no reply."""
        self.vacation(isEnabled=True, fromDate="2030-01-01T00:00:00Z")
        self.deliver()
        self.vacation(fromDate=None, toDate="2020-01-01T00:00:00Z")
        self.deliver()
        self.assertEqual(self.relay.sent, [])

    def test_excluded(self) -> None:
        """A list message, or a bounce from <>, is not answered."""
        self.vacation(isEnabled=True)
        self.deliver(raw=incoming(extra="List-Id: <team.example.net>"))
        self.deliver(sender="")
        self.assertEqual(self.relay.sent, [])

    def test_leader_only(self) -> None:
        """A follower sends no auto-reply."""
        self.vacation(isEnabled=True)
        self.driver.is_leader = False
        self.deliver()
        self.assertEqual(self.relay.sent, [])

    def test_no_relay(self) -> None:
        """Without smtp-relay-host no reply is attempted (nor recorded)."""
        self.vacation(isEnabled=True)
        self.replier.stop()
        replier = AutoReplier(self.live.clock, self.driver, self.live.node.propose, self.live.node.reader, NoRelay())
        replier.start()
        self.addCleanup(replier.stop)
        self.deliver()
        conn = self.live.node.store.state_machine._conn
        self.assertEqual(conn.execute("SELECT COUNT(*) FROM vacation_replies").fetchone(), (0,))
