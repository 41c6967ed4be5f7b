# -*- test-case-name: tests.cluster.raft.test_driver -*-
"""
The shell around L{RaftCore}: it moves Ready batches to disk, to peers and
to the state machine, and turns a proposal into a Deferred that fires with
the state machine's result for that entry.

Order for each Ready (etcd-io/raft's contract, with pipelining):

  1. hand C{committed} to the apply worker: those entries were made durable
     by an earlier Ready, so applying them may overlap with step 2;
  2. persist C{hard_state} then C{entries} on the log thread
     (L{LogWriter}: every Ready queued while the previous fsync ran shares
     the next one, which is the group commit);
  3. once that Ready and all before it are durable, send C{messages} (a
     vote or an acknowledgement only leaves once what it promises is on
     disk);
  4. C{advance()}.

Readies are taken from the core as soon as it has them, so the core keeps
working while writes are queued.  A failed write or fsync stops the write
path for good (after fsyncgate, a failed fsync cannot be retried safely):
every waiting and later proposal fails with L{StorageFailed}.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from stalwart.logs import observer

from stalwart.cluster.raft.core import LEADER, NotLeader, RaftCore
from stalwart.cluster.raft.messages import Entry, Ready, encode_entry_payload
from stalwart.cluster.raft.segments.format import Record
from stalwart.cluster.raft.writer import LogWriter

__all__ = ["RaftDriver", "StorageFailed", "ProposalDropped", "Stopping"]


class StorageFailed(Exception):
    """The log could not be written: this node takes no more writes."""


class ProposalDropped(Exception):
    """Leadership changed and another entry took this proposal's index; retry."""


class Stopping(Exception):
    """The service is shutting down."""


