# -*- test-case-name: tests.integration.test_mail_client -*-
"""
End to end with a maintained JMAP client from PyPI, C{jmapc} (issue 3:
"a mail client written for Fastmail or Stalwart must work against this
server unchanged"), against a real server process over HTTPS (jmapc only
speaks https://) and an SMTP relay that is a twisted.mail server in the
test, on 127.0.0.1.

The client flow: the session, C{Mailbox/get}, an upload and
C{Email/import} of the uploaded message (jmapc has no Email/import class:
its C{CustomMethod}, as its documentation suggests for other methods),
C{Email/query} with C{Email/get} through a result reference, then sending
as jmapc's own example does it: C{Identity/set}, C{Email/set} of a draft
and C{EmailSubmission/set} with C{onSuccessUpdateEmail} moving it to Sent.

jmapc is synchronous (requests), so it runs on a reactor-pool thread while
the reactor runs the relay.
"""

from __future__ import annotations

import email.parser as email_parser
import email.policy as email_policy
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.mail import smtp
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface import implementer

from tests.integration.server import ServerTestMixin, admin_headers, http_client
from tests.integration.test_https import self_signed

try:
    import jmapc
except ImportError:  # the test extra installs it
    jmapc = None

PASSWORD = "dave's password"
ADDRESS = "dave@client.example"
FRIEND = "erin@elsewhere.example"
SENT_SECONDS_MAX = 15.0
"""How long the relay may wait for the submitted message."""

IMPORTED = (
    b"From: Erin Example <erin@elsewhere.example>\r\n"
    b"To: Dave <dave@client.example>\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_on_Friday?=\r\n"
    b"Message-ID: <imported.1@elsewhere.example>\r\n"
    b"Date: Tue, 11 Jun 2024 09:30:00 +0200\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Shall we meet at the caf\xc3\xa9 on Friday?\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Shall we meet at the <b>caf\xc3\xa9</b> on Friday?</p>\r\n"
    b"--b1--\r\n"
)


# -- the SMTP relay: twisted.mail's ESMTP server keeping what it receives -----


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, sink, sender, recipient) -> None:
        self.sink, self.sender, self.recipient, self.lines = sink, sender, recipient, []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        self.sink.arrived(self.sender, self.recipient, b"\r\n".join(self.lines))
        return succeed(b"queued")

    def connectionLost(self):
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Sink:
    def __init__(self) -> None:
        self.received = []
        self._waiting = []

    def receivedHeader(self, helo, origin, recipients):
        return b"Received: by the test relay"

    def validateFrom(self, helo, origin):
        self._origin = origin
        return origin

    def validateTo(self, user):
        origin = str(self._origin)
        return lambda: _Message(self, origin, str(user.dest))

    def arrived(self, sender, recipient, data) -> None:
        self.received.append((sender, recipient, data))
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def wait(self) -> Deferred:
        if self.received:
            return succeed(None)
        d = Deferred()
        self._waiting.append(d)
        return d


class _SinkFactory(smtp.SMTPFactory):
    protocol = smtp.ESMTP
    noisy = False

    def __init__(self, sink) -> None:
        super().__init__()
        self.sink = sink

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        p.delivery = self.sink
        p.host = b"relay.test"
        return p


# -- the client flow, on a thread ------------------------------------------------


def _custom(name: str, data: dict):
    """A jmapc C{CustomMethod} for a method jmapc has no class for."""
    method = jmapc.methods.CustomMethod(data=data)
    method.jmap_method = name
    method.using = {jmapc.constants.JMAP_URN_MAIL}
    return method


def _trust(client, cert_path: str) -> None:
    """
    Trust exactly the test's certificate.  requests prefers
    C{REQUESTS_CA_BUNDLE} from the environment to a session's C{verify}
    unless the session ignores the environment (no proxy either: all is
    on 127.0.0.1).
    """
    client.requests_session.verify = cert_path
    client.requests_session.trust_env = False


