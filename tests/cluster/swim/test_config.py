# -*- test-case-name: tests.cluster.swim.test_config -*-
"""L{stalwart.cluster.swim.config}: parameters and seed addresses."""

import math

from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.swim.config import SwimConfig, parse_seed, parse_seeds


class SwimConfigTests(SynchronousTestCase):
    """Derived limits grow with log(members) (SWIM 4.1, Lifeguard 4.2)."""

    def test_retransmit_limit(self) -> None:
        """retransmit_multiplier x ceil(log10(n + 1)), memberlist's rule."""
        config = SwimConfig()
        table = {1: 4, 9: 4, 10: 8, 99: 8, 100: 12}
        for members, expected in table.items():
            self.assertEqual(config.retransmit_limit(members), expected)

    def test_suspicion_timeouts(self) -> None:
        """Shortest = multiplier x max(1, log10 n) x interval; longest = max multiplier x shortest (multiplier 1 here)."""
        config = SwimConfig(suspicion_multiplier=1.0, suspicion_max_multiplier=6.0)
        self.assertEqual(config.suspicion_timeouts(3), (0.5, 3.0))
        shortest, longest = config.suspicion_timeouts(100)
        self.assertAlmostEqual(shortest, 1.0)
        self.assertAlmostEqual(longest, 6.0)
        self.assertAlmostEqual(config.suspicion_timeouts(50)[0], 0.5 * math.log10(50))

    def test_validation(self) -> None:
        """A ping timeout must be shorter than the interval; values must be positive; the cipher known."""
        self.assertRaises(ValueError, SwimConfig, ping_interval=0.2, ping_timeout=0.3)
        self.assertRaises(ValueError, SwimConfig, ping_interval=0)
        self.assertRaises(ValueError, SwimConfig, cipher="des")
        self.assertRaises(ValueError, SwimConfig, udp_payload_bytes_max=500)


class ParseSeedTests(SynchronousTestCase):
    """Seed addresses: host, host:port, [v6], [v6]:port; default port rpc-port."""

    def test_table(self) -> None:
        """Known forms and their (host, port)."""
        table = {
            "node1": ("node1", 7911),
            " node1:7000 ": ("node1", 7000),
            "10.0.0.1:1": ("10.0.0.1", 1),
            "[::1]": ("::1", 7911),
            "[fe80::1]:9000": ("fe80::1", 9000),
            "::1": ("::1", 7911),
        }
        for text, expected in table.items():
            self.assertEqual(parse_seed(text, 7911), expected)

    def test_bad(self) -> None:
        """Empty hosts and bad ports are refused."""
        for text in ["", ":7000", "host:0", "host:x", "host:70000", "[::1]x", "[]:1"]:
            self.assertRaises(ValueError, parse_seed, text, 7911)

    def test_list(self) -> None:
        """Separated by commas, semicolons or spaces (Stalwart's 'a; b' form works)."""
        self.assertEqual(parse_seeds("a; b:2,c", 1), [("a", 1), ("b", 2), ("c", 1)])
