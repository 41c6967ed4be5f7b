# -*- test-case-name: tests.cluster.swim.test_service -*-
"""
The gossip service: SWIM over sealed UDP on C{rpc-port}, for the node.

It listens on the UDP port of C{me.rpc_address} (on C{bind_host}),
resolves the seed addresses, runs L{stalwart.cluster.swim.protocol.SwimProtocol}
and passes every member event to C{on_event}.  Stopping it announces that
this node leaves.  Only this shell touches the reactor.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import attrs
from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.config import SwimConfig, parse_seed
from stalwart.cluster.swim.members import Membership
from stalwart.cluster.swim.messages import MemberEvent, MemberInfo
from stalwart.cluster.swim.protocol import SwimProtocol
from stalwart.cluster.swim.seal import Seal

__all__ = ["GossipService"]

Seed = Union[str, Tuple[str, int]]


class GossipService(Service):
    """
    @param reactor: provides C{IReactorUDP} and C{IReactorCore.resolve}.
    @param clock: provides C{IReactorTime} (the reactor in production).
    @param config: the protocol parameters.
    @param me: this node's information; C{me.rpc_address} is advertised
        and its port is the UDP port listened on.  Port 0 (tests only)
        listens on a free port and advertises it.
    @param seeds: C{"host"}, C{"host:port"} (default port: this node's
        rpc port) or (host, port); host names are resolved at start, and
        again every C{reconnect_interval} while they fail.
    @param encryption_key: the cluster's C{encryption-key}, or several: the
        first seals, all open (key rotation).
    @param rng: randomness for the core (C{random.SystemRandom()} in
        production).
    @param urandom: nonce source (C{os.urandom} in production).
    @param on_event: called with each L{MemberEvent}, in order.
    @param bind_host: the interface to listen on (C{rpc-bind-addr}).
    @param counters: where received, sent and dropped datagrams are
        counted (a new C{Counter} by default).
    """

    log = Logger(observer=observer)

    def __init__(self, reactor: Any, clock: Any, config: SwimConfig, me: MemberInfo, seeds: Iterable[Seed],
                 encryption_key: Union[str, Sequence[str]], rng: random.Random,
                 urandom: Callable[[int], bytes], on_event: Callable[[MemberEvent], None],
                 bind_host: str = "", counters: Optional[Counter] = None) -> None:
        self._reactor = reactor
        self._clock = clock
        self._config = config
        self._me = me
        self._seeds: List[Tuple[str, int]] = [
            parse_seed(seed, me.rpc_address[1]) if isinstance(seed, str) else (seed[0], int(seed[1]))
            for seed in seeds]
        keys = [encryption_key] if isinstance(encryption_key, str) else list(encryption_key)
        self._seal = Seal(keys, config.cipher, urandom, config.replay_window, config.replay_entries_max)
        self._rng = rng
        self._on_event = on_event
        self._bind_host = bind_host
        self.counters: Counter = Counter() if counters is None else counters
        self.protocol: Optional[SwimProtocol] = None
        self._port: Any = None

    @property
    def membership(self) -> Membership:
        """The core (for L{Membership.full_state}, status pages...); exists once started."""
        assert self.protocol is not None, "the gossip service is not started"
        return self.protocol.membership

    @property
    def address(self) -> Tuple[str, int]:
        """The UDP address listened on."""
        host = self._port.getHost()
        return host.host, host.port

    def update_local(self, **changes: Any) -> None:
        """
        Announce a change of this node's C{term}, C{last_index},
        C{jmap_url}, C{rpc_address} or C{read_replica} (see
        L{Membership.update_local}).
        """
        assert self.protocol is not None, "the gossip service is not started"
        self.protocol.update_local(**changes)

    def full_state(self) -> bytes:
        """Every record this node holds, encoded (L{codec.encode_records}), for a push-pull exchange."""
        return codec.encode_records(self.membership.full_state())

    def merge_full_state(self, data: bytes) -> None:
        """
        Merge a peer's L{full_state}.

        @raise codec.CodecError: if C{data} is not a full state.
        """
        assert self.protocol is not None, "the gossip service is not started"
        self.protocol.merge_full_state(codec.decode_records(data))

    def startService(self) -> None:
        super().startService()
        membership = Membership(self._config, self._me, self._rng)
        self.protocol = SwimProtocol(membership, self._seal, self._clock, self._on_event, self.counters)
        self._port = self._reactor.listenUDP(self._me.rpc_address[1], self.protocol, interface=self._bind_host)
        if self._me.rpc_address[1] == 0:
            membership.me = attrs.evolve(self._me, rpc_address=(self._me.rpc_address[0], self.address[1]))
        self.log.info("gossip listening on UDP {address}", address=self.address)
        for seed in self._seeds:
            self._resolve(seed)

    def _resolve(self, seed: Tuple[str, int]) -> None:
        host, port = seed
        if isIPAddress(host) or isIPv6Address(host):
            self._add_seed((host, port))
            return

        def failed(failure: Any) -> None:
            self.log.warn("cannot resolve seed {host}: {error}", host=host, error=failure.getErrorMessage())
            if self.running:
                self._clock.callLater(self._config.reconnect_interval, self._resolve, seed)

        self._reactor.resolve(host).addCallbacks(lambda ip: self._add_seed((ip, port)), failed)

    def _add_seed(self, address: Tuple[str, int]) -> None:
        if self.running and self.protocol is not None:
            self.protocol.membership.add_seeds([address])

    def leave(self) -> None:
        """Announce the departure now and fall silent (the node leaves the cluster for good)."""
        if self.protocol is not None and not self.protocol.membership.left:
            self.protocol.leave()

    def stopService(self) -> Deferred:
        """Announce the departure, then stop listening."""
        super().stopService()
        self.leave()
        return maybeDeferred(self._port.stopListening)
