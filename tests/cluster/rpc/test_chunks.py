"""
Tests for L{stalwart.cluster.rpc.chunks}: values over AMP's 65,535-byte
limit spread over several keys of one box.
"""

import random

from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.rpc.chunks import CHUNK_BYTES, ChunkedBytes, MalformedChunks


class Carry(amp.Command):
    arguments = [(b"data", ChunkedBytes()), (b"extra", ChunkedBytes(optional=True, chunks_max=3))]


def box_for(data, extra=None):
    return Carry.makeArguments({"data": data, "extra": extra}, None)


def parse(box):
    return Carry.parseArguments(box, None)


class ChunkedBytesTests(SynchronousTestCase):
    def test_round_trip_sizes(self) -> None:
        """Values of every interesting size come back equal, through the AMP wire encoding."""
        rng = random.Random(1)
        for size in (0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 5 * 1024 * 1024):
            data = rng.randbytes(size)
            wire = box_for(data).serialize()
            (box,) = amp._ParserHelper.parseString(wire)
            self.assertEqual(parse(box)["data"], data, size)

    def test_layout(self) -> None:
        """The argument's key holds the chunk count; chunks follow in name.0, name.1..."""
        box = box_for(b"a" * CHUNK_BYTES + b"b")
        self.assertEqual(box[b"data"], b"2")
        self.assertEqual(box[b"data.0"], b"a" * CHUNK_BYTES)
        self.assertEqual(box[b"data.1"], b"b")
        self.assertEqual(box_for(b"")[b"data"], b"0")
        self.assertNotIn(b"data.0", box_for(b""))

    def test_every_value_fits_amp(self) -> None:
        """No value of the box is over AMP's limit."""
        box = box_for(bytes(1_000_000))
        self.assertLessEqual(max(len(v) for v in box.values()), 65535)

    def test_optional(self) -> None:
        """An optional argument may be absent."""
        self.assertIsNone(parse(box_for(b"x"))["extra"])
        self.assertEqual(parse(box_for(b"x", b"y"))["extra"], b"y")

    def test_malformed(self) -> None:
        """Bad counts, missing, short, empty or excess chunks are refused."""
        good = box_for(b"a" * CHUNK_BYTES + b"b")
        cases = []
        for count in (b"", b"-1", b"02", b"x", b"\xd9\xa3", b"3", b"99999999999"):
            cases.append({**good, b"data": count})
        cases.append({k: v for k, v in good.items() if k != b"data.1"})
        cases.append({k: v for k, v in good.items() if k != b"data"})
        cases.append({**good, b"data.0": b"short"})
        cases.append({**good, b"data.1": b""})
        cases.append({**box_for(b"x"), b"extra": b"4"})  # over chunks_max
        for box in cases:
            self.assertRaises(MalformedChunks, parse, amp.AmpBox(box))

    def test_not_bytes(self) -> None:
        """Passing text is the caller's bug and raises at once."""
        self.assertRaises(TypeError, box_for, "text")
