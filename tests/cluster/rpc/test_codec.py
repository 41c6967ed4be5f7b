"""
Tests for L{stalwart.cluster.rpc.codec}: Raft messages (Raft figure 2) to
bytes and back.
"""

import random
import struct

import attrs
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.messages import (
    ENTRY_NOOP,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from stalwart.cluster.rpc import codec


def samples():
    """One message of every kind, with values that use the whole field widths."""
    return [
        RequestVote(term=7, sender="n1", recipient="n2", last_log_index=2**64 - 1, last_log_term=6),
        RequestVote(term=8, sender="n1", recipient="n2", last_log_index=3, last_log_term=2,
                    pre_vote=True, transfer=True),
        RequestVoteResponse(term=7, sender="n2", recipient="n1", granted=True, pre_vote=True),
        RequestVoteResponse(term=0, sender="é" * 100, recipient="n1", granted=False),
        AppendEntries(term=3, sender="n1", recipient="n3", prev_index=10, prev_term=2,
                      entries=(Entry(3, 11, b"put x"), Entry(3, 12, b"", ENTRY_NOOP)), commit=10),
        AppendEntries(term=3, sender="n1", recipient="n3", prev_index=0, prev_term=0,
                      entries=(), commit=0),
        AppendEntriesResponse(term=3, sender="n3", recipient="n1", success=False, match_index=0, hint=4,
                              reject_index=9),
        TimeoutNow(term=4, sender="n1", recipient="n2"),
        AppendEntriesResponse(term=3, sender="n3", recipient="n1", success=True, match_index=12),
        InstallSnapshot(term=5, sender="n1", recipient="n4", index=900, snapshot_term=4,
                        configuration=b"\x01\x00\x01\x00\x02n1\x00\x00", offset=2**20,
                        data=b"chunk bytes", done=False),
        InstallSnapshot(term=5, sender="n1", recipient="n4", index=900, snapshot_term=4,
                        configuration=b"", offset=0, data=b"", done=True),
        InstallSnapshotResponse(term=5, sender="n4", recipient="n1", index=900, offset=2**20 + 11),
        InstallSnapshotResponse(term=5, sender="n4", recipient="n1", index=900, done=True, match_index=900),
    ]


class RoundTripTests(SynchronousTestCase):
    def test_every_kind(self) -> None:
        """Every message kind decodes to an equal message (Raft figure 2)."""
        kinds = set()
        for message in samples():
            kinds.add(type(message))
            self.assertEqual(codec.decode(codec.encode(message)), message)
        self.assertEqual(kinds, {kind.cls for kind in codec.KINDS})

    def test_table_covers_every_field(self) -> None:
        """
        Each kind's row lists exactly its class's fields, so a field added to
        a message without a codec change fails here rather than on the wire.
        """
        for kind in codec.KINDS:
            self.assertEqual([name for name, _ in kind.fields],
                             [field.name for field in attrs.fields(kind.cls)], kind.cls)

    def test_version_byte_first(self) -> None:
        """Every encoding starts with the version byte, then the kind code."""
        for message in samples():
            data = codec.encode(message)
            self.assertEqual(data[0], codec.VERSION)
            self.assertIn(data[1], [kind.code for kind in codec.KINDS])

    def test_many_entries(self) -> None:
        """An AppendEntries with 300 entries survives the round trip in order."""
        entries = tuple(Entry(term=5, index=100 + i, data=bytes([i % 256]) * (i % 50)) for i in range(300))
        message = AppendEntries(term=5, sender="a", recipient="b", prev_index=99, prev_term=4,
                                entries=entries, commit=150)
        self.assertEqual(codec.decode(codec.encode(message)), message)

    def test_large_entry(self) -> None:
        """A 5 MB entry survives the round trip byte for byte."""
        data = random.Random(5).randbytes(5 * 1024 * 1024)
        message = AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                entries=(Entry(1, 1, data),), commit=0)
        self.assertEqual(codec.decode(codec.encode(message)).entries[0].data, data)

    def test_snapshot_chunk_of_a_mebibyte(self) -> None:
        """A 1 MiB InstallSnapshot chunk survives the round trip byte for byte (paper section 7)."""
        data = random.Random(6).randbytes(1 << 20)
        message = InstallSnapshot(term=2, sender="a", recipient="b", index=10, snapshot_term=1,
                                  configuration=b"cfg", offset=3 << 20, data=data, done=True)
        self.assertEqual(codec.decode(codec.encode(message)), message)

    def test_old_kinds_unchanged(self) -> None:
        """
        Adding InstallSnapshot left the encodings of kinds 1-5 as they were:
        an older peer still reads every message it knows.
        """
        self.assertEqual(
            codec.encode(TimeoutNow(term=4, sender="n1", recipient="n2")),
            b"\x01\x05" + struct.pack(">Q", 4) + b"\x02n1\x02n2",
        )
        self.assertEqual(
            codec.encode(AppendEntriesResponse(term=3, sender="a", recipient="b", success=True,
                                               match_index=12, hint=1, reject_index=2)),
            b"\x01\x04" + struct.pack(">Q", 3) + b"\x01a\x01b\x01" + struct.pack(">QQQ", 12, 1, 2),
        )
        self.assertEqual([kind.code for kind in codec.KINDS], [1, 2, 3, 4, 5, 6, 7])

    def test_arguments(self) -> None:
        """to_arguments gives the RaftMessage keywords and from_arguments reads them back."""
        message = samples()[0]
        arguments = codec.to_arguments(message)
        self.assertEqual(list(arguments), ["message"])
        self.assertEqual(codec.from_arguments(arguments), message)

    def test_unencodable_is_a_bug(self) -> None:
        """A negative term cannot be encoded: the caller's bug raises at once."""
        self.assertRaises(struct.error, codec.encode,
                          RequestVoteResponse(term=-1, sender="a", recipient="b", granted=True))


