"""
The user agent's side of RFC 8291 (Web Push message encryption), written
for the tests apart from L{stalwart.push.webpush}: it uses cryptography's
HKDF class and parses the RFC 8188 header itself.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["UserAgentKeys", "b64url"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hkdf(salt: bytes, info: bytes, length: int, ikm: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class UserAgentKeys:
    """A browser's push keys: a P-256 key pair and a 16-byte auth secret."""

    def __init__(self, private: ec.EllipticCurvePrivateKey, auth: bytes) -> None:
        self.private = private
        self.auth = auth
        self.public = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    @classmethod
    def generate(cls) -> "UserAgentKeys":
        import os

        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    def keys(self) -> dict:
        """The PushSubscription C{keys} object."""
        return {"p256dh": b64url(self.public), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> bytes:
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21:21 + id_length]
        ciphertext = body[21 + id_length:]
        assert len(ciphertext) <= record_size, (len(ciphertext), record_size)
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        shared = self.private.exchange(ec.ECDH(), peer)
        ikm = _hkdf(self.auth, b"WebPush: info\x00" + self.public + sender, 32, shared)
        key = _hkdf(salt, b"Content-Encoding: aes128gcm\x00", 16, ikm)
        nonce = _hkdf(salt, b"Content-Encoding: nonce\x00", 12, ikm)
        padded = AESGCM(key).decrypt(nonce, ciphertext, None).rstrip(b"\x00")
        assert padded.endswith(b"\x02"), "the only record must be the last (RFC 8188 2)"
        return padded[:-1]
