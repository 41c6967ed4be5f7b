# -*- test-case-name: tests.cluster.swim.test_members -*-
"""
L{stalwart.cluster.swim.members.Membership}: the SWIM core driven by hand,
time passed as an argument, effects asserted.
"""

import random
from typing import List

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.config import SwimConfig
from stalwart.cluster.swim.members import ALIVE, DEAD, LEFT, SUSPECT, Membership
from stalwart.cluster.swim.messages import (
    Ack, Alive, Dead, Gossip, Left, MemberAlive, MemberDead, MemberInfo, MemberJoined, MemberLeft,
    MemberSuspected, MemberUpdated, Nack, Packet, Ping, PingReq, Send, Suspect)
from stalwart.cluster.swim.seal import OVERHEAD_BYTES


def info(name: str, **kw) -> MemberInfo:
    return MemberInfo(node_id=name, rpc_address=(f"h-{name}", 7911), jmap_url=f"https://{name}/", **kw)


ME = info("me")


def sends(effects) -> List[Send]:
    return [e for e in effects if isinstance(e, Send)]


def events(effects):
    return [e for e in effects if not isinstance(e, Send)]


class Harness:
    """A core that already knows some members (all alive, incarnation 0)."""

    def __init__(self, others=("a", "b", "c", "d"), config=None, seeds=()):
        self.core = Membership(config or SwimConfig(), ME, random.Random(1), seeds)
        self.now = 0.0
        for name in others:
            self.hear(name, Gossip())

    def hear(self, name, body, updates=(), incarnation=0, **kw):
        updates = (Alive(info(name, **kw), incarnation),) + tuple(updates)
        return self.core.receive(self.now, (f"h-{name}", 7911), Packet(name, body, updates))

    def tick_until(self, t):
        out = []
        while True:
            wake = self.core.next_wake()
            if wake is None or wake > t:
                break
            self.now = max(self.now, wake)
            out.extend(self.core.tick(self.now))
        self.now = t
        return out


class BasicsTests(SynchronousTestCase):
    """SWIM 3.1 and 4.2: pings, acks, learning members."""

    def test_learns_sender(self) -> None:
        """A packet's first record makes an unknown sender a member (MemberJoined), once."""
        core = Membership(SwimConfig(), ME, random.Random(1))
        effects = core.receive(0.0, ("h-a", 7911), Packet("a", Gossip(), (Alive(info("a"), 0),)))
        self.assertEqual(events(effects), [MemberJoined(info("a"))])
        self.assertEqual(core.status("a"), ALIVE)
        self.assertEqual(events(core.receive(0.1, ("h-a", 7911), Packet("a", Gossip(), (Alive(info("a"), 0),)))), [])

    def test_ping_answered_to_source(self) -> None:
        """A ping for this node is acked to the packet's source address, own record first."""
        h = Harness()
        (send,) = sends(h.hear("a", Ping(42, target="me")))
        self.assertEqual(send.address, ("h-a", 7911))
        self.assertEqual(send.packet.body, Ack(42))
        self.assertEqual(send.packet.updates[0], Alive(ME, 0))

    def test_ping_for_someone_else_ignored(self) -> None:
        """A ping naming another node (an old id at this address) gets no answer."""
        self.assertEqual(sends(Harness().hear("a", Ping(1, target="other"))), [])

    def test_update_changes_info(self) -> None:
        """A newer incarnation with new information is a MemberUpdated; an older one is ignored."""
        h = Harness()
        effects = h.hear("a", Gossip(), incarnation=1, term=5, last_index=9)
        self.assertEqual(events(effects), [MemberUpdated(info("a", term=5, last_index=9))])
        self.assertEqual(events(h.hear("a", Gossip(), incarnation=0)), [])

    def test_packets_fit(self) -> None:
        """With 200 members of long names, every packet still fits the UDP budget once sealed."""
        config = SwimConfig()
        names = [f"{'n' * 100}{i:03d}" for i in range(200)]
        h = Harness(others=names)
        effects = h.hear(names[0], Ping(1, target=None)) + h.tick_until(3.0)
        self.assertTrue(sends(effects))
        for send in sends(effects):
            self.assertLessEqual(len(codec.encode(send.packet)) + OVERHEAD_BYTES, config.udp_payload_bytes_max)