class RejectTests(SynchronousTestCase):
    def assertMalformed(self, data: bytes) -> None:
        self.assertRaises(codec.MalformedMessage, codec.decode, data)

    def test_every_truncation(self) -> None:
        """Every proper prefix of every sample is refused as malformed."""
        for message in samples():
            data = codec.encode(message)
            for length in range(len(data)):
                self.assertMalformed(data[:length])

    def test_trailing_bytes(self) -> None:
        """Bytes after the last field are refused."""
        self.assertMalformed(codec.encode(samples()[0]) + b"\x00")

    def test_unknown_version_and_kind(self) -> None:
        """An unknown version or kind is unsupported, not malformed: a newer peer may send it."""
        data = codec.encode(samples()[0])
        self.assertRaises(codec.UnsupportedMessage, codec.decode, b"\x02" + data[1:])
        self.assertRaises(codec.UnsupportedMessage, codec.decode, data[:1] + b"\xff" + data[2:])

    def test_bad_boolean(self) -> None:
        """A boolean byte other than 0 or 1 is refused."""
        data = codec.encode(RequestVoteResponse(term=1, sender="a", recipient="b", granted=True))
        self.assertMalformed(data[:-2] + b"\x02" + data[-1:])
        self.assertMalformed(data[:-1] + b"\x02")

    def test_bad_node_ids(self) -> None:
        """An empty or non-UTF-8 node id is refused."""
        head = bytes((codec.VERSION, 2)) + struct.pack(">Q", 1)
        self.assertMalformed(head + b"\x00" + b"\x01b\x01\x00")
        self.assertMalformed(head + b"\x01\xff" + b"\x01b\x01\x00")

    def test_unknown_entry_kind(self) -> None:
        """An entry kind the log does not know is refused before it can reach the log."""
        message = AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                entries=(Entry(1, 1, b"x"),), commit=0)
        data = bytearray(codec.encode(message))
        kind_offset = len(data) - 8 - 1 - 4 - 1  # commit, data, length, kind
        self.assertEqual(data[kind_offset], 0)
        data[kind_offset] = 9
        self.assertMalformed(bytes(data))

    def test_entry_count_beyond_bytes(self) -> None:
        """A count of entries the remaining bytes cannot hold is refused without allocating them."""
        message = AppendEntries(term=1, sender="a", recipient="b", prev_index=0, prev_term=0,
                                entries=(), commit=0)
        data = bytearray(codec.encode(message))
        data[-12:-8] = struct.pack(">I", 2**32 - 1)
        self.assertMalformed(bytes(data))

    def test_bytes_length_beyond_data(self) -> None:
        """A chunk whose length claims more bytes than follow is refused."""
        message = InstallSnapshot(term=1, sender="a", recipient="b", index=1, snapshot_term=1,
                                  configuration=b"", offset=0, data=b"abc", done=False)
        data = bytearray(codec.encode(message))
        data[-8:-4] = struct.pack(">I", 2**32 - 1)
        self.assertMalformed(bytes(data))

    def test_random_corruption(self) -> None:
        """
        Randomly corrupted encodings decode or raise CodecError, never
        anything else (seeded; the seed is in the failure message).
        """
        for seed in range(300):
            rng = random.Random(seed)
            data = bytearray(codec.encode(rng.choice(samples())))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                codec.decode(bytes(data))
            except codec.CodecError:
                pass
            except Exception as e:  # pragma: no cover - the failure path
                self.fail(f"seed {seed}: {e!r}")
