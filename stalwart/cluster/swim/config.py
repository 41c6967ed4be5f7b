# -*- test-case-name: tests.cluster.swim.test_config -*-
"""
The parameters of SWIM gossip (L{SwimConfig}) and seed address parsing.

Defaults are tuned with C{bench/gossip.py} for clusters of 3 to 50 nodes
on a LAN with the issue's 500 ms C{peer-ping-interval}: in simulation a
crashed member is first convicted after 1.0 s (10 members) or 1.3 s (50
members), median of 20 runs, and by every member after 1.1 s or 1.5 s
(Stalwart took 1.9 to 2.7 s), with no false conviction in ten simulated
minutes at 10% packet loss.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import attrs

from stalwart.cluster.phi.detector import PhiParameters

__all__ = ["SwimConfig", "parse_seed", "parse_seeds"]

_positive = attrs.validators.gt(0)


@attrs.frozen
class SwimConfig:
    """SWIM, Lifeguard and phi accrual parameters.  Times are in seconds."""

    ping_interval: float = attrs.field(default=0.5, validator=_positive)
    """C{peer-ping-interval}: one member is probed per interval, in turn
    (SWIM section 4.3, round robin).  Each member is then probed by someone
    about once per interval whatever the cluster size, so detection time
    does not grow with it; shorter means faster detection and more
    packets (two per member per interval, plus indirect probes)."""

    ping_timeout: float = attrs.field(default=0.15, validator=_positive)
    """How long a direct ping waits for its ack before the member is
    probed through others (SWIM section 3.1), and how long a relay waits
    before it sends a nack.  Far above a LAN round trip (and scaled up on
    a node in poor health); the probe fails as soon as every relay nacked,
    about two timeouts after it started."""

    indirect_checks: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    """Members asked to probe a silent member for us (SWIM's k).  Each is
    an independent path, so false suspicions under loss fall about
    geometrically with k; memberlist uses 3."""

    suspicion_multiplier: float = attrs.field(default=0.8, validator=_positive)
    """Shortest suspicion timeout, in ping intervals times
    max(1, log10(members)): the time a suspected member has to refute
    before it is declared dead, once enough others confirm the suspicion
    (Lifeguard section 4.2).  The log10 grows it with the time gossip
    needs to reach everybody.  memberlist uses 4 with 1 s intervals; 0.8
    (0.4 s with 10 members, 0.68 s with 50) is enough here because the
    accuser repeats its accusation to the suspect every C{gossip_interval}
    and the suspect answers each time with its refutation, straight to
    the accuser: bench/gossip.py sees no false conviction under 10% loss."""

    suspicion_max_multiplier: float = attrs.field(default=6.0, validator=attrs.validators.ge(1))
    """Longest suspicion timeout, as a multiple of the shortest: what a
    suspicion nobody confirms waits (Lifeguard section 4.2; memberlist's
    6).  A lone accuser is more often wrong (its own links may be bad), so
    it gets more time to be refuted."""

    suspicion_confirmations: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    """Independent confirmations (other accusers, or relays that got no
    answer) that bring the suspicion timeout down to its shortest
    (Lifeguard's k; capped at the number of members minus 2)."""

    retransmit_multiplier: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    """Each update is piggybacked this many times ceil(log10(members + 1))
    (SWIM section 4.1, memberlist's RetransmitMult): enough for an
    epidemic to reach everyone with high probability, and bounded so that
    old news stops taking space."""

    gossip_interval: float = attrs.field(default=0.1, validator=_positive)
    """How often news (updates not yet sent enough times) is pushed to
    C{gossip_fanout} random members, besides riding on probes.  Shorter
    spreads suspicions and refutations faster; it costs packets only
    while there is news."""

    gossip_fanout: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    """Members each gossip round is sent to (memberlist's GossipNodes)."""

    awareness_max: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    """Lifeguard local health (section 4.3): a node whose probes go
    unanswered, or whose timers fire late, multiplies its probe interval,
    ping timeout, suspicion timeouts and phi pause by up to this (score + 1,
    score in [0, awareness_max - 1]); memberlist uses 8."""

    loop_lag_max: float = attrs.field(default=0.25, validator=_positive)
    """A probe timer firing this much late means this node's event loop is
    slow: its local health score goes up."""

    phi_threshold: float = attrs.field(default=8.0, validator=_positive)
    """Phi at which a member whose probe went unanswered is suspected.
    Akka's default; 8 means a chance of 1 in 10**8 that the acks are merely
    late given how regularly they came so far."""

    phi_window_size: int = attrs.field(default=100, validator=attrs.validators.ge(2))
    """Ack inter-arrival times kept per member."""

    phi_std_min: float = attrs.field(default=0.05, validator=_positive)
    """Floor on the standard deviation of ack inter-arrival times (Akka's
    min-std-deviation), also the spread a new window is seeded with.  With
    0.05 s phi passes 8 about 0.27 s after a probe started, so for a
    member whose acks are regular the failed probe (0.3 s at the earliest)
    decides; a member whose acks come irregularly (lost pings, indirect
    acks) gets a larger deviation and so more time."""

    phi_acceptable_pause: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    """Silence that costs nothing, added to the mean (Akka's
    acceptable-heartbeat-pause)."""

    index_gossip_interval: float = attrs.field(default=2.0, validator=_positive)
    """A change of this node's last log index alone is announced at most
    this often: it changes with every commit, and each announcement is a
    new incarnation that every member relays.  A term change is announced
    at once."""

    reconnect_interval: float = attrs.field(default=2.0, validator=_positive)
    """A dead member is probed every this many seconds, in turn, so that
    the two sides of a healed partition find each other again."""

    dead_reap_timeout: float = attrs.field(default=300.0, validator=_positive)
    """A dead or departed member is forgotten after this long (and its
    last incarnation after as long again, so stale news cannot bring it
    back).  Long enough for every member to have heard of its death."""

    anti_entropy_records: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    """Records about random members added to each probe and ack when there
    is room, so that membership converges even when news has been sent its
    quota of times (a newcomer learns everyone this way)."""

    udp_payload_bytes_max: int = attrs.field(default=1400, validator=attrs.validators.ge(900))
    """Largest datagram sent, sealing included: under the 1,500-byte
    Ethernet MTU with room for IP, UDP and tunnel headers, so that no
    packet is fragmented.  Piggybacked updates are packed to fit."""

    replay_window: float = attrs.field(default=30.0, validator=_positive)
    """A sealed packet whose timestamp is further than this from the
    receiver's clock is refused; node clocks must agree this closely."""

    replay_entries_max: int = attrs.field(default=65536, validator=attrs.validators.ge(1))
    """Packet nonces remembered within the replay window."""

    cipher: str = attrs.field(default="aes-256-gcm",
                              validator=attrs.validators.in_(("aes-256-gcm", "chacha20-poly1305")))
    """AEAD cipher for gossip; AES-256-GCM is fastest with AES-NI,
    ChaCha20-Poly1305 without."""

    def __attrs_post_init__(self) -> None:
        if self.ping_timeout >= self.ping_interval:
            raise ValueError("ping_timeout must be below ping_interval")

    @property
    def phi(self) -> PhiParameters:
        """The phi detector parameters."""
        return PhiParameters(window_size=self.phi_window_size, std_min_seconds=self.phi_std_min,
                             acceptable_pause_seconds=self.phi_acceptable_pause,
                             seed_spread_seconds=min(self.phi_std_min, self.ping_interval))

    def retransmit_limit(self, members: int) -> int:
        """Times each update is sent with C{members} members (self included)."""
        return self.retransmit_multiplier * max(1, math.ceil(math.log10(members + 1)))

    def suspicion_timeouts(self, members: int) -> Tuple[float, float]:
        """The (shortest, longest) suspicion timeout with C{members} members (self included)."""
        shortest = self.suspicion_multiplier * max(1.0, math.log10(max(1, members))) * self.ping_interval
        return shortest, shortest * self.suspicion_max_multiplier


def parse_seed(text: str, default_port: int) -> Tuple[str, int]:
    """
    One seed address: C{host}, C{host:port}, C{[v6]} or C{[v6]:port}
    (spaces around it are ignored, unlike Stalwart).

    @raise ValueError: for an empty host or a bad port.
    """
    text = text.strip()
    port = default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad seed address {text!r}")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    else:
        host = text
    if not host:
        raise ValueError(f"bad seed address {text!r}")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in seed address {whole!r}")
    return int(text)


def parse_seeds(text: str, default_port: int) -> List[Tuple[str, int]]:
    """Seed addresses separated by commas, semicolons or spaces."""
    parts = text.replace(";", " ").replace(",", " ").split()
    return [parse_seed(part, default_port) for part in parts]
