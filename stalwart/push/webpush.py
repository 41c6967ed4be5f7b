# -*- test-case-name: tests.push.test_webpush -*-
"""
Web Push message encryption (RFC 8291) in the aes128gcm content coding
(RFC 8188), for PushSubscriptions with C{keys} (RFC 8620 section 7.2).

Pure: the ephemeral key and the salt come from an injected C{urandom}.

Body (one record; RFC 8188 section 2.1)::

    +-----------+-----------+-------------+---------------------+----------------------+
    | salt (16) | rs (u32)  | idlen (u8)  | keyid: the server's | AES-128-GCM of       |
    |           | big-endian| = 65        | ephemeral P-256 key | plaintext || 0x02    |
    |           |           |             | (uncompressed, 65)  | with a 16-byte tag   |
    +-----------+-----------+-------------+---------------------+----------------------+

Keys (RFC 8291 section 3.4)::

    ecdh_secret = ECDH(as_private, ua_public)
    IKM   = HKDF(salt=auth_secret, ikm=ecdh_secret,
                 info="WebPush: info" 0x00 ua_public as_public, 32)
    CEK   = HKDF(salt=salt, ikm=IKM, info="Content-Encoding: aes128gcm" 0x00, 16)
    NONCE = HKDF(salt=salt, ikm=IKM, info="Content-Encoding: nonce" 0x00, 12)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from typing import Callable, Tuple

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["encrypt", "derive_keys", "b64url_decode", "check_keys", "BadKeys", "RECORD_SIZE", "HEADER_BYTES"]

#: The record size announced: push services accept 4096 bytes of payload.
RECORD_SIZE = 4096
HEADER_BYTES = 16 + 4 + 1 + 65
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class BadKeys(ValueError):
    """The client's p256dh or auth is not usable."""


def b64url_decode(text: str) -> bytes:
    """URL-safe base64 with or without padding (RFC 4648 section 5)."""
    if not isinstance(text, str) or len(text) > 200:
        raise BadKeys("not a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise BadKeys("not a base64url string") from None


def check_keys(p256dh: str, auth: str) -> Tuple[bytes, bytes]:
    """The decoded (ua_public, auth_secret); raises L{BadKeys}."""
    ua_public, secret = b64url_decode(p256dh), b64url_decode(auth)
    if len(secret) != 16:
        raise BadKeys("auth must be 16 bytes")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    except ValueError:
        raise BadKeys("p256dh is not a P-256 public key") from None
    if len(ua_public) != 65:
        raise BadKeys("p256dh must be an uncompressed point")
    return ua_public, secret


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869) for at most one block of output."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def derive_keys(ecdh_secret: bytes, auth_secret: bytes, ua_public: bytes, as_public: bytes, salt: bytes) -> Tuple[bytes, bytes]:
    """(content encryption key, nonce) of RFC 8291 section 3.4; both sides use it."""
    ikm = _hkdf(auth_secret, ecdh_secret, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    return cek, nonce


def encrypt(plaintext: bytes, p256dh: str, auth: str, urandom: Callable[[int], bytes]) -> bytes:
    """The aes128gcm body carrying C{plaintext} to the user agent with these keys."""
    ua_public, auth_secret = check_keys(p256dh, auth)
    if len(plaintext) + 1 + 16 > RECORD_SIZE:
        raise ValueError(f"push message of {len(plaintext)} bytes does not fit one record")
    scalar = int.from_bytes(urandom(32), "big") % (_P256_ORDER - 1) + 1
    as_private = ec.derive_private_key(scalar, ec.SECP256R1())
    as_public = as_private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ecdh_secret = as_private.exchange(ec.ECDH(), peer)
    salt = urandom(16)
    cek, nonce = derive_keys(ecdh_secret, auth_secret, ua_public, as_public, salt)
    # One record, so it is the last: delimiter 0x02 and no padding (8188 2).
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + struct.pack(">IB", RECORD_SIZE, len(as_public)) + as_public + ciphertext
