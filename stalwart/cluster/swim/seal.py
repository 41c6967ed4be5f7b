# -*- test-case-name: tests.cluster.swim.test_seal -*-
"""
Sealing gossip datagrams: AEAD under a key ring, with a replay window.

Stalwart sealed every packet with the same fixed nonce, no replay check
and no way to change the key (reference section 8, item 8).  Here one
sealed packet is::

    +---------+--------+--------------+--------------+--------------------+
    | version | key id | timestamp    | nonce        | ciphertext and tag |
    | 1 byte  | 1 byte | 8 bytes, ms  | 12 bytes     | n + 16 bytes       |
    +---------+--------+--------------+--------------+--------------------+

and the first 22 bytes (the header) are the associated data, so none of
them can be changed without the tag failing.

  - Keys: from each configured secret (C{encryption-key}), HKDF-SHA256
    (RFC 5869) with the label C{stalwart-jmap gossip v1} and the cipher's
    name derives a 32-byte key, and with another label a 1-byte key id.
    The ring seals with its first (primary) secret and opens with any, so
    a key rotates in three rolling restarts: add the new secret second,
    move it first, drop the old one.  Two secrets may share an id (1 in
    256): opening then tries both.
  - Ciphers: AES-256-GCM or ChaCha20-Poly1305 (C{cryptography}), both with
    96-bit nonces drawn from the injected C{urandom} for every packet: with
    random nonces, NIST SP 800-38D advises at most 2**32 packets per key,
    about 13 years at 10 packets a second.
  - Replays: a packet is refused when its timestamp is more than
    C{window_seconds} away from the receiver's clock (so node clocks must
    agree that closely), or when its (timestamp, nonce) was accepted
    before.  Accepted nonces are remembered until they leave the window,
    at most C{entries_max} of them: when that many are held the oldest is
    forgotten and nothing older than it is accepted any more.

The checks run in that order: size and version, key id, authentication,
then the replay window, so forged packets cannot fill the window.  A
refused packet raises a L{Rejected} subclass and is never parsed.

Pure: time is a parameter and randomness an injected C{urandom}.
"""

from __future__ import annotations

import heapq
import struct
from typing import Callable, Dict, List, Sequence, Set, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "VERSION",
    "CIPHERS",
    "HEADER_BYTES",
    "OVERHEAD_BYTES",
    "Rejected",
    "Malformed",
    "UnknownKey",
    "Forged",
    "Replayed",
    "derive",
    "ReplayWindow",
    "Seal",
]

VERSION = 1
CIPHERS = {"aes-256-gcm": AESGCM, "chacha20-poly1305": ChaCha20Poly1305}
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">BBQ12s")
HEADER_BYTES = _HEADER.size
#: Bytes a sealed packet adds to its plaintext.
OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES
#: Largest datagram considered at all.
DATAGRAM_BYTES_MAX = 65535


class Rejected(Exception):
    """A datagram was refused; C{reason} names the counter to raise."""

    reason = "rejected"


class Malformed(Rejected):
    """Too short, too long, or of an unknown version."""

    reason = "malformed"


class UnknownKey(Rejected):
    """No key of the ring has this id."""

    reason = "unknown_key"


class Forged(Rejected):
    """The tag does not verify under any key with this id."""

    reason = "forged"


class Replayed(Rejected):
    """Seen before, or outside the time window."""

    reason = "replayed"


def derive(secret: str, cipher: str) -> Tuple[int, bytes]:
    """The (key id, 32-byte key) that C{secret} gives for C{cipher}."""
    if cipher not in CIPHERS:
        raise ValueError(f"unknown cipher {cipher!r}")
    if not secret:
        raise ValueError("the encryption key must not be empty")

    def hkdf(label: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=label + b"\x00" + cipher.encode("ascii")).derive(secret.encode("utf-8"))

    return hkdf(b"stalwart-jmap gossip key id v1", 1)[0], hkdf(b"stalwart-jmap gossip v1", 32)