def client_flow(host: str, cert_path: str, directory: str) -> dict:
    """Everything jmapc does, blocking; returns what the test checks."""
    from jmapc import (Comparator, EmailAddress, EmailBodyPart, EmailBodyValue, EmailQueryFilterCondition,
                       EmailSubmission, Envelope, Address, Ref)
    from jmapc.methods import (EmailGet, EmailQuery, EmailSet, EmailSubmissionSet, IdentityGet, MailboxGet)

    client = jmapc.Client.create_with_password(host, "dave", PASSWORD)
    _trust(client, cert_path)
    out = {"account": client.account_id, "api_url": client.jmap_session.api_url}

    mailboxes = client.request(MailboxGet(ids=None), raise_errors=True).data
    roles = {m.role: m for m in mailboxes if m.role}
    out["roles"] = sorted(roles)
    inbox, drafts, sent = roles["inbox"], roles["drafts"], roles["sent"]
    out["sent_id"] = sent.id

    path = os.path.join(directory, "imported.eml")
    with open(path, "wb") as f:
        f.write(IMPORTED)
    blob = client.upload_blob(path)
    out["uploaded"] = (blob.id, blob.size)
    imported = client.request(_custom("Email/import", {
        "accountId": client.account_id,
        "emails": {"i1": {"blobId": blob.id, "mailboxIds": {inbox.id: True}, "keywords": {"$seen": True}}},
    }), raise_errors=True)
    out["imported"] = imported.data["created"]["i1"]

    query, got = client.request([
        EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
                   sort=[Comparator(property="receivedAt", is_ascending=False)], limit=10),
        EmailGet(ids=Ref("/ids"), properties=["id", "threadId", "mailboxIds", "keywords", "from", "subject",
                                               "messageId", "receivedAt", "preview", "textBody", "bodyValues"],
                 fetch_text_body_values=True),
    ], raise_errors=True)
    out["query_ids"] = list(query.response.ids)
    out["emails"] = got.response.data

    identities = client.request(IdentityGet(ids=None), raise_errors=True).data
    identity = next((i for i in identities if i.email == ADDRESS), None)
    if identity is None:
        created = client.request(_custom("Identity/set", {
            "accountId": client.account_id, "create": {"me": {"name": "Dave", "email": ADDRESS}}}), raise_errors=True)
        identity_id = created.data["created"]["me"]["id"]
    else:
        identity_id = identity.id
    draft, submission, *implicit = client.request([
        EmailSet(create={"draft": jmapc.Email(
            mail_from=[EmailAddress(name="Dave", email=ADDRESS)], to=[EmailAddress(name="Erin", email=FRIEND)],
            subject="Re: Café on Friday", keywords={"$draft": True}, mailbox_ids={drafts.id: True},
            body_values={"body": EmailBodyValue(value="Friday at ten is fine.\n")},
            text_body=[EmailBodyPart(part_id="body", type="text/plain")])}),
        EmailSubmissionSet(
            on_success_update_email={"#send": {"keywords/$draft": None, f"mailboxIds/{drafts.id}": None,
                                               f"mailboxIds/{sent.id}": True}},
            create={"send": EmailSubmission(
                email_id="#draft", identity_id=identity_id,
                envelope=Envelope(mail_from=Address(email=ADDRESS), rcpt_to=[Address(email=FRIEND)]))}),
    ], raise_errors=True)
    out["draft"] = draft.response.created["draft"]
    out["submission"] = submission.response.created["send"]
    out["submission_not_created"] = submission.response.not_created
    # RFC 8621 7.5: onSuccessUpdateEmail answers with an implicit Email/set.
    out["implicit"] = [(type(r.response).__name__, getattr(r.response, "updated", None)) for r in implicit]
    return out


def mailbox_of(host: str, cert_path: str, email_id: str) -> dict:
    """On a thread: the mailboxIds and keywords of one Email, through jmapc."""
    from jmapc.methods import EmailGet

    client = jmapc.Client.create_with_password(host, "dave", PASSWORD)
    _trust(client, cert_path)
    [email] = client.request(EmailGet(ids=[email_id], properties=["mailboxIds", "keywords"]), raise_errors=True).data
    return {"mailboxIds": email.mailbox_ids, "keywords": email.keywords or {}}


