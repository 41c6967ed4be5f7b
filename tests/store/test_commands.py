"""Tests for L{stalwart.store.commands}."""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.store.commands import BadCommand, Command, decode_command, encode_command


class CommandCodecTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """A command with non-ASCII arguments and a binary body decodes to itself."""
        command = Command(kind="blob.upload", args={"type": "text/plain", "name": "été"}, body=b"\x00\xffdata")
        self.assertEqual(decode_command(encode_command(command)), command)

    def test_deterministic(self) -> None:
        """Equal commands encode to equal bytes whatever the key order."""
        a = encode_command(Command(kind="k", args={"a": 1, "b": 2}))
        b = encode_command(Command(kind="k", args={"b": 2, "a": 1}))
        self.assertEqual(a, b)

    def test_version_byte(self) -> None:
        """The first byte is the format version; an unknown one is refused."""
        payload = encode_command(Command(kind="k"))
        self.assertEqual(payload[0], 1)
        with self.assertRaises(BadCommand):
            decode_command(b"\x02" + payload[1:])

    def test_malformed(self) -> None:
        """Short, overlong-header and non-JSON payloads raise BadCommand, never something else."""
        for payload in (b"", b"\x01", b"\x01\x05ab", b"\x01\x01k\x00\x00\x00\x10{}", b"\x01\x01k\x00\x00\x00\x02{]",
                        b"\x01\x01k\x00\x00\x00\x02[]", b"\x01\x01\xff\x00\x00\x00\x02{}",
                        b"\x01\x01k\x00\x00\x00\x02\xff\xfe"):
            with self.assertRaises(BadCommand, msg=repr(payload)):
                decode_command(payload)

    def test_command_kind(self) -> None:
        """command_kind reads the kind from the header alone, and "" for anything undecodable."""
        from stalwart.store.commands import command_kind

        self.assertEqual(command_kind(encode_command(Command(kind="account.create", body=b"x" * 1000))), "account.create")
        for payload in (b"", b"\x02\x01k\x00\x00\x00\x02{}", b"\x01\x05k\x00", b"\x01\x01\xff\x00\x00\x00\x02{}"):
            self.assertEqual(command_kind(payload), "")
