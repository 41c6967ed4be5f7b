# -*- test-case-name: tests.integration.test_https -*-
"""
A real server over HTTPS (jmap-cert-path, jmap-key-path) with a self-signed
certificate made in the test, and clients that trust exactly that
certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseNeverReceived

from tests.integration.server import ServerTestMixin, http_client, run_admin_cli

__all__ = ["self_signed"]


def self_signed(common_name: str = "localhost") -> tuple[bytes, bytes]:
    """
    A fresh self-signed certificate for C{localhost} and C{127.0.0.1}.

    @return: (certificate PEM, unencrypted private key PEM).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
    )


class HttpsTests(ServerTestMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def test_session_over_https(self):
        """
        With a certificate and key the listener speaks only TLS: a client
        trusting exactly that certificate gets a session whose URLs start with
        https://, the admin command line works with C{--cacert}, and a client
        trusting another certificate, or speaking plain HTTP, gets no answer.
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
        server = yield self.start_server(
            arguments=[f"--jmap-cert-path={cert_path}", f"--jmap-key-path={key_path}"],
            client=client, tls=True)

        out, err, code = yield run_admin_cli(server.url, [
            "--cacert", cert_path, "account", "create", "bob", "--password", "pw-bob"])
        self.assertEqual((code, err), (0, ""), out)

        _, session, _ = yield self.json_request(
            client, "GET", server.url + "/.well-known/jmap", auth=("bob", "pw-bob"), expect=200)
        self.assertTrue(session["apiUrl"].startswith("https://127.0.0.1:"), session["apiUrl"])
        self.assertEqual(session["apiUrl"], server.url + "/jmap/api")
        self.assertTrue(session["uploadUrl"].startswith("https://"))
        request = {"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"tls": True}, "0"]]}
        _, answer, _ = yield self.json_request(client, "POST", session["apiUrl"], request, auth=("bob", "pw-bob"), expect=200)
        self.assertEqual(answer["methodResponses"], [["Core/echo", {"tls": True}, "0"]])

        stranger = http_client(trust_pem=self_signed()[0])
        yield self.assertFailure(stranger.get(server.url + "/.well-known/jmap"), ResponseNeverReceived)
        plain = http_client()
        yield self.assertFailure(
            plain.get(server.url.replace("https://", "http://") + "/.well-known/jmap"), ResponseNeverReceived)

        reason = yield server.stop()
        self.assertCleanStop(server, reason)
