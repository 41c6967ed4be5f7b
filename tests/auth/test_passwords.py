# -*- test-case-name: tests.auth.test_passwords -*-
"""
Tests for L{stalwart.auth.passwords}.
"""

import base64

from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.passwords import hash_password, verify_password

SALT = bytes(range(16))


class HashPasswordTests(SynchronousTestCase):
    """
    L{hash_password} encodes scrypt with its parameters.
    """

    def test_format(self) -> None:
        """
        The encoding is C{scrypt$16384$8$1$<salt>$<32-byte key>}, base64.
        """
        encoded = hash_password("correct horse", SALT)
        parts = encoded.split("$")
        self.assertEqual(parts[:4], ["scrypt", "16384", "8", "1"])
        self.assertEqual(base64.b64decode(parts[4]), SALT)
        self.assertEqual(len(base64.b64decode(parts[5])), 32)

    def test_deterministic(self) -> None:
        """
        The same password and salt give the same hash; another salt another.
        """
        self.assertEqual(hash_password("pw", SALT), hash_password("pw", SALT))
        self.assertNotEqual(hash_password("pw", SALT), hash_password("pw", b"x" * 16))

    def test_short_salt(self) -> None:
        """
        A salt shorter than 16 bytes is a programming error.
        """
        self.assertRaises(ValueError, hash_password, "pw", b"short")

    def test_not_text(self) -> None:
        """
        A password given as bytes is a programming error.
        """
        self.assertRaises(TypeError, hash_password, b"pw", SALT)


class VerifyPasswordTests(SynchronousTestCase):
    """
    L{verify_password} checks a password against an encoding.
    """

    def test_round_trip(self) -> None:
        """
        The hashed password verifies, including non-ASCII passwords.
        """
        for password in ["correct horse", "pässwörd ☃", ""]:
            self.assertTrue(verify_password(password, hash_password(password, SALT)))

    def test_wrong_password(self) -> None:
        """
        Another password does not verify.
        """
        encoded = hash_password("correct horse", SALT)
        self.assertFalse(verify_password("correct horse ", encoded))
        self.assertFalse(verify_password("Correct horse", encoded))

    def test_other_parameters(self) -> None:
        """
        A stored hash with other (cheaper) parameters still verifies: the
        parameters travel with the hash.
        """
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        key = Scrypt(salt=SALT, length=32, n=2**4, r=1, p=1).derive(b"pw")
        encoded = "scrypt$16$1$1$%s$%s" % (
            base64.b64encode(SALT).decode(), base64.b64encode(key).decode()
        )
        self.assertTrue(verify_password("pw", encoded))
        self.assertFalse(verify_password("pW", encoded))

    def test_malformed(self) -> None:
        """
        Malformed encodings return C{False} and never raise.
        """
        good = hash_password("pw", SALT)
        parts = good.split("$")
        bad = [
            "",
            "plain",
            "scrypt$16384$8$1$" + parts[4],
            "bcrypt$16384$8$1$" + "$".join(parts[4:]),
            "scrypt$16384$8$1$%%%$" + parts[5],
            "scrypt$16384$8$1$" + parts[4] + "$not base64!",
            "scrypt$15000$8$1$" + "$".join(parts[4:]),
            "scrypt$x$8$1$" + "$".join(parts[4:]),
            "scrypt$-16$8$1$" + "$".join(parts[4:]),
            "scrypt$16384$0$1$" + "$".join(parts[4:]),
            "scrypt$1073741824$8$1$" + "$".join(parts[4:]),
            "scrypt$16384$8$1$$" + parts[5],
            "scrypt$16384$8$1$" + parts[4] + "$" + base64.b64encode(b"short").decode(),
            good + "$extra",
            "scrypt$１６$1$1$" + "$".join(parts[4:]),
        ]
        for encoded in bad:
            self.assertIs(verify_password("pw", encoded), False, encoded)
        self.assertIs(verify_password("pw", None), False)  # type: ignore[arg-type]
        self.assertIs(verify_password(None, good), False)  # type: ignore[arg-type]

    def test_lone_surrogate(self) -> None:
        """
        A password that cannot be encoded as UTF-8 does not verify.
        """
        self.assertFalse(verify_password("\ud800", hash_password("pw", SALT)))
