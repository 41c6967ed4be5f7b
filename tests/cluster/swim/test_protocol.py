# -*- test-case-name: tests.cluster.swim.test_protocol -*-
"""L{stalwart.cluster.swim.protocol.SwimProtocol} with a C{Clock} and a fake UDP transport."""

import random
from collections import Counter

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.config import SwimConfig
from stalwart.cluster.swim.members import Membership
from stalwart.cluster.swim.messages import Ack, Alive, MemberInfo, MemberJoined, Packet, Ping
from stalwart.cluster.swim.protocol import SwimProtocol
from stalwart.cluster.swim.seal import Seal


class FakeUDP:
    def __init__(self):
        self.written = []

    def write(self, data, address):
        if address[0] == "unreachable":
            raise OSError("no route")
        self.written.append((data, address))


def urandom_from(seed):
    return random.Random(seed).randbytes


ME = MemberInfo("me", ("10.0.0.1", 7911), "https://me/")
OTHER = MemberInfo("other", ("10.0.0.2", 7911), "https://other/")


class SwimProtocolTests(SynchronousTestCase):
    """The shell seals, opens, counts rejects and keeps one timer on the core's next wake-up."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.events = []
        self.counters = Counter()
        self.seal = Seal(["key"], "aes-256-gcm", urandom_from(1))
        self.peer_seal = Seal(["key"], "aes-256-gcm", urandom_from(2))
        self.core = Membership(SwimConfig(), ME, random.Random(1), [("10.0.0.2", 7911)])
        self.protocol = SwimProtocol(self.core, self.seal, self.clock, self.events.append, self.counters)
        self.transport = FakeUDP()
        self.protocol.transport = self.transport
        self.protocol.startProtocol()

    def sent_packets(self):
        return [(codec.decode(self.peer_seal.open(data, self.clock.seconds())), address)
                for data, address in self.transport.written]

    def test_timer_probes_seed(self):
        """The first tick runs at once: the seed is pinged with a sealed packet."""
        self.clock.advance(0)
        ((packet, address),) = self.sent_packets()
        self.assertEqual(address, ("10.0.0.2", 7911))
        self.assertEqual(packet.body.target, None)
        self.assertEqual(self.counters["sent"], 1)

    def test_answer_and_event(self):
        """A sealed ack is opened and passed to the core, and its events reach on_event."""
        self.clock.advance(0)
        ((ping, _),) = self.sent_packets()
        reply = Packet("other", Ack(ping.body.seq), (Alive(OTHER, 0),))
        self.protocol.datagramReceived(self.peer_seal.seal(codec.encode(reply), self.clock.seconds()),
                                       ("10.0.0.2", 7911))
        self.assertEqual(self.events, [MemberJoined(OTHER)])
        self.assertEqual(self.counters["received"], 1)

    def test_rejects_counted(self):
        """Forged, replayed, malformed and unknown-version datagrams are counted and never reach the core."""
        now = self.clock.seconds()
        good = self.peer_seal.seal(codec.encode(Packet("other", Ping(1, "me"), (Alive(OTHER, 0),))), now)
        self.protocol.datagramReceived(good, ("10.0.0.2", 7911))
        self.protocol.datagramReceived(good, ("10.0.0.2", 7911))
        self.protocol.datagramReceived(good[:-1] + bytes([good[-1] ^ 1]), ("10.0.0.2", 7911))
        self.protocol.datagramReceived(b"short", ("10.0.0.2", 7911))
        self.protocol.datagramReceived(Seal(["other"], "aes-256-gcm", urandom_from(3)).seal(b"x", now), ("x", 1))
        self.protocol.datagramReceived(self.peer_seal.seal(b"\x01garbage", now), ("10.0.0.2", 7911))
        self.protocol.datagramReceived(self.peer_seal.seal(b"\x09", now), ("10.0.0.2", 7911))
        self.assertEqual(self.counters["received"], 1)
        self.assertEqual(self.counters["replayed"], 1)
        self.assertEqual(self.counters["forged"] + self.counters["unknown_key"], 2)
        self.assertEqual(self.counters["malformed"], 2)
        self.assertEqual(self.counters["unsupported"], 1)
        self.assertEqual(self.events, [MemberJoined(OTHER)])

    def test_send_failure_counted(self):
        """A write that fails (no route) is counted, not raised."""
        self.core.add_seeds([("unreachable", 1)])
        self.clock.advance(0)
        self.assertEqual(self.counters["send_failed"], 1)

    def test_one_timer(self):
        """The shell keeps at most one pending call, and none after leaving."""
        self.clock.advance(0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for _ in range(20):
            self.clock.advance(0.1)
            self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.protocol.leave()
        self.assertEqual(self.clock.getDelayedCalls(), [])
