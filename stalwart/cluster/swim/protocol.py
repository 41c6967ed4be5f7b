# -*- test-case-name: tests.cluster.swim.test_protocol -*-
"""
The UDP shell of SWIM gossip: opens and seals datagrams, hands packets and
ticks to L{stalwart.cluster.swim.members.Membership} with
C{clock.seconds()}, and carries out what it returns.  It makes no
protocol decisions.

A datagram that does not open (L{stalwart.cluster.swim.seal.Rejected}) or
does not decode is dropped and counted in C{counters} under the reason
(C{forged}, C{unknown_key}, C{replayed}, C{malformed}, C{unsupported}),
never parsed further.  Effects are carried out in the order the core
returns them: each L{Send} is encoded, sealed and written at once; each
member event goes to C{on_event}.  Then the single timer is set to the
core's next wake-up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.swim import codec
from stalwart.cluster.swim.members import Membership
from stalwart.cluster.swim.messages import Effect, MemberEvent, Send, Update
from stalwart.cluster.swim.seal import Rejected, Seal

__all__ = ["SwimProtocol"]


class SwimProtocol(DatagramProtocol):
    """
    @param membership: the core.
    @param seal: seals and opens datagrams (the key ring and replay window).
    @param clock: provides C{IReactorTime}: the time given to the core and
        the timers.
    @param on_event: called with every member event, in order.
    @param counters: where drops are counted.
    """

    log = Logger(observer=observer)

    def __init__(self, membership: Membership, seal: Seal, clock: Any,
                 on_event: Callable[[MemberEvent], None], counters: Counter) -> None:
        self.membership = membership
        self._seal = seal
        self._clock = clock
        self._on_event = on_event
        self.counters = counters
        self._timer: Any = None

    def startProtocol(self) -> None:
        self._schedule()

    def stopProtocol(self) -> None:
        self._cancel()

    def datagramReceived(self, data: bytes, addr: Tuple[str, int]) -> None:
        now = self._clock.seconds()
        try:
            packet = codec.decode(self._seal.open(data, now))
        except Rejected as e:
            self.counters[e.reason] += 1
            return
        except codec.UnsupportedVersion:
            self.counters["unsupported"] += 1
            return
        except codec.CodecError:
            self.counters["malformed"] += 1
            return
        self.counters["received"] += 1
        self._perform(self.membership.receive(now, (addr[0], addr[1]), packet))
        self._schedule()

    def merge_full_state(self, records: List[Update]) -> None:
        """Merge another node's full state (see L{Membership.merge_full_state}) and carry out the effects."""
        self._perform(self.membership.merge_full_state(self._clock.seconds(), records))
        self._schedule()

    def update_local(self, **changes: Any) -> None:
        """Change this node's own record (see L{Membership.update_local})."""
        self.membership.update_local(**changes)
        self._schedule()

    def leave(self) -> None:
        """Announce that this node leaves, and stop the timer."""
        self._perform(self.membership.leave(self._clock.seconds()))
        self._cancel()

    def _wake(self) -> None:
        self._timer = None
        self._perform(self.membership.tick(self._clock.seconds()))
        self._schedule()

    def _perform(self, effects: List[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._write(effect)
            else:
                try:
                    self._on_event(effect)
                except Exception:
                    self.log.failure("member event handler failed on {event}", event=effect)

    def _write(self, send: Send) -> None:
        if self.transport is None:
            return
        datagram = self._seal.seal(codec.encode(send.packet), self._clock.seconds())
        try:
            self.transport.write(datagram, send.address)
        except Exception as e:
            self.counters["send_failed"] += 1
            self.log.debug("gossip to {address} failed: {error}", address=send.address, error=e)
        else:
            self.counters["sent"] += 1
            self.counters["sent_bytes"] += len(datagram)

    def _schedule(self) -> None:
        wake: Optional[float] = self.membership.next_wake()
        if wake is None:
            self._cancel()
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= wake:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(max(0.0, wake - self._clock.seconds()), self._wake)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