class RaftDriver:
    log = Logger(observer=observer)

    def __init__(
        self,
        core: RaftCore,
        segment_log,
        hard_state_file,
        state_machine,
        clock,
        log_worker: Callable[..., Deferred],
        apply_worker: Callable[..., Deferred],
        send: Optional[Callable] = None,
        tick_seconds: float = 0.1,
        call_from_thread: Optional[Callable[..., None]] = None,
    ) -> None:
        """
        @param log_worker: C{log_worker(f, *args)} runs C{f} on the log
            thread and returns a Deferred of its result; calls run in order.
        @param apply_worker: the same, for the state machine's thread.
        @param state_machine: has C{apply(entries) -> list of results}.
        @param send: delivers a message to a peer (None: no peers).
        @param call_from_thread: schedules a call on the reactor thread
            (C{reactor.callFromThread}); by default a direct call, for
            synchronous workers.
        """
        self.core = core
        self._segments = segment_log
        self._hard_state_file = hard_state_file
        self._state_machine = state_machine
        self._clock = clock
        self._log_worker = log_worker
        self._apply_worker = apply_worker
        self._send = send
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = clock
        self._tick_seconds = tick_seconds
        self._waiting: Dict[int, Tuple[int, Deferred]] = {}
        self._writer = LogWriter(self._persist, log_worker, call_from_thread or (lambda f, *a: f(*a)))
        self._writes_queued = 0
        self._pump_call = None
        self._idle_waiters: List[Deferred] = []
        self._applying: Optional[Deferred] = None
        self._apply_queue: List[Tuple[Entry, ...]] = []
        self._failure: Optional[Exception] = None
        self._stopping = False
        self.applied = core.log.applying
        self._appliedWaiters: List[Tuple[int, Deferred]] = []
        self._listeners: List[Callable] = []

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._ticker.start(self._tick_seconds, now=False)
        if self.core.voters == {self.core.id}:
            # A group of one need not wait an election timeout.
            self.core.campaign()
        self._pump()

    def stop(self) -> Deferred:
        """Stop taking proposals; fire once queued writes and applies are done."""
        self._stopping = True
        if self._ticker.running:
            self._ticker.stop()
        d = Deferred()
        self._idle_waiters.append(d)
        self._check_idle()
        return d

    def _check_idle(self) -> None:
        if not self._stopping or self._writes_queued or self._applying is not None:
            return
        if self.core.has_ready() and self._failure is None:
            return  # committed entries still to hand to the state machine
        for term, waiter in list(self._waiting.values()):
            waiter.errback(Stopping("server is stopping"))
        self._waiting.clear()
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- inputs ------------------------------------------------------------

    def propose(self, data: bytes) -> Deferred:
        """Fires with the state machine's result once the entry is committed and applied."""
        return self.propose_entry(data).addCallback(lambda applied: applied[2])

    def propose_entry(self, data: bytes) -> Deferred:
        """
        L{propose}, firing with C{(term, index, result)}: what a follower
        that forwarded the proposal needs to find the entry in its own log.
        """
        if self._failure is not None:
            return fail(StorageFailed(str(self._failure)))
        if self._stopping:
            return fail(Stopping("server is stopping"))
        try:
            entry = self.core.propose(data)
        except NotLeader as e:
            return fail(e)
        d = Deferred()
        self._waiting[entry.index] = (entry.term, d)
        self._pump_soon()
        return d.addCallback(lambda result: (entry.term, entry.index, result))

    def bootstrap(self) -> None:
        """Found a new cluster with this node as its only voter (L{RaftCore.bootstrap}), and lead it."""
        self.core.bootstrap()
        self.core.campaign()
        self._pump_soon()

    def change_configuration(self, **change) -> Entry:
        """L{RaftCore.propose_config_change}, then act on it."""
        entry = self.core.propose_config_change(**change)
        self._pump_soon()
        return entry

    def step(self, message) -> None:
        self.core.step(message)
        self._pump_soon()

    def wait_applied(self, index: int) -> Deferred:
        """Fires once the state machine has applied C{index}."""
        if self.applied >= index:
            return succeed(self.applied)
        d = Deferred()
        self._appliedWaiters.append((index, d))
        return d

    def read_barrier(self) -> Deferred:
        """
        Fires when local state reflects everything committed so far (as far
        as this node can tell, L{RaftCore.read_index}): what a read must
        wait for after a restart or on a lagging follower.  Fails with
        L{NotLeader} on a node that has not heard from a leader lately.
        """
        target = self.core.read_index()
        if target is None:
            return fail(NotLeader(self.core.leader))
        return self.wait_applied(target)

    def on_applied(self, listener: Callable[[Entry, object], None]) -> None:
        """Call C{listener(entry, result)} for every applied entry, in log order."""
        self._listeners.append(listener)

    @property
    def is_leader(self) -> bool:
        return self.core.role == LEADER and self._failure is None

    # -- the loop ----------------------------------------------------------

    def _tick(self) -> None:
        self.core.tick()
        self._pump()

    def _pump_soon(self) -> None:
        """
        With nothing being written, act now: the lowest latency for a lone
        writer.  Otherwise look for work at the end of this reactor turn, so
        that everything proposed or received in the same turn goes into one
        Ready (the log thread is busy anyway).
        """
        if not self._writes_queued:
            self._pump()
        elif self._pump_call is None:
            self._pump_call = self._clock.callLater(0, self._pump)

    def _pump(self) -> None:
        if self._pump_call is not None:
            if self._pump_call.active():
                self._pump_call.cancel()
            self._pump_call = None
        while self._failure is None and self.core.has_ready():
            ready = self.core.ready()
            if ready.committed:
                self._enqueue_apply(ready.committed)
            if ready.hard_state is None and not ready.entries and not (ready.messages and self._writes_queued):
                self._finish(ready)
                continue
            # Messages wait for every earlier write: an acknowledgement
            # must not overtake the entries it acknowledges.
            self._writes_queued += 1
            self._writer.submit(ready).addCallbacks(self._persisted, self._storage_failed)
        self._check_idle()

    def _persist(self, readies) -> None:
        """Runs on the log thread: every queued Ready, one fsync."""
        wrote = False
        for ready in readies:
            if ready.hard_state is not None:
                self._hard_state_file.save(ready.hard_state)
            entries = ready.entries
            if entries:
                first = entries[0].index
                if first <= self._segments.last_index:
                    self._segments.truncate_suffix(first)
                self._segments.append(
                    [Record(term=e.term, index=e.index, payload=encode_entry_payload(e)) for e in entries]
                )
                wrote = True
        if wrote:
            self._segments.sync()

    def _persisted(self, ready: Ready) -> None:
        self._writes_queued -= 1
        self._finish(ready)
        self._pump_soon()

    def _finish(self, ready: Ready) -> None:
        if self._send is not None:
            for message in ready.messages:
                self._send(message)
        self.core.advance(ready)

    def _storage_failed(self, failure) -> None:
        self._writes_queued -= 1
        self._fail(failure)

    def _fail(self, failure) -> None:
        if self._failure is not None:
            self._check_idle()
            return
        self._failure = failure.value
        self.log.critical(
            "raft log write failed, refusing further writes: {error}", error=failure.value
        )
        for term, waiter in list(self._waiting.values()):
            waiter.errback(StorageFailed(str(failure.value)))
        self._waiting.clear()
        self._check_idle()

    # -- applying ----------------------------------------------------------

    def _enqueue_apply(self, entries: Tuple[Entry, ...]) -> None:
        self._apply_queue.append(entries)
        if self._applying is None:
            self._apply_next()

    def _apply_next(self) -> None:
        if not self._apply_queue:
            self._applying = None
            self._check_idle()
            return
        # Everything queued goes into one state machine transaction.
        batch = tuple(e for entries in self._apply_queue for e in entries)
        self._apply_queue = []
        self._applying = self._apply_worker(self._state_machine.apply, batch)
        self._applying.addCallbacks(
            lambda results: self._applied(batch, results), self._apply_failed
        )

    def _applied(self, batch: Tuple[Entry, ...], results: List[object]) -> None:
        for entry, result in zip(batch, results):
            self.applied = entry.index
            waiting = self._waiting.pop(entry.index, None)
            for listener in self._listeners:
                listener(entry, result)
            if waiting is not None:
                term, d = waiting
                if term == entry.term:
                    d.callback(result)
                else:
                    d.errback(ProposalDropped(f"entry {entry.index} was replaced"))
        ready = [(i, d) for i, d in self._appliedWaiters if i <= self.applied]
        self._appliedWaiters = [(i, d) for i, d in self._appliedWaiters if i > self.applied]
        for _, d in ready:
            d.callback(self.applied)
        self._apply_next()

    def _apply_failed(self, failure) -> None:
        # The state machine catches per-entry errors itself; reaching here
        # means the database is unusable (disk full, I/O error).
        self._applying = None
        self._fail(failure)
