# -*- test-case-name: tests.cluster.swim.test_awareness -*-
"""L{stalwart.cluster.swim.awareness}: Lifeguard's local health multiplier."""

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim.awareness import Awareness


class AwarenessTests(SynchronousTestCase):
    """Lifeguard 4.3: the score stays in [0, max - 1] and scales timeouts by score + 1."""

    def test_clamped(self) -> None:
        """The score never leaves [0, max - 1], whatever the deltas."""
        awareness = Awareness(8)
        self.assertEqual(awareness.apply(-3), 0)
        self.assertEqual(awareness.apply(100), 7)
        self.assertEqual(awareness.apply(-2), 5)

    def test_scale(self) -> None:
        """A healthy node keeps its timeouts; one at score 3 waits four times as long."""
        awareness = Awareness(8)
        self.assertEqual(awareness.scale(0.5), 0.5)
        awareness.apply(3)
        self.assertEqual(awareness.scale(0.5), 2.0)
        self.assertRaises(ValueError, Awareness, 0)
