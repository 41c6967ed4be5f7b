"""
Tests for L{stalwart.mail.submission} (EmailSubmission, RFC 8621 section
7) and L{stalwart.mail.outbox} (the send, once, from the leader), on an
in-process node.
"""

from __future__ import annotations

import json
from typing import Dict, List

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import ENTRY_NOOP, Entry
from stalwart.jmap.capabilities import CORE, MAIL, SUBMISSION
from stalwart.jmap.methods.blob import UPLOAD_COMMAND
from stalwart.mail.extension import mail_extension
from stalwart.mail.outbox import Outbox
from stalwart.mail.relay import NoRelay
from stalwart.mail.submission import CLAIM_COMMAND, OUTCOME_COMMAND
from stalwart.store.commands import Command
from tests.jmap.harness import LiveNode

USING = [CORE, MAIL, SUBMISSION]


def draft(subject: str = "Plans", sender: str = "Bob <bob@example.org>", to: str = "Alice <alice@example.net>",
          cc: str = "", bcc: str = "", extra: str = "", message_id: str = "") -> bytes:
    headers = [f"From: {sender}", f"Subject: {subject}", "Date: Tue, 24 Nov 2026 10:00:00 +0100",
               f"Message-ID: <{message_id or subject.lower()}@example.org>"]
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if value:
            headers.append(f"{name}: {value}")
    if extra:
        headers.append(extra)
    return ("\r\n".join(headers) + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee you.\r\n").encode()


class SubmissionNode:
    """A node with the mail extension, one account (bob@example.org), and its outbox stopped."""

    def __init__(self, case: SynchronousTestCase, extension=None) -> None:
        self.case = case
        self.live = LiveNode(case, extensions=[extension or mail_extension()])
        self.live.service.getServiceNamed("outbox").stopService()
        self.account = self.live.quick_account("bob@example.org")
        self.mailbox = {m["role"]: m["id"] for m in self.call("Mailbox/get", {"ids": None})[1]["list"]}
        self.identity = self.call("Identity/get", {"ids": None})[1]["list"][0]["id"]

    def process(self, calls) -> List:
        calls = [[name, {"accountId": self.account, **args}, f"c{n}"] for n, (name, args) in enumerate(calls)]
        return self.live.process(self.account, calls, using=USING)["methodResponses"]

    def call(self, name: str, arguments: Dict):
        responses = self.process([(name, arguments)])
        assert len(responses) == 1, responses
        return responses[0][0], responses[0][1]

    def add(self, raw: bytes, keywords=None) -> Dict:
        blob = self.case.successResultOf(self.live.node.propose(Command(
            kind=UPLOAD_COMMAND, args={"account": self.account, "type": "message/rfc822", "now": self.live.node.now()},
            body=raw)))["blobId"]
        _, result = self.call("Email/import", {"emails": {"k": {
            "blobId": blob, "mailboxIds": {self.mailbox["drafts"]: True}, "keywords": keywords or {"$draft": True}}}})
        return result["created"]["k"]

    def submit(self, email_id: str, **extra) -> Dict:
        _, result = self.call("EmailSubmission/set", {"create": {"s": {
            "identityId": self.identity, "emailId": email_id, **extra}}})
        return result

    def created(self, email_id: str, **extra) -> Dict:
        result = self.submit(email_id, **extra)
        self.case.assertIsNone(result["notCreated"], result)
        return result["created"]["s"]

    def get(self, submission_id: str) -> Dict:
        _, result = self.call("EmailSubmission/get", {"ids": [submission_id]})
        return result["list"][0]

    def queue(self) -> List:
        conn = self.live.node.store.state_machine._conn
        return conn.execute("SELECT id, mail_from, rcpt_to, attempts, not_before, claimed FROM submission_queue"
                            " ORDER BY rowid").fetchall()


class CreateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = SubmissionNode(self)

    def test_derived_envelope(self) -> None:
        """Without an envelope, mailFrom is the From address and rcptTo the deduplicated To, Cc and Bcc (RFC 8621 7.5)."""
        email = self.node.add(draft(to="Alice <alice@example.net>, carol@example.net",
                                    cc="ALICE@example.net", bcc="dave@example.net"))
        created = self.node.created(email["id"])
        self.assertEqual(created["undoStatus"], "pending")
        self.assertEqual(created["threadId"], email["threadId"])
        self.assertEqual(created["envelope"], {
            "mailFrom": {"email": "bob@example.org", "parameters": None},
            "rcptTo": [{"email": r, "parameters": None} for r in
                       ("alice@example.net", "carol@example.net", "dave@example.net")]})
        got = self.node.get(created["id"])
        self.assertEqual((got["emailId"], got["identityId"]), (email["id"], self.node.identity))
        self.assertEqual(got["sendAt"], self.node.live.node.now())
        self.assertEqual(got["deliveryStatus"]["dave@example.net"]["delivered"], "queued")
        self.assertEqual(self.node.queue()[0][1:3], ("bob@example.org", json.dumps(
            ["alice@example.net", "carol@example.net", "dave@example.net"])))

    def test_sender_header_and_foreign_sender(self) -> None:
        """mailFrom comes from Sender when present; an address the Identity does not allow is replaced by its email."""
        email = self.node.add(draft(extra="Sender: someone@elsewhere.example"))
        self.assertEqual(self.node.created(email["id"])["envelope"]["mailFrom"]["email"], "bob@example.org")

    def test_explicit_envelope(self) -> None:
        """A given envelope is used as it is: the Bcc-free message may go to other addresses (redirect)."""
        email = self.node.add(draft())
        envelope = {"mailFrom": {"email": "bob@example.org", "parameters": None},
                    "rcptTo": [{"email": "eve@example.com", "parameters": None}]}
        created = self.node.created(email["id"], envelope=envelope)
        self.assertNotIn("envelope", created)
        self.assertEqual(self.node.get(created["id"])["envelope"], envelope)

    def assertRefused(self, result: Dict, kind: str) -> Dict:
        self.assertIsNone(result["created"], result)
        error = result["notCreated"]["s"]
        self.assertEqual(error["type"], kind, error)
        self.assertEqual(self.node.queue(), [])
        return error

    def test_unknown_identity_and_email(self) -> None:
        """An unknown identityId or emailId is invalidProperties naming it (RFC 8621 7.5)."""
        email = self.node.add(draft())
        error = self.assertRefused(self.node.submit(email["id"], identityId="Inope"), "invalidProperties")
        self.assertEqual(error["properties"], ["identityId"])
        error = self.assertRefused(self.node.submit("Mnope"), "invalidProperties")
        self.assertEqual(error["properties"], ["emailId"])

    def test_forbidden_from(self) -> None:
        """A From address other than the Identity's is forbiddenFrom."""
        email = self.node.add(draft(sender="Mallory <mallory@example.org>"))
        self.assertRefused(self.node.submit(email["id"]), "forbiddenFrom")

    def test_forbidden_mail_from(self) -> None:
        """An envelope mailFrom other than the Identity's address is forbiddenMailFrom."""
        email = self.node.add(draft())
        envelope = {"mailFrom": {"email": "boss@example.org", "parameters": None},
                    "rcptTo": [{"email": "alice@example.net", "parameters": None}]}
        self.assertRefused(self.node.submit(email["id"], envelope=envelope), "forbiddenMailFrom")

    def test_no_recipients(self) -> None:
        """No To, Cc or Bcc, or an empty rcptTo, is noRecipients."""
        email = self.node.add(draft(to=""))
        self.assertRefused(self.node.submit(email["id"]), "noRecipients")
        envelope = {"mailFrom": {"email": "bob@example.org", "parameters": None}, "rcptTo": []}
        email = self.node.add(draft(subject="Other"))
        self.assertRefused(self.node.submit(email["id"], envelope=envelope), "noRecipients")

    def test_invalid_recipients(self) -> None:
        """rcptTo values that are not addresses are listed in invalidRecipients."""
        email = self.node.add(draft())
        envelope = {"mailFrom": {"email": "bob@example.org", "parameters": None},
                    "rcptTo": [{"email": "alice@example.net", "parameters": None},
                               {"email": "not an address", "parameters": None}, {"email": "x@y", "parameters": None}]}
        error = self.assertRefused(self.node.submit(email["id"], envelope=envelope), "invalidRecipients")
        self.assertEqual(error["invalidRecipients"], ["not an address", "x@y"])

    def test_too_many_recipients(self) -> None:
        """More than 100 recipients is tooManyRecipients with maxRecipients."""
        email = self.node.add(draft())
        envelope = {"mailFrom": {"email": "bob@example.org", "parameters": None},
                    "rcptTo": [{"email": f"r{n}@example.net", "parameters": None} for n in range(101)]}
        error = self.assertRefused(self.node.submit(email["id"], envelope=envelope), "tooManyRecipients")
        self.assertEqual(error["maxRecipients"], 100)

    def test_invalid_email(self) -> None:
        """Two From addresses (or none) make the Email invalid: invalidEmail naming from."""
        email = self.node.add(draft(sender="bob@example.org, alice@example.net"))
        error = self.assertRefused(self.node.submit(email["id"]), "invalidEmail")
        self.assertEqual(error["properties"], ["from"])

    def test_bad_properties(self) -> None:
        """Server-set properties, SMTP parameters and a non-pending undoStatus are invalidProperties."""
        email = self.node.add(draft())
        self.assertRefused(self.node.submit(email["id"], threadId="T1"), "invalidProperties")
        self.assertRefused(self.node.submit(email["id"], undoStatus="final"), "invalidProperties")
        envelope = {"mailFrom": {"email": "bob@example.org", "parameters": {"RET": "HDRS"}},
                    "rcptTo": [{"email": "alice@example.net", "parameters": None}]}
        self.assertRefused(self.node.submit(email["id"], envelope=envelope), "invalidProperties")

    def test_too_large(self) -> None:
        """A message larger than mail-max-size is tooLarge with maxSize (RFC 8621 7.5)."""
        from stalwart.mail.submission import SubmissionLimits

        extension = mail_extension()
        # Import accepts up to mail-max-size too: only the send limit is lowered here.
        extension.writes["EmailSubmission/set"].__self__.limits = SubmissionLimits(message_bytes_max=200)
        node = SubmissionNode(self, extension)
        email = node.add(draft(extra="X-Padding: " + "x" * 200))
        result = node.submit(email["id"])
        self.assertEqual(result["notCreated"]["s"]["type"], "tooLarge")
        self.assertEqual(result["notCreated"]["s"]["maxSize"], 200)

    def test_creation_reference_to_email(self) -> None:
        """An Email created earlier in the request is named by "#creationId"."""
        responses = self.node.process([
            ("Email/set", {"create": {"d": {"mailboxIds": {self.node.mailbox["drafts"]: True},
                                            "from": [{"email": "bob@example.org"}],
                                            "to": [{"email": "alice@example.net"}], "subject": "Hi",
                                            "bodyValues": {"1": {"value": "Hello"}},
                                            "textBody": [{"partId": "1", "type": "text/plain"}]}}}),
            ("EmailSubmission/set", {"create": {"s": {"identityId": self.node.identity, "emailId": "#d"}}}),
        ])
        email_id = responses[0][1]["created"]["d"]["id"]
        self.assertEqual(self.node.get(responses[1][1]["created"]["s"]["id"])["emailId"], email_id)


class OnSuccessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = SubmissionNode(self)

    def test_update_email(self) -> None:
        """onSuccessUpdateEmail with "#creationId" runs one implicit Email/set, answered after (RFC 8621 7.5)."""
        email = self.node.add(draft())
        drafts, sent = self.node.mailbox["drafts"], self.node.mailbox["sent"]
        responses = self.node.process([("EmailSubmission/set", {
            "create": {"s": {"identityId": self.node.identity, "emailId": email["id"]}},
            "onSuccessUpdateEmail": {"#s": {f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True,
                                            "keywords/$draft": None}}})])
        self.assertEqual([(name, call_id) for name, _, call_id in responses],
                         [("EmailSubmission/set", "c0"), ("Email/set", "c0")])
        self.assertEqual(responses[1][1]["updated"], {email["id"]: None})
        _, got = self.node.call("Email/get", {"ids": [email["id"]], "properties": ["mailboxIds", "keywords"]})
        self.assertEqual(got["list"][0]["mailboxIds"], {sent: True})
        self.assertEqual(got["list"][0]["keywords"], {})

    def test_destroy_email(self) -> None:
        """onSuccessDestroyEmail destroys the Email; the submission (and its delivery) stays."""
        email = self.node.add(draft())
        responses = self.node.process([("EmailSubmission/set", {
            "create": {"s": {"identityId": self.node.identity, "emailId": email["id"]}},
            "onSuccessDestroyEmail": ["#s"]})])
        self.assertEqual(responses[1][1]["destroyed"], [email["id"]])
        submission = responses[0][1]["created"]["s"]["id"]
        self.assertEqual(self.node.get(submission)["emailId"], email["id"])
        self.assertEqual(len(self.node.queue()), 1)

    def test_not_after_failure(self) -> None:
        """A failed create changes no Email: no implicit Email/set."""
        email = self.node.add(draft(sender="mallory@example.org"))
        responses = self.node.process([("EmailSubmission/set", {
            "create": {"s": {"identityId": self.node.identity, "emailId": email["id"]}},
            "onSuccessDestroyEmail": ["#s"]})])
        self.assertEqual([r[0] for r in responses], ["EmailSubmission/set"])

    def test_bad_arguments(self) -> None:
        """onSuccessUpdateEmail must map ids to patches; onSuccessDestroyEmail must list ids."""
        for arguments in ({"onSuccessUpdateEmail": ["x"]}, {"onSuccessDestroyEmail": {"x": 1}},
                          {"onSuccessUpdateEmail": {"#s": 3}}):
            name, error = self.node.call("EmailSubmission/set", arguments)
            self.assertEqual((name, error["type"]), ("error", "invalidArguments"), arguments)


class UpdateDestroyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = SubmissionNode(self)
        self.submission = self.node.created(self.node.add(draft())["id"])["id"]

    def update(self, patch: Dict) -> Dict:
        return self.node.call("EmailSubmission/set", {"update": {self.submission: patch}})[1]

    def test_cancel_pending(self) -> None:
        """A pending submission can be canceled: it leaves the queue and is never claimed (RFC 8621 7)."""
        result = self.update({"undoStatus": "canceled"})
        self.assertEqual(result["updated"], {self.submission: None})
        self.assertEqual(self.node.get(self.submission)["undoStatus"], "canceled")
        self.assertEqual(self.node.queue(), [])
        claim = self.successResultOf(self.node.live.node.propose(Command(
            kind=CLAIM_COMMAND, args={"account": self.node.account, "id": self.submission})))
        self.assertEqual(claim, {"claimed": False})

    def test_cannot_unsend_once_claimed(self) -> None:
        """Once the leader claimed it for sending, canceling is cannotUnsend."""
        self.successResultOf(self.node.live.node.propose(Command(
            kind=CLAIM_COMMAND, args={"account": self.node.account, "id": self.submission})))
        result = self.update({"undoStatus": "canceled"})
        self.assertEqual(result["notUpdated"][self.submission]["type"], "cannotUnsend")
        self.assertEqual(self.node.get(self.submission)["undoStatus"], "pending")

    def test_other_updates(self) -> None:
        """undoStatus may only become canceled; immutable properties do not change."""
        for patch in ({"undoStatus": "final"}, {"emailId": "M1"}, {"deliveryStatus": None}):
            result = self.update(patch)
            self.assertIsNotNone(result["notUpdated"], patch)
            self.assertEqual(result["notUpdated"][self.submission]["type"], "invalidProperties", patch)

    def test_destroy_keeps_delivery(self) -> None:
        """Destroying the record does not cancel the delivery (RFC 8621 7.5)."""
        _, result = self.node.call("EmailSubmission/set", {"destroy": [self.submission]})
        self.assertEqual(result["destroyed"], [self.submission])
        self.assertEqual(len(self.node.queue()), 1)
        _, result = self.node.call("EmailSubmission/get", {"ids": [self.submission]})
        self.assertEqual(result["notFound"], [self.submission])


class QueryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = SubmissionNode(self)
        self.emails = [self.node.add(draft(subject=s)) for s in ("One", "Two", "Three")]
        self.subs = []
        for email in self.emails:
            self.subs.append(self.node.created(email["id"])["id"])
            self.node.live.advance(60)
        self.update = self.node.call("EmailSubmission/set", {"update": {self.subs[1]: {"undoStatus": "canceled"}}})

    def query(self, **arguments) -> List[str]:
        name, result = self.node.call("EmailSubmission/query", arguments)
        self.assertEqual(name, "EmailSubmission/query", result)
        return result["ids"]

    def test_filters(self) -> None:
        """Each FilterCondition property of RFC 8621 7.3 selects as specified."""
        s, e = self.subs, self.emails
        self.assertEqual(self.query(filter={"emailIds": [e[0]["id"], e[2]["id"]]}), [s[0], s[2]])
        self.assertEqual(self.query(filter={"threadIds": [e[1]["threadId"]]}), [s[1]])
        self.assertEqual(self.query(filter={"identityIds": [self.node.identity]}), s)
        self.assertEqual(self.query(filter={"identityIds": ["Inope"]}), [])
        self.assertEqual(self.query(filter={"undoStatus": "canceled"}), [s[1]])
        second = self.node.get(s[1])["sendAt"]
        self.assertEqual(self.query(filter={"before": second}), [s[0]])
        self.assertEqual(self.query(filter={"after": second}), [s[1], s[2]])
        self.assertEqual(self.query(filter={"operator": "NOT", "conditions": [{"undoStatus": "pending"}]}), [s[1]])

    def test_bad_filters(self) -> None:
        """An unknown condition is unsupportedFilter; a bad date invalidArguments."""
        name, error = self.node.call("EmailSubmission/query", {"filter": {"subject": "x"}})
        self.assertEqual(error["type"], "unsupportedFilter")
        name, error = self.node.call("EmailSubmission/query", {"filter": {"before": "yesterday"}})
        self.assertEqual(error["type"], "invalidArguments")

    def test_sorts(self) -> None:
        """emailId, threadId and sentAt sort (RFC 8621 7.3); others are unsupportedSort."""
        self.assertEqual(self.query(sort=[{"property": "sentAt", "isAscending": False}]), self.subs[::-1])
        by_email = sorted(zip([e["id"] for e in self.emails], self.subs))
        self.assertEqual(self.query(sort=[{"property": "emailId"}]), [s for _, s in by_email])
        by_thread = sorted(zip([e["threadId"] for e in self.emails], self.subs))
        self.assertEqual(self.query(sort=[{"property": "threadId", "isAscending": False}]),
                         [s for _, s in by_thread[::-1]])
        name, error = self.node.call("EmailSubmission/query", {"sort": [{"property": "undoStatus"}]})
        self.assertEqual(error["type"], "unsupportedSort")

    def test_changes_and_query_changes(self) -> None:
        """/changes and /queryChanges follow creates and updates."""
        _, first = self.node.call("EmailSubmission/query", {"filter": {"undoStatus": "pending"}})
        self.node.call("EmailSubmission/set", {"update": {self.subs[0]: {"undoStatus": "canceled"}}})
        _, changes = self.node.call("EmailSubmission/changes", {"sinceState": first["queryState"]})
        self.assertEqual(changes["updated"], [self.subs[0]])
        _, result = self.node.call("EmailSubmission/queryChanges", {
            "filter": {"undoStatus": "pending"}, "sinceQueryState": first["queryState"]})
        self.assertEqual(result["removed"], [self.subs[0]])
        self.assertEqual(result["added"], [])


class Driver:
    """The node's Raft driver, with leadership decided by the test."""

    def __init__(self, real) -> None:
        self._real = real
        self.is_leader = False

    def on_applied(self, listener) -> None:
        self._real.on_applied(listener)


class Relay:
    """A relay whose answers the test gives."""

    def __init__(self) -> None:
        self.sent: List = []

    def send(self, mail_from, rcpts, message) -> Deferred:
        d = Deferred()
        self.sent.append((mail_from, list(rcpts), message, d))
        return d


class OutboxTests(SynchronousTestCase):
    """The send happens once, on the leader, after the commit (RFC 8621 7.5)."""

    def setUp(self) -> None:
        self.node = SubmissionNode(self)
        self.relay = Relay()
        self.driver = Driver(self.node.live.node.raft.driver)
        self.outbox = self.make_outbox(self.driver, self.relay)

    def make_outbox(self, driver, relay) -> Outbox:
        node = self.node.live.node
        outbox = Outbox(self.node.live.clock, driver, node.propose, node.reader, node.blobs, relay)
        outbox.start()
        self.addCleanup(outbox.stop)
        return outbox

    def become_leader(self, outbox: Outbox, driver: Driver) -> None:
        driver.is_leader = True
        outbox.applied(Entry(term=2, index=0, kind=ENTRY_NOOP), None)

    def submit(self, **headers) -> str:
        return self.node.created(self.node.add(draft(**headers))["id"])["id"]

    def test_only_leader_sends_once(self) -> None:
        """A follower sends nothing; the leader sends each committed submission once, Bcc removed."""
        submission = self.submit(bcc="dave@example.net")
        self.node.live.advance(120)
        self.assertEqual(self.relay.sent, [])
        self.become_leader(self.outbox, self.driver)
        self.assertEqual(len(self.relay.sent), 1)
        mail_from, rcpts, message, _ = self.relay.sent[0]
        self.assertEqual((mail_from, rcpts), ("bob@example.org", ["alice@example.net", "dave@example.net"]))
        self.assertNotIn(b"Bcc", message)
        self.assertIn(b"Message-ID: <plans@example.org>\r\n", message)
        # More scans and applied entries while it is in flight: no second send.
        self.node.live.advance(120)
        self.become_leader(self.outbox, self.driver)
        self.assertEqual(len(self.relay.sent), 1)
        self.relay.sent[0][3].callback({"alice@example.net": (250, "2.1.5 OK"),
                                        "dave@example.net": (550, "5.1.1 No such user\nhere")})
        got = self.node.get(submission)
        self.assertEqual(got["undoStatus"], "final")
        self.assertEqual(got["deliveryStatus"], {
            "alice@example.net": {"smtpReply": "250 2.1.5 OK", "delivered": "unknown", "displayed": "unknown"},
            "dave@example.net": {"smtpReply": "550 5.1.1 No such user here", "delivered": "no",
                                 "displayed": "unknown"}})
        self.assertEqual(self.node.queue(), [])
        self.node.live.advance(120)
        self.become_leader(self.outbox, self.driver)
        self.assertEqual(len(self.relay.sent), 1)

    def test_new_submission_sent_at_once(self) -> None:
        """On the leader, a submission is sent as soon as its create is applied."""
        self.become_leader(self.outbox, self.driver)
        self.submit()
        self.assertEqual(len(self.relay.sent), 1)

    def test_canceled_not_sent(self) -> None:
        """A submission canceled before the leader claims it is never sent."""
        submission = self.submit()
        self.node.call("EmailSubmission/set", {"update": {submission: {"undoStatus": "canceled"}}})
        self.become_leader(self.outbox, self.driver)
        self.assertEqual(self.relay.sent, [])

    def test_takeover_sends_again(self) -> None:
        """
        A leader deposed after claiming and before recording leaves the row
        claimed; the next leader sends it again (the at-least-once edge, same
        Message-ID), and the old leader's late outcome changes nothing.
        """
        submission = self.submit()
        self.become_leader(self.outbox, self.driver)
        self.driver.is_leader = False
        relay, driver = Relay(), Driver(self.node.live.node.raft.driver)
        self.become_leader(self.make_outbox(driver, relay), driver)
        driver_outbox_sent = relay.sent
        self.assertEqual(len(driver_outbox_sent), 1)
        self.assertEqual(driver_outbox_sent[0][2], self.relay.sent[0][2])
        driver_outbox_sent[0][3].callback({"alice@example.net": (250, "2.0.0 new leader")})
        self.assertEqual(self.node.get(submission)["deliveryStatus"]["alice@example.net"]["smtpReply"],
                         "250 2.0.0 new leader")
        self.relay.sent[0][3].callback({"alice@example.net": (250, "2.0.0 old leader")})
        self.assertEqual(self.node.get(submission)["deliveryStatus"]["alice@example.net"]["smtpReply"],
                         "250 2.0.0 new leader")

    def test_deposed_before_claim_applied(self) -> None:
        """A claim whose result reaches a node that is no longer leader sends nothing from it."""
        self.submit()
        self.driver.is_leader = True
        propose = self.outbox._propose

        def deposed(command):
            self.driver.is_leader = False
            return propose(command)

        self.outbox._propose = deposed
        self.outbox.scan()
        self.assertEqual(self.relay.sent, [])

    def test_retry_transient(self) -> None:
        """A 4xx recipient stays queued and is retried alone after the delay; undoStatus is final once one was accepted."""
        submission = self.submit(cc="carol@example.net")
        self.become_leader(self.outbox, self.driver)
        self.relay.sent[0][3].callback({"alice@example.net": (250, "2.1.5 OK"),
                                        "carol@example.net": (451, "4.7.1 Greylisted")})
        got = self.node.get(submission)
        self.assertEqual(got["undoStatus"], "final")
        self.assertEqual(got["deliveryStatus"]["carol@example.net"]["delivered"], "queued")
        (row,) = self.node.queue()
        self.assertEqual((json.loads(row[2]), row[3], row[5]), (["carol@example.net"], 1, 0))
        self.node.live.advance(30)
        self.assertEqual(len(self.relay.sent), 1)
        self.node.live.advance(60)
        self.assertEqual(len(self.relay.sent), 2)
        self.assertEqual(self.relay.sent[1][1], ["carol@example.net"])
        self.relay.sent[1][3].callback({"carol@example.net": (250, "2.1.5 OK")})
        self.assertEqual(self.node.get(submission)["deliveryStatus"]["carol@example.net"]["delivered"], "unknown")
        self.assertEqual(self.node.queue(), [])

    def test_relay_unreachable_until_given_up(self) -> None:
        """An unreachable relay is retried on the schedule, then every recipient is delivered "no"."""
        submission = self.submit()
        self.become_leader(self.outbox, self.driver)
        for attempt in range(5):
            self.assertEqual(len(self.relay.sent), attempt + 1)
            self.relay.sent[-1][3].callback({"alice@example.net": (451, "4.4.1 Relay unreachable: refused")})
            got = self.node.get(submission)
            self.assertEqual(got["undoStatus"], "pending" if attempt < 4 else "final")
            self.node.live.advance(14400 + 30)
        self.assertEqual(len(self.relay.sent), 5)
        self.assertEqual(got["deliveryStatus"]["alice@example.net"],
                         {"smtpReply": "451 4.4.1 Relay unreachable: refused", "delivered": "no", "displayed": "unknown"})

    def test_no_relay(self) -> None:
        """Without smtp-relay-host every submission fails at once with a clear deliveryStatus."""
        self.outbox.stop()
        driver = Driver(self.node.live.node.raft.driver)
        self.make_outbox(driver, NoRelay())
        self.become_leader(self.outbox, driver)
        submission = self.submit()
        got = self.node.get(submission)
        self.assertEqual(got["undoStatus"], "final")
        self.assertEqual(got["deliveryStatus"]["alice@example.net"]["smtpReply"],
                         "554 5.3.5 No SMTP relay is configured (smtp-relay-host)")
        self.assertEqual(got["deliveryStatus"]["alice@example.net"]["delivered"], "no")

    def test_outcome_needs_claim(self) -> None:
        """An outcome for a row nobody claimed (or already finished) is ignored."""
        submission = self.submit()
        result = self.successResultOf(self.node.live.node.propose(Command(kind=OUTCOME_COMMAND, args={
            "account": self.node.account, "id": submission, "statuses": {}, "retry": [], "retryAt": None})))
        self.assertEqual(result, {"recorded": False})
        self.assertEqual(len(self.node.queue()), 1)


class ServiceTests(SynchronousTestCase):
    def test_node_sends_without_relay(self) -> None:
        """A node built without smtp-relay-host has an outbox that fails submissions clearly."""
        live = LiveNode(self, extensions=[mail_extension()])
        self.assertIsNotNone(live.service.getServiceNamed("outbox").outbox)
        account = live.quick_account("bob@example.org")
        node = SubmissionNode.__new__(SubmissionNode)
        node.case, node.live, node.account = self, live, account
        node.mailbox = {m["role"]: m["id"] for m in node.call("Mailbox/get", {"ids": None})[1]["list"]}
        node.identity = node.call("Identity/get", {"ids": None})[1]["list"][0]["id"]
        submission = node.created(node.add(draft())["id"])["id"]
        self.assertEqual(node.get(submission)["deliveryStatus"]["alice@example.net"]["delivered"], "no")