class ReplayWindow:
    """
    The (timestamp, nonce) pairs accepted within the last C{window_seconds},
    at most C{entries_max} of them.
    """

    def __init__(self, window_seconds: float, entries_max: int) -> None:
        if window_seconds <= 0 or entries_max < 1:
            raise ValueError("the replay window needs a positive length and size")
        self._window_ms = int(window_seconds * 1000)
        self._entries_max = entries_max
        self._heap: List[Tuple[int, bytes]] = []
        self._seen: Set[Tuple[int, bytes]] = set()
        #: Nothing at or below this timestamp is accepted any more.
        self._floor_ms = -1

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, timestamp_ms: int, nonce: bytes, now: float) -> bool:
        """Record the pair and return True if it is fresh, else return False."""
        now_ms = int(now * 1000)
        self._forget(now_ms - self._window_ms)
        if abs(timestamp_ms - now_ms) > self._window_ms or timestamp_ms <= self._floor_ms:
            return False
        key = (timestamp_ms, nonce)
        if key in self._seen:
            return False
        if len(self._seen) >= self._entries_max:
            oldest = heapq.heappop(self._heap)
            self._seen.discard(oldest)
            self._floor_ms = max(self._floor_ms, oldest[0])
            if timestamp_ms <= self._floor_ms:
                return False
        heapq.heappush(self._heap, key)
        self._seen.add(key)
        return True

    def _forget(self, before_ms: int) -> None:
        while self._heap and self._heap[0][0] < before_ms:
            self._seen.discard(heapq.heappop(self._heap))


class Seal:
    """
    Seals and opens datagrams under a key ring.

    @param secrets: the configured encryption keys, the primary first.
    @param cipher: a key of L{CIPHERS}; every node must use the same.
    @param urandom: returns n random bytes (C{os.urandom} in production).
    """

    def __init__(self, secrets: Sequence[str], cipher: str, urandom: Callable[[int], bytes],
                 window_seconds: float = 30.0, entries_max: int = 65536) -> None:
        if not secrets:
            raise ValueError("a key ring needs at least one secret")
        aead = CIPHERS[cipher] if cipher in CIPHERS else None
        if aead is None:
            raise ValueError(f"unknown cipher {cipher!r}")
        self._keys: Dict[int, List[object]] = {}
        self._primary = None
        for secret in secrets:
            key_id, key = derive(secret, cipher)
            box = aead(key)
            self._keys.setdefault(key_id, []).append(box)
            if self._primary is None:
                self._primary = (key_id, box)
        self._urandom = urandom
        self.window = ReplayWindow(window_seconds, entries_max)

    def seal(self, plaintext: bytes, now: float) -> bytes:
        """C{plaintext} sealed with the primary key, stamped with C{now}."""
        key_id, box = self._primary
        nonce = self._urandom(NONCE_BYTES)
        assert len(nonce) == NONCE_BYTES, "urandom returned the wrong length"
        header = _HEADER.pack(VERSION, key_id, max(0, int(now * 1000)), nonce)
        return header + box.encrypt(nonce, plaintext, header)

    def open(self, datagram: bytes, now: float) -> bytes:
        """
        The plaintext of C{datagram}.

        @raise Rejected: (a subclass) if it is malformed, under an unknown
            key, forged, or a replay.
        """
        if not OVERHEAD_BYTES <= len(datagram) <= DATAGRAM_BYTES_MAX:
            raise Malformed()
        version, key_id, timestamp_ms, nonce = _HEADER.unpack_from(datagram)
        if version != VERSION:
            raise Malformed()
        boxes = self._keys.get(key_id)
        if boxes is None:
            raise UnknownKey()
        header = bytes(datagram[:HEADER_BYTES])
        for box in boxes:
            try:
                plaintext = box.decrypt(nonce, bytes(datagram[HEADER_BYTES:]), header)
                break
            except InvalidTag:
                continue
        else:
            raise Forged()
        if not self.window.accept(timestamp_ms, nonce, now):
            raise Replayed()
        return plaintext
