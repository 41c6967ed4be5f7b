# -*- test-case-name: tests.cluster.swim.test_seal -*-
"""L{stalwart.cluster.swim.seal}: AEAD key ring and replay window."""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import seal
from stalwart.cluster.swim.seal import Seal


def counter_urandom():
    """Deterministic distinct nonces."""
    state = [0]

    def urandom(n: int) -> bytes:
        state[0] += 1
        return state[0].to_bytes(n, "big")
    return urandom


class SealTests(SynchronousTestCase):
    """Reference section 8 item 8: random nonce, header as AD, key id, replay window."""

    def test_round_trip_both_ciphers(self) -> None:
        """Sealed with either cipher, a datagram opens to its plaintext, 38 bytes longer."""
        for cipher in seal.CIPHERS:
            ring = Seal(["key"], cipher, counter_urandom())
            datagram = ring.seal(b"hello", 100.0)
            self.assertEqual(len(datagram), 5 + seal.OVERHEAD_BYTES)
            self.assertEqual(ring.open(datagram, 100.0), b"hello")

    def test_fresh_nonce(self) -> None:
        """Each packet takes a fresh nonce from urandom: equal plaintexts seal differently."""
        ring = Seal(["key"], "aes-256-gcm", random.Random(1).randbytes)
        self.assertNotEqual(ring.seal(b"x", 1.0), ring.seal(b"x", 1.0))

    def test_rotation(self) -> None:
        """A ring opens packets under any of its keys and seals with the first."""
        old = Seal(["old"], "aes-256-gcm", counter_urandom())
        both = Seal(["new", "old"], "aes-256-gcm", counter_urandom())
        new = Seal(["new"], "aes-256-gcm", counter_urandom())
        self.assertEqual(both.open(old.seal(b"a", 5.0), 5.0), b"a")
        self.assertEqual(new.open(both.seal(b"b", 5.0), 5.0), b"b")
        self.assertRaises(seal.Rejected, old.open, both.seal(b"c", 5.0), 5.0)

    def test_wrong_key_and_tampering(self) -> None:
        """Another key, or any flipped bit in header or body, is rejected before parsing."""
        ring = Seal(["key"], "aes-256-gcm", counter_urandom())
        other = Seal(["other"], "aes-256-gcm", counter_urandom())
        datagram = ring.seal(b"payload", 50.0)
        self.assertRaises((seal.UnknownKey, seal.Forged), other.open, datagram, 50.0)
        for at in range(len(datagram)):
            tampered = bytearray(datagram)
            tampered[at] ^= 0x01
            self.assertRaises(seal.Rejected, ring.open, bytes(tampered), 50.0)
        self.assertRaises(seal.Malformed, ring.open, datagram[:20], 50.0)

    def test_same_key_id_tries_both(self) -> None:
        """Two secrets sharing a key id (1 in 256) both open."""
        ids = {}
        for i in range(2000):
            key_id, _ = seal.derive(f"s{i}", "aes-256-gcm")
            if key_id in ids:
                first, second = ids[key_id], f"s{i}"
                break
            ids[key_id] = f"s{i}"
        ring = Seal([first, second], "aes-256-gcm", counter_urandom())
        sender = Seal([second], "aes-256-gcm", counter_urandom())
        self.assertEqual(ring.open(sender.seal(b"z", 1.0), 1.0), b"z")

    def test_replay(self) -> None:
        """A datagram opens once; a copy is refused, as is one outside the time window."""
        ring = Seal(["key"], "aes-256-gcm", counter_urandom(), window_seconds=30)
        datagram = ring.seal(b"once", 1000.0)
        self.assertEqual(ring.open(datagram, 1000.5), b"once")
        self.assertRaises(seal.Replayed, ring.open, datagram, 1001.0)
        self.assertRaises(seal.Replayed, ring.open, ring.seal(b"old", 900.0), 1000.0)
        self.assertRaises(seal.Replayed, ring.open, ring.seal(b"future", 1100.0), 1000.0)

    def test_window_bounded(self) -> None:
        """A full window forgets its oldest nonce and then refuses anything not newer than it."""
        window = seal.ReplayWindow(30.0, 3)
        for i, ts in enumerate([1000, 1001, 1002]):
            self.assertTrue(window.accept(ts, bytes([i]), 1.0))
        self.assertTrue(window.accept(1003, b"d", 1.0))
        self.assertEqual(len(window), 3)
        self.assertFalse(window.accept(1000, b"a", 1.0))
        self.assertFalse(window.accept(1000, b"new", 1.0))
        self.assertTrue(window.accept(1004, b"e", 1.0))

    def test_window_forgets_old(self) -> None:
        """Entries older than the window are dropped, so memory stays bounded by traffic in the window."""
        window = seal.ReplayWindow(1.0, 100)
        window.accept(1000, b"a", 1.0)
        window.accept(2500, b"b", 2.5)
        self.assertEqual(len(window), 1)

    def test_derive(self) -> None:
        """Keys differ per secret and per cipher; bad arguments are refused."""
        self.assertNotEqual(seal.derive("a", "aes-256-gcm")[1], seal.derive("a", "chacha20-poly1305")[1])
        self.assertNotEqual(seal.derive("a", "aes-256-gcm")[1], seal.derive("b", "aes-256-gcm")[1])
        self.assertRaises(ValueError, seal.derive, "", "aes-256-gcm")
        self.assertRaises(ValueError, Seal, [], "aes-256-gcm", counter_urandom())
        self.assertRaises(ValueError, Seal, ["k"], "rot13", counter_urandom())
