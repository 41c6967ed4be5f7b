"""
Tests for L{stalwart.cluster.rpc.tls}: the RPC certificate made at first
start and reused, or configured.  (Contexts and the channel binding are
exercised over real sockets in test_service.)
"""

import datetime
import os
import stat

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.rpc import tls

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class LoadOrCreateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.data_dir = self.mktemp()

    def test_created_then_reused(self) -> None:
        """The first start writes a key (mode 0600) and certificate; the next start loads them."""
        first = tls.load_or_create(self.data_dir, NOW)
        key_file = os.path.join(self.data_dir, "rpc", "key.pem")
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)
        self.assertEqual(tls.load_or_create(self.data_dir, NOW), first)
        cert = x509.load_pem_x509_certificate(first[0])
        self.assertLessEqual(cert.not_valid_before_utc, NOW)
        self.assertGreater(cert.not_valid_after_utc, NOW + datetime.timedelta(days=3650))

    def test_broken_files_replaced(self) -> None:
        """A truncated or missing file (a crash mid-write) is replaced by a new pair."""
        first = tls.load_or_create(self.data_dir, NOW)
        with open(os.path.join(self.data_dir, "rpc", "cert.pem"), "wb") as f:
            f.write(first[0][:50])
        second = tls.load_or_create(self.data_dir, NOW)
        self.assertNotEqual(second, first)
        os.remove(os.path.join(self.data_dir, "rpc", "key.pem"))
        self.assertNotEqual(tls.load_or_create(self.data_dir, NOW), second)

    def test_configured(self) -> None:
        """A configured pair is used as given, and nothing is written to the data directory."""
        cert_pem, key_pem = tls.load_or_create(self.mktemp(), NOW)
        cert_path, key_path = self.mktemp(), self.mktemp()
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            with open(path, "wb") as f:
                f.write(data)
        self.assertEqual(tls.load_or_create(self.data_dir, NOW, cert_path, key_path), (cert_pem, key_pem))
        self.assertFalse(os.path.exists(self.data_dir))

    def test_configured_mismatch(self) -> None:
        """A configured key that is not the certificate's, or half a pair, is a start-up error."""
        cert_pem, _ = tls.load_or_create(self.mktemp(), NOW)
        _, key_pem = tls.load_or_create(self.mktemp(), NOW)
        cert_path, key_path = self.mktemp(), self.mktemp()
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            with open(path, "wb") as f:
                f.write(data)
        self.assertRaises(Exception, tls.load_or_create, self.data_dir, NOW, cert_path, key_path)
        self.assertRaises(ValueError, tls.load_or_create, self.data_dir, NOW, cert_path, None)

    def test_options(self) -> None:
        """Server options accept the pair; client connections verify nothing (admission is by key)."""
        from OpenSSL import SSL

        cert_pem, key_pem = tls.load_or_create(self.data_dir, NOW)
        tls.server_options(cert_pem, key_pem).getContext()
        connection = tls.ClientCreator().clientConnectionForTLS(object())
        self.assertEqual(connection.get_context().get_verify_mode(), SSL.VERIFY_NONE)
