# -*- test-case-name: tests.auth.test_passwords -*-
"""
Password hashing with scrypt (RFC 7914), as stored for accounts.

An encoded hash is one ASCII string::

    scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>

so the cost parameters travel with the hash and can be raised later without
invalidating stored passwords. The salt is a parameter (callers pass
C{os.urandom(16)}): this module has no hidden randomness, which keeps it
deterministic and testable.

scrypt with n=2**14 costs about 16 MiB and tens of milliseconds per call:
callers on the reactor thread should run it in a thread pool.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["hash_password", "verify_password"]

SCRYPT_N = 2**14
"""CPU/memory cost: 2**14 (16 MiB with r=8) is the RFC 7914 interactive-login value."""
SCRYPT_R = 8
"""Block size, the usual value."""
SCRYPT_P = 1
"""Parallelism."""
KEY_BYTES = 32
"""Length of the derived key."""
SALT_BYTES_MIN = 16
"""Shortest salt accepted, in bytes."""

# Bounds on parameters read back from a stored hash, so that a damaged or
# hostile encoding cannot make one verification take minutes or gigabytes.
_N_MAX = 2**20
_R_MAX = 32
_P_MAX = 16
_MEMORY_BYTES_MAX = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    kdf = Scrypt(salt=salt, length=length, n=n, r=r, p=p)
    return kdf.derive(password.encode("utf-8"))


def hash_password(password: str, salt: bytes) -> str:
    """
    Hash C{password} for storage.

    @param password: The password; encoded as UTF-8.
    @param salt: At least 16 random bytes, fresh for every hash
        (C{os.urandom(16)}).
    @return: C{scrypt$16384$8$1$<salt>$<key>}.
    @raise ValueError: If C{salt} is shorter than 16 bytes.
    """
    if not isinstance(password, str):
        raise TypeError(f"password must be str, not {type(password).__name__}")
    if len(salt) < SALT_BYTES_MIN:
        raise ValueError(f"salt must be at least {SALT_BYTES_MIN} bytes")
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    """
    Split an encoded hash into (n, r, p, salt, key), or C{None} if malformed
    or beyond the accepted cost bounds.
    """
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    if not all(part.isascii() and part.isdigit() for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if not (1 < n <= _N_MAX and n & (n - 1) == 0 and 1 <= r <= _R_MAX and 1 <= p <= _P_MAX):
        return None
    if 128 * r * n > _MEMORY_BYTES_MAX:
        return None
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or not 16 <= len(key) <= 64:
        return None
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """
    Whether C{password} matches the hash C{encoded}.

    The comparison takes constant time. A malformed C{encoded} (wrong
    algorithm, bad numbers or base64, excessive cost) returns C{False};
    this function never raises for bad input.
    """
    if not isinstance(password, str) or not isinstance(encoded, str):
        return False
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    try:
        derived = _derive(password, salt, n, r, p, len(key))
    except (ValueError, UnsupportedAlgorithm, MemoryError):
        return False
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(derived, key)