class ProbeTests(SynchronousTestCase):
    """SWIM 3.1 and 4.3, Lifeguard 4.1 and 4.3: the probe cycle."""

    def test_round_robin(self) -> None:
        """One ping per interval, each member once per round."""
        h = Harness()
        pinged = []
        for i in range(8):
            for send in sends(h.tick_until(i * 0.5)):
                if isinstance(send.packet.body, Ping):
                    pinged.append(send.packet.body.target)
                    h.core.receive(h.now, send.address, Packet(send.packet.body.target, Ack(send.packet.body.seq)))
        self.assertEqual(sorted(pinged[:4]), ["a", "b", "c", "d"])
        self.assertEqual(pinged[:4], pinged[4:])

    def test_failed_probe_leads_to_suspicion_then_death(self) -> None:
        """
        No ack: ping-req through k=3 others and a second ping at the ping
        timeout; when all relays nack, the member is suspected (phi is past
        the threshold), with the nacks as confirmations, and declared dead
        at the shortest suspicion timeout.
        """
        h = Harness()
        first = sends(h.tick_until(0.0))
        ping = [s for s in first if isinstance(s.packet.body, Ping) and s.packet.body.target][0]
        target, seq = ping.packet.body.target, ping.packet.body.seq
        stage = sends(h.tick_until(0.15))
        relays = [s for s in stage if isinstance(s.packet.body, PingReq)]
        self.assertEqual(len(relays), 3)
        self.assertTrue(any(isinstance(s.packet.body, Ping) and s.packet.body.target == target for s in stage))
        h.now = 0.31
        for relay in relays:
            h.core.receive(h.now, relay.address, Packet(relay.address[0][2:], Nack(seq)))
        effects = h.tick_until(0.31)
        self.assertIn(MemberSuspected(target), events(effects))
        self.assertEqual(h.core.status(target), SUSPECT)
        shortest, _ = h.core.config.suspicion_timeouts(5)
        effects = h.tick_until(0.31 + shortest + 0.001)
        self.assertIn(MemberDead(target), events(effects))
        self.assertEqual(h.core.status(target), DEAD)
        self.assertEqual(h.core.awareness.score, 0)

    def test_indirect_ack_counts(self) -> None:
        """An ack relayed by a ping-req relay answers the probe: no suspicion, health improves."""
        h = Harness()
        ping = [s for s in sends(h.tick_until(0.0)) if isinstance(s.packet.body, Ping)][0]
        h.core.awareness.apply(2)
        relays = [s for s in sends(h.tick_until(0.15)) if isinstance(s.packet.body, PingReq)]
        h.core.receive(0.2, relays[0].address, Packet(relays[0].address[0][2:], Ack(ping.packet.body.seq)))
        effects = h.tick_until(0.5)
        self.assertEqual(h.core.awareness.score, 1)
        effects += h.tick_until(2.0)
        self.assertNotIn(MemberSuspected(ping.packet.body.target), events(effects))

    def test_missing_nacks_lower_health(self) -> None:
        """Lifeguard 4.3: a failed probe whose relays do not even nack raises the score by the missing nacks."""
        h = Harness()
        h.tick_until(0.5)
        self.assertEqual(h.core.awareness.score, 3)

    def test_relay(self) -> None:
        """A ping-req makes this node ping the target; its ack is forwarded, its silence becomes a nack."""
        h = Harness()
        (ping,) = sends(h.hear("a", PingReq(7, "b", ("h-b", 7911))))
        self.assertEqual((ping.address, ping.packet.body.target), (("h-b", 7911), "b"))
        (forward,) = sends(h.core.receive(0.01, ("h-b", 7911), Packet("b", Ack(ping.packet.body.seq))))
        self.assertEqual((forward.address, forward.packet.body), (("h-a", 7911), Ack(7)))
        (ping,) = sends(h.hear("a", PingReq(8, "c", ("h-c", 7911))))
        nacks = [s for s in sends(h.core.tick(0.2)) if isinstance(s.packet.body, Nack)]
        self.assertEqual([(s.address, s.packet.body) for s in nacks], [(("h-a", 7911), Nack(8))])


