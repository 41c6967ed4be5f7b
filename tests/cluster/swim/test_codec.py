# -*- test-case-name: tests.cluster.swim.test_codec -*-
"""L{stalwart.cluster.swim.codec}: packets to bytes and back, strictly."""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.messages import (
    Ack, Alive, Dead, Gossip, Left, MemberInfo, Nack, Packet, Ping, PingReq, Suspect)

INFO = MemberInfo(node_id="node-1", rpc_address=("10.0.0.1", 7911), jmap_url="https://a.example/jmap",
                  read_replica=True, term=2 ** 64 - 1, last_index=300)
UPDATES = (Alive(INFO, 5), Suspect("node-2", 1, "node-1"), Dead("node-3", 0, "node-1"), Left("node-4", 9))
BODIES = (Ping(1), Ping(2 ** 32, target="node-2"), PingReq(3, "node-2", ("::1", 1)), Ack(0), Nack(7), Gossip())


class CodecTests(SynchronousTestCase):
    """The version-1 packet format."""

    def test_round_trip(self) -> None:
        """Every body with every update decodes to the packet encoded."""
        for body in BODIES:
            packet = Packet(sender="node-1", body=body, updates=UPDATES)
            self.assertEqual(codec.decode(codec.encode(packet)), packet)

    def test_known_bytes(self) -> None:
        """The bytes of a small packet, as the module docstring draws them."""
        packet = Packet(sender="a", body=Ack(300), updates=(Left("b", 1),))
        self.assertEqual(codec.encode(packet), b"\x01\x01a\x03\xac\x02\x01\x04\x01b\x01")

    def test_sizes(self) -> None:
        """packet_size plus update_size is exactly the encoded length."""
        for body in BODIES:
            packet = Packet(sender="node-1", body=body, updates=UPDATES)
            expected = codec.packet_size("node-1", body) + sum(codec.update_size(u) for u in UPDATES)
            self.assertEqual(len(codec.encode(packet)), expected)

    def test_truncation(self) -> None:
        """Every truncation of a valid packet is malformed."""
        data = codec.encode(Packet(sender="node-1", body=Ping(1, "x"), updates=UPDATES))
        for end in range(1, len(data)):
            self.assertRaises(codec.MalformedPacket, codec.decode, data[:end])

    def test_bad_packets(self) -> None:
        """Trailing bytes, unknown kinds, bad flags, over-long varints and bad UTF-8 are malformed; other versions are unsupported."""
        good = codec.encode(Packet(sender="a", body=Ack(1)))
        for bad in [good + b"\x00", b"\x01\x01a\x09\x00", b"\x01\x01a\x03\x01\x01\x09",
                    b"\x01\x01a\x03\x81\x00\x00", b"\x01\x01\xff\x03\x01\x00", b"\x01\x00\x03\x01\x00",
                    codec.encode(Packet(sender="a", body=Ack(1), updates=(Alive(INFO, 1),)))[:-3] + b"\x02\x00\x00"]:
            self.assertRaises(codec.MalformedPacket, codec.decode, bad)
        self.assertRaises(codec.UnsupportedVersion, codec.decode, b"\x02" + good[1:])
        self.assertRaises(codec.MalformedPacket, codec.decode, b"")

    def test_random_bytes_never_crash(self) -> None:
        """Random and mutated inputs raise only CodecError."""
        rng = random.Random(4)
        data = codec.encode(Packet(sender="node-1", body=PingReq(3, "n", ("h", 1)), updates=UPDATES))
        for _ in range(3000):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            for candidate in (bytes(mutated), bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))):
                try:
                    codec.decode(candidate)
                except codec.CodecError:
                    pass

    def test_records(self) -> None:
        """A full state round-trips; a truncated or oversized one is malformed."""
        data = codec.encode_records(list(UPDATES))
        self.assertEqual(codec.decode_records(data), list(UPDATES))
        self.assertEqual(codec.decode_records(codec.encode_records([])), [])
        self.assertRaises(codec.MalformedPacket, codec.decode_records, data[:-1])
        self.assertRaises(codec.MalformedPacket, codec.decode_records, data, records_max=3)
        self.assertRaises(codec.UnsupportedVersion, codec.decode_records, b"\x07\x00")

    def test_member_info_limits(self) -> None:
        """MemberInfo refuses empty or over-long ids, hosts and URLs, and ports out of range."""
        self.assertRaises(ValueError, MemberInfo, "", ("h", 1), "")
        self.assertRaises(ValueError, MemberInfo, "x" * 129, ("h", 1), "")
        self.assertRaises(ValueError, MemberInfo, "x", ("h", 70000), "")
        self.assertRaises(ValueError, MemberInfo, "x", ("h", 1), "u" * 401)
        self.assertRaises(ValueError, MemberInfo, "x", ("h", 1), "", term=-1)
