# -*- test-case-name: tests.push.test_feed -*-
"""
The feed of changed JMAP states (RFC 8620 section 7.1), for every push
channel of this node.

Every node applies every log entry, so every node learns every change
here, whichever node took the write: the state machine notes the
C{(account, type)} states each entry changed (L{StateMachine.changed_states})
and the driver hands each applied entry to L{ChangeFeed.applied}.

A delivered message also changes the pseudo-type C{EmailDelivery}
(RFC 8621 section 1.5), so that clients may tell new mail from other
changes to Emails.

Coalescing (L{Throttle}, pure): a listener gets its first change at the
end of the reactor turn that applied it (so the entries of one applied
batch go out together), then at most one StateChange per throttle
interval, carrying the newest state of every type changed meanwhile.

The account's modseq (the state of all its types at once) is the
C{pushState} (RFC 8887 4.3.5) and the EventSource event id: given it back,
L{states_since} finds the types changed after it.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

from twisted.logger import Logger

from stalwart.logs import observer
from stalwart.store.changes import parse_state
from stalwart.store.commands import command_kind

__all__ = ["Throttle", "ChangeFeed", "Listener", "state_change", "states_since", "parse_types", "DELIVERY_TYPE"]

DELIVERY_TYPE = "EmailDelivery"
#: Commands that deliver mail (stalwart.mail.delivery.DELIVER_COMMAND).
DELIVER_KINDS = frozenset({"mail.deliver"})

log = Logger(observer=observer)

TypeStates = Dict[str, str]


def state_change(account: str, states: Mapping[str, str], push_state: Optional[str] = None) -> dict:
    """The StateChange object (RFC 8620 7.1; pushState from RFC 8887 4.3.5.1)."""
    change: dict = {"@type": "StateChange", "changed": {account: dict(states)}}
    if push_state is not None:
        change["pushState"] = push_state
    return change


def parse_types(value: object) -> Optional[FrozenSet[str]]:
    """
    A types filter: C{None} for every type, else the set of type names.
    Raises ValueError unless C{value} is None or a list of strings.
    """
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value) or len(value) > 256:
        raise ValueError("types must be null or a list of type names")
    return frozenset(value)


def states_since(conn: sqlite3.Connection, account: str, push_state: object) -> Optional[Tuple[TypeStates, str]]:
    """
    (type states changed after C{push_state}, current push state), or None
    if C{push_state} is not one of ours (then the client must resync).
    Runs on a reader thread.
    """
    since = parse_state(push_state)
    row = conn.execute("SELECT modseq FROM accounts WHERE id = ?", (account,)).fetchone()
    if since is None or row is None or since > row[0]:
        return None
    rows = conn.execute(
        "SELECT type, modseq FROM states WHERE account_id = ? AND modseq > ?", (account, since)
    ).fetchall()
    return {name: str(modseq) for name, modseq in rows}, str(row[0])


class Throttle:
    """
    Pending changes of one listener and when they may go out: at most one
    push per C{interval} seconds.  Pure: time is an argument.
    """

    def __init__(self, interval: float) -> None:
        assert interval >= 0, interval
        self.interval = interval
        self.pending: TypeStates = {}
        self.push_state: Optional[str] = None
        self._last_sent = float("-inf")
        self._due: Optional[float] = None

    def add(self, now: float, states: Mapping[str, str], push_state: str) -> Optional[float]:
        """
        Merge C{states}; the delay (seconds) after which L{take} should be
        called, or None if a call is already due.
        """
        self.pending.update(states)
        self.push_state = push_state
        if self._due is not None or not self.pending:
            return None
        self._due = max(now, self._last_sent + self.interval)
        return self._due - now

    def take(self, now: float) -> TypeStates:
        pending, self.pending = self.pending, {}
        self._due = None
        if pending:
            self._last_sent = now
        return pending

    def hold(self, now: float, seconds: float) -> None:
        """Send nothing for C{seconds} (a 429 from a push service)."""
        self._last_sent = max(self._last_sent, now + seconds - self.interval)


class Listener:
    """
    One push channel's interest in one account: C{deliver(states,
    push_state)} is called with coalesced changes of the wanted C{types}
    (None: all).
    """

    def __init__(self, feed: "ChangeFeed", account: str, deliver: Callable[[TypeStates, str], None],
                 types: Optional[FrozenSet[str]], interval: float) -> None:
        self._feed = feed
        self.account = account
        self.types = types
        self._deliver = deliver
        self._throttle = Throttle(interval)
        self._call = None

    def changed(self, states: Mapping[str, str], push_state: str) -> None:
        if self.types is not None:
            states = {name: state for name, state in states.items() if name in self.types}
        delay = self._throttle.add(self._feed.clock.seconds(), states, push_state)
        if delay is not None:
            self._call = self._feed.clock.callLater(delay, self._flush)

    def hold(self, seconds: float) -> None:
        self._throttle.hold(self._feed.clock.seconds(), seconds)

    def _flush(self) -> None:
        self._call = None
        states = self._throttle.take(self._feed.clock.seconds())
        if states:
            self._deliver(states, self._throttle.push_state)

    def cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._feed._remove(self)


class ChangeFeed:
    """
    Fans the changes of applied entries out to listeners, by account.

    @ivar clock: the L{IReactorTime} of the coalescing timers.
    """

    def __init__(self, clock, interval: float, changed_states: Callable[[int], Mapping[str, Mapping[str, int]]]) -> None:
        """
        @param interval: the event-source-throttle, in seconds.
        @param changed_states: C{{account: {type: modseq}}} an applied
            entry changed, by its index.
        """
        self.clock = clock
        self.interval = interval
        self._changed_states = changed_states
        self._listeners: Dict[str, List[Listener]] = {}
        self._observers: List[Callable[[str, TypeStates, str], None]] = []

    def listen(self, account: str, deliver: Callable[[TypeStates, str], None],
               types: Optional[FrozenSet[str]] = None, interval: Optional[float] = None) -> Listener:
        listener = Listener(self, account, deliver, types, self.interval if interval is None else interval)
        self._listeners.setdefault(account, []).append(listener)
        return listener

    def observe(self, observer: Callable[[str, TypeStates, str], None]) -> None:
        """Call C{observer(account, states, push_state)} for every change, uncoalesced."""
        self._observers.append(observer)

    def listening(self, account: str) -> int:
        return len(self._listeners.get(account, ()))

    def _remove(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.account, [])
        if listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[listener.account]

    def applied(self, entry, result) -> None:
        """The driver's on_applied listener."""
        changed = self._changed_states(entry.index)
        if not changed:
            return
        delivery = command_kind(entry.data) in DELIVER_KINDS
        for account, modseqs in changed.items():
            states = {name: str(modseq) for name, modseq in modseqs.items()}
            if delivery and "Email" in states:
                states[DELIVERY_TYPE] = states["Email"]
            push_state = str(max(modseqs.values()))
            for listener in list(self._listeners.get(account, ())):
                listener.changed(states, push_state)
            for watcher in self._observers:
                try:
                    watcher(account, states, push_state)
                except Exception:
                    log.failure("push observer failed")
