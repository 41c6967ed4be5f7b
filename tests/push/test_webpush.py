# -*- test-case-name: tests.push.test_webpush -*-
"""
Tests for L{stalwart.push.webpush} (RFC 8291, aes128gcm of RFC 8188),
decrypted by the tests' own user agent side.
"""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric import ec
from twisted.trial.unittest import SynchronousTestCase

from stalwart.push.webpush import BadKeys, RECORD_SIZE, b64url_decode, check_keys, encrypt
from tests.push.webpush_decrypt import UserAgentKeys, b64url

# RFC 8291 section 5 (and appendix A): the example's keys and message.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


class EncryptTests(SynchronousTestCase):
    def test_rfc_example(self) -> None:
        """With the example's ephemeral key and salt, the body is RFC 8291's, byte for byte."""
        ua = UserAgentKeys(ec.derive_private_key(int.from_bytes(b64url_decode(RFC_UA_PRIVATE), "big"), ec.SECP256R1()),
                           b64url_decode(RFC_AUTH))
        scalar = int.from_bytes(b64url_decode(RFC_AS_PRIVATE), "big")
        randomness = [(scalar - 1).to_bytes(32, "big"), b64url_decode(RFC_SALT)]
        body = encrypt(RFC_PLAINTEXT, b64url(ua.public), b64url(ua.auth), lambda n: randomness.pop(0))
        self.assertEqual(b64url(body), RFC_BODY)
        self.assertEqual(ua.decrypt(body), RFC_PLAINTEXT)

    def test_round_trip(self) -> None:
        """Random messages decrypt to themselves with fresh keys."""
        rng = random.Random(7)
        for size in (0, 1, 100, RECORD_SIZE - 17):
            ua = UserAgentKeys.generate()
            message = rng.randbytes(size)
            body = encrypt(message, ua.keys()["p256dh"], ua.keys()["auth"], rng.randbytes)
            self.assertEqual(ua.decrypt(body), message)

    def test_too_large(self) -> None:
        """A message that does not fit one record is refused."""
        ua = UserAgentKeys.generate()
        self.assertRaises(ValueError, encrypt, b"x" * RECORD_SIZE, ua.keys()["p256dh"], ua.keys()["auth"], random.Random(1).randbytes)

    def test_bad_keys(self) -> None:
        """Keys that are not a P-256 point and a 16-byte secret are refused."""
        good = UserAgentKeys.generate().keys()
        for p256dh, auth in ((good["p256dh"], "AAAA"), ("AAAA", good["auth"]), ("!!", good["auth"]),
                             (b64url(b"\x04" + b"\x01" * 64), good["auth"])):
            self.assertRaises(BadKeys, check_keys, p256dh, auth)
        check_keys(good["p256dh"], good["auth"])