class JmapcClientTests(ServerTestMixin, TestCase):
    timeout = 60

    def setUp(self):
        if jmapc is None:
            raise SkipTest("jmapc is not installed (pip install '.[test]')")
        self.sink = _Sink()
        self.relay = reactor.listenTCP(0, _SinkFactory(self.sink), interface="127.0.0.1")
        self.addCleanup(self.relay.stopListening)

    @inlineCallbacks
    def test_client_flow(self):
        """
        jmapc, unchanged, against a real server: it reads the session and
        the default mailboxes, uploads and imports a message that Email/query
        then finds in the Inbox and Email/get returns with its decoded
        subject, sender, preview and text body; and it sends a draft through
        EmailSubmission/set, which reaches the relay once with the envelope
        given, while onSuccessUpdateEmail moves the draft to Sent.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert_pem, key_pem = self_signed()
        cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert_pem)
        with open(key_path, "wb") as f:
            f.write(key_pem)
        client = http_client(trust_pem=cert_pem)
        server = yield self.start_server(arguments=[
            f"--jmap-cert-path={cert_path}", f"--jmap-key-path={key_path}",
            "--smtp-relay-host=127.0.0.1", f"--smtp-relay-port={self.relay.getHost().port}", "--smtp-relay-tls=none",
        ], client=client, tls=True)
        yield self.json_request(client, "POST", server.url + "/admin/accounts",
                                {"name": "dave", "password": PASSWORD, "emails": [ADDRESS]},
                                headers=admin_headers(), expect=201)
        host = server.url.split("://", 1)[1]

        out = yield deferToThread(client_flow, host, cert_path, directory)

        self.assertEqual(out["api_url"], server.url + "/jmap/api")
        self.assertTrue({"inbox", "drafts", "sent", "trash", "junk", "archive"} <= set(out["roles"]), out["roles"])
        self.assertEqual(out["uploaded"][1], len(IMPORTED))
        imported = out["imported"]
        self.assertEqual(imported["blobId"], out["uploaded"][0])
        self.assertEqual(out["query_ids"], [imported["id"]])
        [email] = out["emails"]
        self.assertEqual(email.id, imported["id"])
        self.assertEqual(email.subject, "Café on Friday")
        self.assertEqual([(a.name, a.email) for a in email.mail_from], [("Erin Example", FRIEND)])
        self.assertEqual(email.message_id, ["imported.1@elsewhere.example"])
        self.assertEqual(email.keywords, {"$seen": True})
        self.assertIn("café on Friday", email.preview)
        [part] = email.text_body
        self.assertEqual(email.body_values[part.part_id].value.rstrip("\r\n"), "Shall we meet at the café on Friday?")
        self.assertEqual(out["submission_not_created"], None)
        self.assertEqual(out["implicit"], [("EmailSetResponse", {out["draft"].id: None})])

        yield self._wait_sent()
        [(sender, recipient, data)] = self.sink.received
        self.assertEqual((sender, recipient), (ADDRESS, FRIEND))
        sent = email_parser.BytesParser(policy=email_policy.default).parsebytes(data)
        self.assertEqual(sent["Subject"], "Re: Café on Friday")
        self.assertEqual(sent["To"].addresses[0].addr_spec, FRIEND)
        self.assertEqual(sent.get_body(("plain",)).get_content().strip(), "Friday at ten is fine.")

        moved = yield self._wait_moved(host, cert_path, out["draft"].id)
        self.assertEqual(moved["mailboxIds"], {out["sent_id"]: True})
        self.assertNotIn("$draft", moved["keywords"])
        reason = yield server.stop()
        self.assertCleanStop(server, reason)

    def _wait_sent(self) -> Deferred:
        """The relay's first message, or a failure after L{SENT_SECONDS_MAX}."""
        return self.sink.wait().addTimeout(SENT_SECONDS_MAX, reactor)

    @inlineCallbacks
    def _wait_moved(self, host, cert_path, email_id):
        """The draft's mailboxes once onSuccessUpdateEmail has run (bounded poll)."""
        deadline = reactor.seconds() + SENT_SECONDS_MAX
        while True:
            state = yield deferToThread(mailbox_of, host, cert_path, email_id)
            if len(state["mailboxIds"]) == 1 and "$draft" not in state["keywords"]:
                return state
            if reactor.seconds() > deadline:
                raise AssertionError(f"draft not moved to Sent: {state}")
            yield deferLater(reactor, 0.1, lambda: None)
