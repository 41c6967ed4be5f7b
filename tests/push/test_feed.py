# -*- test-case-name: tests.push.test_feed -*-
"""
Tests for L{stalwart.push.feed} (coalescing, RFC 8620 7.1) and the state
collector of L{stalwart.store.changes} that feeds it.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.push.feed import ChangeFeed, Throttle, parse_types, state_change
from stalwart.store.changes import StateCollector
from stalwart.cluster.raft.messages import Entry


class ThrottleTests(SynchronousTestCase):
    def test_first_change_due_now(self) -> None:
        """A change after a quiet period is due at once (delay 0)."""
        throttle = Throttle(1.0)
        self.assertEqual(throttle.add(10.0, {"Email": "5"}, "5"), 0.0)
        self.assertEqual(throttle.take(10.0), {"Email": "5"})

    def test_coalesced_within_interval(self) -> None:
        """Changes within the interval wait for its end and merge, newest state winning."""
        throttle = Throttle(1.0)
        throttle.add(10.0, {"Email": "5"}, "5")
        throttle.take(10.0)
        self.assertAlmostEqual(throttle.add(10.2, {"Email": "6"}, "6"), 0.8)
        self.assertIsNone(throttle.add(10.5, {"Email": "7", "Mailbox": "7"}, "7"))
        self.assertEqual(throttle.take(11.0), {"Email": "7", "Mailbox": "7"})
        self.assertEqual(throttle.push_state, "7")

    def test_hold(self) -> None:
        """After hold(s), nothing is due before s seconds have passed."""
        throttle = Throttle(1.0)
        throttle.hold(10.0, 30.0)
        self.assertEqual(throttle.add(11.0, {"Email": "1"}, "1"), 29.0)

    def test_empty_never_due(self) -> None:
        """A change of no wanted type schedules nothing."""
        self.assertIsNone(Throttle(1.0).add(0.0, {}, "3"))


class HelpersTests(SynchronousTestCase):
    def test_state_change(self) -> None:
        """The StateChange object of RFC 8620 7.1, with pushState when given."""
        self.assertEqual(state_change("a1", {"Email": "3"}), {"@type": "StateChange", "changed": {"a1": {"Email": "3"}}})
        self.assertEqual(state_change("a1", {}, "4")["pushState"], "4")

    def test_parse_types(self) -> None:
        """null is every type; a list of names is a set; anything else is refused."""
        self.assertIsNone(parse_types(None))
        self.assertEqual(parse_types(["Email", "Mailbox"]), frozenset({"Email", "Mailbox"}))
        for bad in ("Email", [1], [""], {}):
            self.assertRaises(ValueError, parse_types, bad)


class CollectorTests(SynchronousTestCase):
    def test_per_entry(self) -> None:
        """Notes go to the current entry; a discarded entry changed nothing."""
        collector = StateCollector()
        collector.index = 4
        collector.note("a", "Email", 7)
        collector.note("a", "Email", 8)
        collector.note("a", "Thread", 9)
        collector.index = 5
        collector.note("b", "Email", 1)
        collector.discard(5)
        self.assertEqual(collector.take(), {4: {"a": {"Email": 8, "Thread": 9}}})
        self.assertEqual(collector.take(), {})


class FeedTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.changed = {}
        self.feed = ChangeFeed(self.clock, 1.0, lambda index: self.changed.get(index, {}))
        self.got = []

    def apply(self, index: int, changed, data: bytes = b"") -> None:
        self.changed[index] = changed
        self.feed.applied(Entry(term=1, index=index, data=data), None)

    def test_one_turn_one_message(self) -> None:
        """Entries applied in one reactor turn go out together, at its end."""
        self.feed.listen("a", lambda states, push: self.got.append((states, push)))
        self.apply(1, {"a": {"Email": 3, "Thread": 4}})
        self.apply(2, {"a": {"Email": 5}, "b": {"Email": 1}})
        self.assertEqual(self.got, [])
        self.clock.advance(0)
        self.assertEqual(self.got, [({"Email": "5", "Thread": "4"}, "5")])

    def test_throttled(self) -> None:
        """A second change within the throttle waits until the interval is over."""
        self.feed.listen("a", lambda states, push: self.got.append(states))
        self.apply(1, {"a": {"Email": 3}})
        self.clock.advance(0)
        self.apply(2, {"a": {"Email": 4}})
        self.clock.advance(0.5)
        self.assertEqual(len(self.got), 1)
        self.clock.advance(0.5)
        self.assertEqual(self.got, [{"Email": "3"}, {"Email": "4"}])

    def test_types_and_cancel(self) -> None:
        """A listener sees only its types; after cancel, nothing."""
        listener = self.feed.listen("a", lambda states, push: self.got.append(states), frozenset({"Mailbox"}))
        self.apply(1, {"a": {"Email": 3}})
        self.clock.advance(1)
        self.assertEqual(self.got, [])
        self.apply(2, {"a": {"Mailbox": 4}})
        listener.cancel()
        self.clock.advance(1)
        self.assertEqual(self.got, [])
        self.assertEqual(self.feed.listening("a"), 0)

    def test_delivery_type(self) -> None:
        """A mail.deliver entry also changes EmailDelivery (RFC 8621 1.5)."""
        from stalwart.store.commands import Command, encode_command

        self.feed.listen("a", lambda states, push: self.got.append(states))
        self.apply(1, {"a": {"Email": 3, "Mailbox": 3}}, encode_command(Command(kind="mail.deliver")))
        self.clock.advance(0)
        self.assertEqual(self.got, [{"Email": "3", "Mailbox": "3", "EmailDelivery": "3"}])
