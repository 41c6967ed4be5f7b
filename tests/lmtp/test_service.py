"""
Tests for L{stalwart.lmtp.service}: trusted networks, the service in the
node, and real LMTP clients (the standard library's C{smtplib.LMTP}, in a
thread) over TCP on 127.0.0.1 against an in-process node whose mail then
shows through JMAP.
"""

import datetime
import os
import smtplib
import ssl

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from stalwart.jmap.capabilities import CORE, MAIL
from stalwart.lmtp.server import LmtpLimits
from stalwart.lmtp.service import LmtpFactory, LmtpService, trusted_networks
from stalwart.service.listener import tls_options
from stalwart.mail.email_methods import EmailMethods
from stalwart.mail.extension import mail_extension
from stalwart.service.config import ServerConfig
from stalwart.service.errors import ConfigError
from stalwart.service.extension import Extension
from stalwart.store.commands import Command
from tests.jmap.harness import LiveNode

MESSAGE = (
    b"From: Sender <sender@example.net>\r\n"
    b"To: alice@example.com, bob@example.com\r\n"
    b"Subject: Over the wire\r\n"
    b"Message-ID: <wire-1@example.net>\r\n"
    b"\r\n"
    b"Hello over TCP.\r\n"
    b".a line that starts with a dot\r\n"
)


class TrustedNetworksTests(SynchronousTestCase):
    def test_networks(self) -> None:
        """Addresses and CIDR networks admit their members, IPv4-mapped IPv6 included; junk is refused."""
        trusted = trusted_networks(("127.0.0.1", "10.1.0.0/16", "fd00::/8"))
        for ip in ("127.0.0.1", "10.1.200.3", "fd00::1", "::ffff:10.1.0.9"):
            self.assertTrue(trusted(ip), ip)
        for ip in ("127.0.0.2", "10.2.0.1", "::1", "", "not-an-ip"):
            self.assertFalse(trusted(ip), ip)


class ConfigTests(SynchronousTestCase):
    def test_lmtp_keys_checked(self) -> None:
        """A certificate without key (or the reverse), TLS-only without both, or a bad network are refused."""
        cases = [
            ({"lmtp_cert_path": "c"}, "lmtp-cert-path: given without lmtp-key-path"),
            ({"lmtp_key_path": "k"}, "lmtp-key-path: given without lmtp-cert-path"),
            ({"lmtp_tls_only": True}, "lmtp-tls-only: needs"),
            ({"lmtp_trusted_ips": ("10.0.0.0/33",)}, "lmtp-trusted-ips:"),
            ({"mail_max_size": 0}, "mail-max-size: 0 is not"),
        ]
        for kwargs, message in cases:
            error = self.assertRaises(ConfigError, ServerConfig, **kwargs)
            self.assertTrue(str(error).startswith(message), str(error))

    def test_unreadable_certificate(self) -> None:
        """A certificate that cannot be read is a start-up error naming the keys."""
        error = self.assertRaises(ConfigError, tls_options, self.mktemp(), self.mktemp(), "lmtp-cert-path/lmtp-key-path")
        self.assertIn("lmtp-cert-path", str(error))


class ServiceTests(SynchronousTestCase):
    def test_child_service(self) -> None:
        """The node has an "lmtp" child listening on lmtp-bind-addr:lmtp-port; port 0 disables it."""
        node = LiveNode(self, lmtp_port=11201, lmtp_bind_addr="127.0.0.1")
        lmtp = node.service.getServiceNamed("lmtp")
        self.assertIsInstance(lmtp, LmtpService)
        ports = [(port, interface) for port, _, _, interface in node.clock.tcpServers]
        self.assertIn((11201, "127.0.0.1"), ports)
        self.assertEqual(lmtp.factory.limits.message_bytes_max, ServerConfig().mail_max_size)
        off = LiveNode(self, lmtp_port=0)
        self.assertRaises(KeyError, off.service.getServiceNamed, "lmtp")


