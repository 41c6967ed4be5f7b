"""
Tests for L{stalwart.cluster.rpc.auth}: HKDF key derivation (RFC 5869) and
the mutual HMAC proof bound to the TLS channel.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.rpc import auth


def urandom_from(seed: int):
    rng = random.Random(seed)
    return rng.randbytes


def admit(client_key: bytes, server_key: bytes, client_binding=b"channel", server_binding=b"channel", also=()):
    """Run the four steps; return both states (the exception, if any, propagates)."""
    client = auth.ClientAdmission(client_key, urandom_from(1))
    server = auth.ServerAdmission(server_key, urandom_from(2), also=also)
    version, nonce = client.hello()
    version, server_nonce = server.hello(version, nonce)
    client_proof = client.prove(version, server_nonce, client_binding)
    server_proof = server.prove(server_binding, client_proof)
    client.check(server_proof)
    return client, server


class DeriveKeyTests(SynchronousTestCase):
    def test_known_value(self) -> None:
        """The derivation is fixed: nodes of different releases derive the same key."""
        self.assertEqual(
            auth.derive_key("parerga_und_paralipomena").hex(),
            auth.derive_key(b"parerga_und_paralipomena").hex(),
        )
        self.assertEqual(len(auth.derive_key("k")), auth.KEY_BYTES)
        self.assertEqual(auth.derive_key("k"), auth.derive_key("k"))

    def test_distinct_keys(self) -> None:
        """Different secrets give different keys, and the key is not the secret itself."""
        self.assertNotEqual(auth.derive_key("a"), auth.derive_key("b"))
        secret = "x" * 32
        self.assertNotEqual(auth.derive_key(secret), secret.encode())


class AdmissionTests(SynchronousTestCase):
    key = auth.derive_key("right")

    def test_right_key(self) -> None:
        """Both sides holding the key admit each other."""
        client, server = admit(self.key, self.key)
        self.assertTrue(client.admitted)
        self.assertTrue(server.admitted)
        self.assertTrue(server.expects("RaftMessage"))
        self.assertFalse(server.expects("Hello"))

    def test_client_wrong_key(self) -> None:
        """A client without the key is refused by the server."""
        e = self.assertRaises(auth.Refused, admit, auth.derive_key("wrong"), self.key)
        self.assertEqual(e.reason, "proof")

    def test_server_wrong_key(self) -> None:
        """A server without the key is refused by the client: the proof goes both ways."""
        e = self.assertRaises(auth.Refused, admit, self.key, auth.derive_key("wrong"))
        self.assertEqual(e.reason, "proof")

    def test_key_rotation(self) -> None:
        """
        A server also accepting a second key admits clients proving either,
        and proves itself with the client's key; a key it does not hold is
        still refused.  So the three-pass roll-out keeps every pair talking.
        """
        old, new = self.key, auth.derive_key("new")
        for client_key in (old, new):
            client, server = admit(client_key, old, also=[new])
            self.assertTrue(client.admitted and server.admitted)
        e = self.assertRaises(auth.Refused, admit, auth.derive_key("third"), old, also=[new])
        self.assertEqual(e.reason, "proof")
        # Middle pass: one node sends new (accepting old), the other old (accepting new).
        self.assertTrue(admit(new, old, also=[new])[0].admitted)
        self.assertTrue(admit(old, new, also=[old])[0].admitted)

    def test_relayed_proof(self) -> None:
        """A proof made for one TLS channel does not verify on another (a relaying MITM)."""
        e = self.assertRaises(auth.Refused, admit, self.key, self.key, b"channel-1", b"channel-2")
        self.assertEqual(e.reason, "proof")

    def test_roles_differ(self) -> None:
        """The server's proof is not the client's: reflecting a proof back fails."""
        args = (self.key, b"b", b"c" * 32, b"s" * 32)
        self.assertNotEqual(auth.proof(self.key, auth.CLIENT, *args[1:]),
                            auth.proof(self.key, auth.SERVER, *args[1:]))

    def test_fresh_nonces(self) -> None:
        """Each side's nonce comes from its urandom, so a recorded proof does not replay."""
        server = auth.ServerAdmission(self.key, urandom_from(3))
        other = auth.ServerAdmission(self.key, urandom_from(4))
        self.assertNotEqual(server.hello(1, b"n" * 32)[1], other.hello(1, b"n" * 32)[1])

    def test_order(self) -> None:
        """Prove before Hello, or a second Hello, refuses; a refused state stays refused."""
        server = auth.ServerAdmission(self.key, urandom_from(2))
        self.assertFalse(server.expects("Prove"))
        self.assertRaises(auth.Refused, server.prove, b"c", b"p" * 32)
        self.assertEqual(server.state, "refused")
        self.assertRaises(auth.Refused, server.hello, 1, b"n" * 32)
        self.assertFalse(server.expects("Hello"))
        server = auth.ServerAdmission(self.key, urandom_from(2))
        server.hello(1, b"n" * 32)
        self.assertRaises(auth.Refused, server.hello, 1, b"n" * 32)

    def test_bad_version_and_nonce(self) -> None:
        """An unknown version or a nonce of the wrong length is refused on both sides."""
        for version, nonce, reason in ((2, b"n" * 32, "version"), (1, b"short", "nonce")):
            server = auth.ServerAdmission(self.key, urandom_from(2))
            self.assertEqual(self.assertRaises(auth.Refused, server.hello, version, nonce).reason, reason)
            client = auth.ClientAdmission(self.key, urandom_from(1))
            client.hello()
            self.assertEqual(self.assertRaises(auth.Refused, client.prove, version, nonce, b"c").reason, reason)

    def test_echoed_nonce(self) -> None:
        """A server that echoes the client's nonce is refused."""
        client = auth.ClientAdmission(self.key, urandom_from(1))
        _, nonce = client.hello()
        self.assertEqual(self.assertRaises(auth.Refused, client.prove, 1, nonce, b"c").reason, "nonce")
