# -*- test-case-name: tests.jmap.test_ids -*-
"""
Tests for L{stalwart.jmap.ids}: the Id data type of RFC 8620 1.2.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.ids import check_creation_id, encode_counter, is_valid_id


class IsValidIdTests(SynchronousTestCase):
    """
    L{is_valid_id} follows RFC 8620 1.2.
    """

    def test_valid(self) -> None:
        """
        1 to 255 characters from C{A-Za-z0-9-_} are valid.
        """
        for value in ["a", "A13824", "msg1023", "-_-", "0", "x" * 255, "Ab-_09"]:
            self.assertTrue(is_valid_id(value), value)

    def test_invalid(self) -> None:
        """
        The empty string, more than 255 octets, characters outside the
        base64url alphabet (padding, C{+}, C{/}, spaces, non-ASCII letters and
        digits) and non-strings are invalid.
        """
        for value in ["", "x" * 256, "a=", "a+b", "a/b", "a b", "é", "٣", "a\n", "#a", None, 5, b"ab", ["a"]]:
            self.assertFalse(is_valid_id(value), repr(value))

    def test_creationId(self) -> None:
        """
        Creation ids are Ids (RFC 8620 5.3: C{create} is C{Id[Foo]}); the
        C{"#"} of a reference is not part of them.
        """
        self.assertTrue(check_creation_id("k1"))
        self.assertFalse(check_creation_id("#k1"))
        self.assertFalse(check_creation_id(""))
        self.assertFalse(check_creation_id(1))


class EncodeCounterTests(SynchronousTestCase):
    """
    L{encode_counter} makes deterministic, valid and defensive ids.
    """

    def test_knownValues(self) -> None:
        """
        The counter is written in lower-case Crockford base32 after the
        prefix.
        """
        table = [(0, "M0"), (1, "M1"), (31, "Mz"), (32, "M10"), (1024, "M100"), (1234567, "M15nm7")]
        for n, expected in table:
            self.assertEqual(encode_counter("M", n), expected)

    def test_defensive(self) -> None:
        """
        Over many counters, ids are valid, distinct, start with the prefix
        letter, are never all digits and never contain C{NIL} in any case
        (RFC 8620 1.2), and sort like their counters when equally long.
        """
        rng = random.Random(8620)
        counters = sorted({rng.randrange(2**64) for _ in range(2000)} | set(range(2000)))
        encoded = [encode_counter("N", n) for n in counters]
        self.assertEqual(len(set(encoded)), len(encoded))
        for value in encoded:
            self.assertTrue(is_valid_id(value))
            self.assertTrue(value.startswith("N"))
            self.assertNotIn("nil", value.lower())
        for a, b in zip(encoded, encoded[1:]):
            if len(a) == len(b):
                self.assertLess(a, b)

    def test_badArguments(self) -> None:
        """
        The prefix must be one ASCII letter and the counter a non-negative
        int small enough for a 255-octet id.
        """
        for prefix in ["", "ab", "1", "-", "é"]:
            self.assertRaises(ValueError, encode_counter, prefix, 1)
        for n in [-1, 1.0, True, "1", 32**254]:
            self.assertRaises(ValueError, encode_counter, "M", n)
        self.assertEqual(len(encode_counter("M", 32**254 - 1)), 255)