def self_signed(directory: str):
    """A certificate for 127.0.0.1 and its key, as PEM files; their paths."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory)
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class RealClientTests(TestCase):
    """
    C{smtplib.LMTP} in a thread talks to the LMTP server on the reactor,
    which delivers into an in-process node (L{LiveNode}, no threads).
    """

    timeout = 60

    def setUp(self) -> None:
        extensions = [mail_extension()]
        if "Email/get" not in extensions[0].methods:
            # The mail extension does not serve Emails yet: add their methods.
            from stalwart.mail.parse import email_properties, parse_message

            emails = EmailMethods(parse_message, email_properties)
            extensions.append(Extension(methods=emails.methods(), writes=emails.writes()))
        self.live = LiveNode(self, extensions=extensions, lmtp_port=0)
        self.alice = self.account("alice", ["alice@example.com"])
        self.bob = self.account("bob", ["bob@example.com"], quota=100)
        self.catch = self.account("catch", ["*@example.org"])

    def account(self, name, emails, quota=None):
        node = self.live.node
        return self.successResultOf(node.propose(Command(kind="account.create", args={
            "name": name, "password": "not-a-hash", "emails": emails, "quota": quota, "now": node.now(),
        })))["id"]

    def listen(self, trusted=("127.0.0.1",), tls=None, tls_only=False):
        factory = LmtpFactory(self.live.node, reactor, "mail.example.com", LmtpLimits(message_bytes_max=100_000),
                              trusted_networks(trusted), tls=tls, tls_only=tls_only)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def inbox_emails(self, account):
        """(blob id, received at) of the Emails in the account's Inbox, read in SQL."""
        def read(conn):
            return conn.execute(
                "SELECT e.id, e.blob_id FROM emails e JOIN email_mailboxes m ON m.account_id = e.account_id"
                " AND m.email_id = e.id JOIN objects o ON o.account_id = e.account_id AND o.type = 'Mailbox'"
                " AND o.id = m.mailbox_id WHERE e.account_id = ? AND json_extract(o.data, '$.role') = 'inbox'",
                (account,),
            ).fetchall()
        return self.successResultOf(self.live.node.reader.run(read))

    def jmap(self, account, name, arguments):
        return self.live.call(account, name, arguments, using=[CORE, MAIL])

    @inlineCallbacks
    def test_delivery_visible_through_jmap(self) -> None:
        """
        A real LMTP client delivers to three recipients with mixed
        outcomes (delivered, unknown at RCPT, over quota, catch-all) and
        gets one reply per accepted recipient; the message is then in
        alice's Inbox through JMAP, stored with the trace headers before
        the original bytes.
        """
        port = self.listen()

        def client():
            with smtplib.LMTP("127.0.0.1", port) as lmtp:
                code, features = lmtp.ehlo("mx.example.net")  # sends LHLO
                assert code == 250 and lmtp.has_extn("pipelining") and lmtp.has_extn("enhancedstatuscodes")
                assert lmtp.mail("sender@example.net", ["SIZE=%d" % len(MESSAGE)])[0] == 250
                rcpts = [lmtp.rcpt(r) for r in ("alice@example.com", "nobody@example.com",
                                                "bob@example.com", "anyone+x@example.org")]
                first = lmtp.data(MESSAGE)
                rest = [lmtp.getreply() for _ in range(2)]
                lmtp.noop()
                return [r[0] for r in rcpts], [first] + rest

        rcpt_codes, data_replies = yield deferToThread(client)
        self.assertEqual(rcpt_codes, [250, 550, 250, 250])
        self.assertEqual([code for code, _ in data_replies], [250, 552, 250])
        self.assertTrue(data_replies[1][1].startswith(b"5.2.2"), data_replies[1])

        ((email_id, blob_id),) = self.inbox_emails(self.alice)
        self.assertEqual(self.inbox_emails(self.bob), [])
        self.assertEqual(len(self.inbox_emails(self.catch)), 1)
        stored = self.live.node.blobs.read(blob_id)
        self.assertTrue(stored.startswith(b"Return-Path: <sender@example.net>\r\nReceived: from mx.example.net"))
        self.assertTrue(stored.endswith(b"\r\n" + MESSAGE), stored)

        # Through JMAP: the Inbox counts it; Email/query finds it and
        # Email/get reads it from the stored message.
        _, mailboxes = self.jmap(self.alice, "Mailbox/get", {"ids": None})
        inbox = [m for m in mailboxes["list"] if m["role"] == "inbox"][0]
        self.assertEqual(inbox["totalEmails"], 1)
        name, query = self.jmap(self.alice, "Email/query", {"filter": {"inMailbox": inbox["id"]}})
        self.assertEqual((name, query["ids"]), ("Email/query", [email_id]))
        name, got = self.jmap(self.alice, "Email/get", {
            "ids": [email_id], "properties": ["subject", "blobId", "mailboxIds", "from", "messageId", "size",
                                              "header:Return-Path"],
        })
        (email,) = got["list"]
        self.assertEqual((email["subject"], email["blobId"], email["mailboxIds"], email["messageId"]),
                         ("Over the wire", blob_id, {inbox["id"]: True}, ["wire-1@example.net"]))
        self.assertEqual(email["from"], [{"name": "Sender", "email": "sender@example.net"}])
        self.assertEqual((email["size"], email["header:Return-Path"]), (len(stored), " <sender@example.net>"))

    @inlineCallbacks
    def test_pipelined_and_retried(self) -> None:
        """
        A client sending the whole transaction at once (PIPELINING) gets
        every reply in order; the same message sent again (an MTA retry
        after a lost reply) is acknowledged but stored once.
        """
        port = self.listen()

        def client():
            import socket

            script = (b"LHLO mx\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.com>\r\n"
                      b"RCPT TO:<ghost@example.com>\r\nDATA\r\n")
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                reader = sock.makefile("rb")
                replies = [reader.readline()]
                sock.sendall(script)
                while not replies[-1].startswith(b"354"):
                    replies.append(reader.readline())
                sock.sendall(MESSAGE + b".\r\nQUIT\r\n")
                replies += [reader.readline(), reader.readline()]
            with smtplib.LMTP("127.0.0.1", port) as lmtp:
                lmtp.ehlo("mx")
                again = lmtp.sendmail("s@example.net", ["alice@example.com"], MESSAGE)
            return [r[:9] for r in replies], again

        replies, again = yield deferToThread(client)
        self.assertEqual(replies[0][:3], b"220")
        self.assertEqual(replies[-5:], [b"250 2.1.5", b"550 5.1.1", b"354 Start", b"250 2.0.0", b"221 2.0.0"])
        self.assertEqual(again, {})
        self.assertEqual(len(self.inbox_emails(self.alice)), 1)

    @inlineCallbacks
    def test_untrusted_address(self) -> None:
        """A client outside lmtp-trusted-ips is answered 554 and disconnected."""
        port = self.listen(trusted=("10.9.9.9",))

        def client():
            try:
                smtplib.LMTP("127.0.0.1", port)
            except smtplib.SMTPConnectError as e:
                return e.smtp_code, e.smtp_error
            return None

        code, text = yield deferToThread(client)
        self.assertEqual(code, 554)
        self.assertTrue(text.startswith(b"5.7.1"), text)

    @inlineCallbacks
    def test_starttls(self) -> None:
        """
        With a certificate (generated here), STARTTLS is offered and a
        client upgrades, says LHLO again and delivers; the Received header
        names LMTPS.  With lmtp-tls-only, MAIL before STARTTLS is 530.
        """
        cert_path, key_path = self_signed(self.mktemp())
        port = self.listen(tls=tls_options(cert_path, key_path, "lmtp-cert-path/lmtp-key-path"), tls_only=True)

        def client():
            context = ssl.create_default_context(cafile=cert_path)
            with smtplib.LMTP("127.0.0.1", port) as lmtp:
                lmtp.ehlo("mx")
                offered = lmtp.has_extn("starttls")
                refused = lmtp.mail("s@example.net")
                lmtp.rset()
                lmtp.starttls(context=context)
                lmtp.ehlo("mx")
                after = lmtp.has_extn("starttls")
                result = lmtp.sendmail("s@example.net", ["alice@example.com"], MESSAGE)
                return offered, refused[0], after, result, lmtp.sock.version()

        offered, refused, after, result, version = yield deferToThread(client)
        self.assertEqual((offered, refused, after, result), (True, 530, False, {}))
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        ((_, blob_id),) = self.inbox_emails(self.alice)
        self.assertIn(b" with LMTPS id ", self.live.node.blobs.read(blob_id))