class SuspicionTests(SynchronousTestCase):
    """SWIM 4.2 and Lifeguard 4.2: suspicion, confirmation, refutation."""

    def test_refute(self) -> None:
        """A suspicion of this node raises its incarnation; the refutation goes straight to the accuser."""
        h = Harness()
        effects = h.hear("a", Gossip(), updates=(Suspect("me", 0, "a"),))
        self.assertEqual(h.core.incarnation, 1)
        (send,) = sends(effects)
        self.assertEqual(send.address, ("h-a", 7911))
        self.assertEqual(send.packet.updates[0], Alive(ME, 1))
        self.assertEqual(h.core.awareness.score, 1)
        effects = h.hear("a", Gossip(), updates=(Suspect("me", 0, "a"),))
        self.assertEqual(h.core.incarnation, 1, "a stale accusation is answered, not refuted again")
        self.assertEqual(len(sends(effects)), 1)

    def test_gossiped_suspicion_and_refutation(self) -> None:
        """A suspicion heard from others is followed by MemberAlive when the member refutes it."""
        h = Harness()
        self.assertEqual(events(h.hear("a", Gossip(), updates=(Suspect("b", 0, "a"),))), [MemberSuspected("b")])
        self.assertEqual(events(h.hear("b", Gossip(), incarnation=1)), [MemberAlive("b")])
        self.assertEqual(h.core.status("b"), ALIVE)

    def test_unrefuted_suspicion_times_out(self) -> None:
        """A lone accuser's suspicion waits the longest timeout, then the member is dead everywhere it is heard."""
        h = Harness()
        h.hear("a", Gossip(), updates=(Suspect("b", 0, "a"),))
        _, longest = h.core.config.suspicion_timeouts(5)
        for member in h.core._members.values():
            member.probe_started = None
        effects = [e for e in h.tick_until(longest - 0.01) if e == MemberDead("b")]
        self.assertEqual(effects, [])
        self.assertIn(MemberDead("b"), events(h.tick_until(longest + 0.01)))

    def test_dead_accuser_ignored(self) -> None:
        """Accusations made by a member this node holds dead are ignored (one-way partitions)."""
        h = Harness()
        h.hear("c", Gossip(), updates=(Dead("a", 0, "c"),))
        self.assertEqual(h.core.status("a"), DEAD)
        effects = h.core.receive(1.0, ("h-x", 1), Packet("b", Gossip(), (Suspect("d", 0, "a"), Dead("c", 0, "a"))))
        self.assertEqual(events(effects), [])
        self.assertEqual((h.core.status("c"), h.core.status("d")), (ALIVE, ALIVE))

    def test_dead_member_comes_back(self) -> None:
        """A dead member that refutes with a higher incarnation is alive again (MemberAlive)."""
        h = Harness()
        h.hear("c", Gossip(), updates=(Dead("a", 0, "c"),))
        (send,) = sends(h.hear("a", Ping(3, target="me")))
        self.assertIn(Dead("a", 0, "c"), send.packet.updates, "the dead member is told, so it can refute")
        self.assertEqual(events(h.hear("a", Gossip(), incarnation=1)), [MemberAlive("a")])


class LocalChangesTests(SynchronousTestCase):
    """update_local, leave, seeds, full state."""

    def test_update_local(self) -> None:
        """A term change raises the incarnation at once; a last index alone waits for the next announcement."""
        h = Harness()
        h.core.update_local(term=3)
        self.assertEqual((h.core.incarnation, h.core.me.term), (1, 3))
        h.tick_until(0.0)
        h.core.update_local(last_index=10)
        h.core.update_local(last_index=11)
        self.assertEqual(h.core.incarnation, 1)
        h.tick_until(2.1)
        self.assertEqual((h.core.incarnation, h.core.me.last_index), (2, 11))
        h.core.update_local(term=3)
        self.assertEqual(h.core.incarnation, 2)

    def test_leave(self) -> None:
        """Leaving sends Left at a higher incarnation to every live member, then the core is silent."""
        h = Harness()
        effects = h.core.leave(1.0)
        self.assertEqual(sorted(s.address[0] for s in sends(effects)), ["h-a", "h-b", "h-c", "h-d"])
        self.assertTrue(all(s.packet.updates[0] == Left("me", 1) for s in sends(effects)))
        self.assertEqual(h.core.tick(2.0), [])
        self.assertIsNone(h.core.next_wake())
        other = Harness()
        self.assertEqual(events(other.hear("a", Gossip(), updates=(Left("a", 1),))), [MemberLeft("a")])
        self.assertEqual(other.core.status("a"), LEFT)

    def test_seed(self) -> None:
        """A seed is pinged without target until it answers; its id comes from the answer."""
        h = Harness(others=(), seeds=[("10.0.0.9", 7911)])
        (ping,) = sends(h.core.tick(0.0))
        self.assertEqual((ping.address, ping.packet.body.target), (("10.0.0.9", 7911), None))
        effects = h.core.receive(0.01, ("10.0.0.9", 7911),
                                 Packet("seed", Ack(ping.packet.body.seq), (Alive(info("seed"), 0),)))
        self.assertEqual(events(effects), [MemberJoined(info("seed"))])
        later = [s.address for s in sends(h.core.tick(0.5))]
        self.assertNotIn(("10.0.0.9", 7911), later)

    def test_seed_that_is_me(self) -> None:
        """A seed address that turns out to be this node is dropped."""
        h = Harness(others=(), seeds=[("10.0.0.9", 7911)])
        (ping,) = sends(h.core.tick(0.0))
        h.core.receive(0.01, ("10.0.0.9", 7911), ping.packet)
        self.assertEqual(sends(h.core.tick(0.5)), [])

    def test_full_state(self) -> None:
        """full_state holds every record, own first; merging it elsewhere teaches every member."""
        h = Harness()
        h.hear("c", Gossip(), updates=(Dead("a", 0, "c"),))
        records = h.core.full_state()
        self.assertEqual(records[0], Alive(ME, 0))
        other = Membership(SwimConfig(), info("z"), random.Random(2))
        effects = other.merge_full_state(0.0, records)
        joined = sorted(e.info.node_id for e in events(effects) if isinstance(e, MemberJoined))
        self.assertEqual(joined, ["b", "c", "d", "me"])
        self.assertIsNone(other.status("a"), "a dead member is not learned from a full state")
        self.assertEqual([m.status for m in other.members(0.0)], [ALIVE] * 4)
