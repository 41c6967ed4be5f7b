# -*- test-case-name: tests.cluster.swim.test_broadcasts -*-
"""L{stalwart.cluster.swim.broadcasts}: the retransmit-limited update queue."""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.broadcasts import Broadcasts
from stalwart.cluster.swim.messages import Dead, Left, Suspect


class BroadcastsTests(SynchronousTestCase):
    """SWIM 4.1: each update is piggybacked a bounded number of times, the freshest first."""

    def test_newer_replaces(self) -> None:
        """News about a member replaces older news about it."""
        queue = Broadcasts()
        queue.add(Suspect("a", 1, "x"))
        queue.add(Dead("a", 1, "x"))
        self.assertEqual(len(queue), 1)
        self.assertEqual(queue.get("a"), Dead("a", 1, "x"))

    def test_limit(self) -> None:
        """An update is dropped after being taken `limit` times."""
        queue = Broadcasts()
        queue.add(Left("a", 1))
        for _ in range(3):
            self.assertEqual(queue.take(1000, 10, 3, codec.update_size)[0], [Left("a", 1)])
        self.assertEqual(queue.take(1000, 10, 3, codec.update_size)[0], [])

    def test_order_and_budget(self) -> None:
        """Least-sent then newest first; nothing beyond the byte budget, count limit or skipped ids."""
        queue = Broadcasts()
        for name in "abcd":
            queue.add(Left(name, 1))
        queue.take(codec.update_size(Left("d", 1)), 10, 10, codec.update_size)
        taken, used = queue.take(1000, 2, 10, codec.update_size, skip=("c",))
        self.assertEqual([u.node_id for u in taken], ["b", "a"])
        self.assertEqual(used, 2 * codec.update_size(Left("a", 1)))
