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

One exception to step 3 (Ongaro's thesis, section 10.2.1; etcd does the
same): a leader's C{AppendEntries} leave at once, before step 2, so that
followers write the entries while the leader does.  This is safe because
they promise nothing about this node's disk: the core counts the leader's
own copy toward the commit index only in C{advance()}, once it is durable
(entries committed by followers alone are on a majority of disks, which
is all that Raft's commit rule asks), and entries are applied only once
they are also stable here (L{RaftLog.next_committed}), so the state
machine never gets ahead of the local log.  A crash before the write
loses nothing acknowledged: it is an uncommitted entry that followers may
hold and this node not, as after any lost message.  What the messages do
depend on is the term and vote they were sent in; so they go early only
when neither their Ready nor any Ready still being written changes the
hard state or holds back messages, and only when all of their Ready's
messages are AppendEntries, which keeps every peer's messages in the order
the core made them.  Everything else, votes and every response in
particular, still waits for the disk.

Snapshots (Raft paper section 7), when the driver has a snapshot store:

  - C{take_snapshot}: a snapshot job joins the apply queue after the
    entries handed so far, so it runs on the apply thread between two
    batches; the core hears of it (L{RaftCore.snapshot_taken}), and the
    segment files before the point it names are deleted on the log thread.
  - C{chunks}: each is read (at most C{chunk_bytes}) on the read worker,
    never on the reactor, and sent as an L{InstallSnapshot}.
  - C{received} and C{restore} are written in step 2 with the entries:
    chunks go to the incoming file; the last one is checked and made
    durable, then the log is reset after the snapshot if the core says so.
    Only then do the answers leave (step 3).  A damaged transfer stops the
    write path like any storage failure, before anything was changed: on
    restart the leader sends the snapshot again.
  - Then, before any later committed entry, the state machine is replaced
    by the snapshot on the apply thread.

Readies are taken from the core as soon as it has them, so the core keeps
working while writes are queued.  A failed write or fsync stops the write
path for good (after fsyncgate, a failed fsync cannot be retried safely):
every waiting and later proposal fails with L{StorageFailed}.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from stalwart.logs import observer

import attrs

from stalwart.cluster.raft.core import LEADER, NotLeader, RaftCore
from stalwart.cluster.raft.messages import (
    AppendEntries,
    Entry,
    InstallSnapshot,
    Ready,
    SnapshotChunkRequest,
    SnapshotMeta,
    encode_entry_payload,
)
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
        snapshots=None,
        read_worker: Optional[Callable[..., Deferred]] = None,
        chunk_bytes: int = 1024 * 1024,
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
        @param snapshots: a L{stalwart.store.snapshot.SnapshotStore} (take,
            meta, read_chunk, write_chunk, finish_incoming, restore); None
            (the default) takes no snapshots and cannot install one.
        @param read_worker: runs snapshot chunk reads off the reactor; by
            default the log worker.
        @param chunk_bytes: largest InstallSnapshot chunk; 1 MiB keeps each
            read short and each message well within the RPC limits.
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
        #: Readies being written that change the hard state or hold
        #: messages back: while there is one, nothing leaves early.
        self._barriers_queued = 0
        self._pump_call = None
        self._idle_waiters: List[Deferred] = []
        self._applying: Optional[Deferred] = None
        self._apply_queue: List[Tuple[Entry, ...]] = []
        self._failure: Optional[Exception] = None
        self._stopping = False
        self.applied = core.log.applying
        self._appliedWaiters: List[Tuple[int, Deferred]] = []
        self._listeners: List[Callable] = []
        self._restore_listeners: List[Callable] = []
        self._snapshots = snapshots
        self._read_worker = read_worker or log_worker
        self._chunk_bytes = chunk_bytes
        self._compactions = 0

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
        if not self._stopping or self._writes_queued or self._applying is not None or self._compactions:
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

    def transfer_leadership(self) -> Optional[str]:
        """L{RaftCore.transfer_leadership} to the most up-to-date voter, then act on it; the target or None."""
        target = self.core.transfer_leadership()
        self._pump_soon()
        return target

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

    def on_restored(self, listener: Callable[[SnapshotMeta], None]) -> None:
        """
        Call C{listener(meta)} after the state machine was replaced by a
        snapshot from the leader: whatever was derived from the applied
        entries one by one (push states, caches) must be read again.
        """
        self._restore_listeners.append(listener)

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
            if ready.take_snapshot:
                self._take_snapshot()
            ready = self._send_early(ready)
            if (
                ready.hard_state is None and not ready.entries and not ready.received
                and ready.restore is None and not ((ready.messages or ready.chunks) and self._writes_queued)
            ):
                self._finish(ready)
                continue
            # Messages wait for every earlier write: an acknowledgement
            # must not overtake the entries it acknowledges.
            barrier = ready.hard_state is not None or bool(ready.messages or ready.chunks)
            self._writes_queued += 1
            self._barriers_queued += barrier
            self._writer.submit(ready).addCallbacks(
                self._persisted, self._storage_failed, callbackArgs=(barrier,)
            )
        self._check_idle()

    def _send_early(self, ready: Ready) -> Ready:
        """
        Send a leader's AppendEntries now, before the write (see the
        module docstring); returns C{ready} with the messages still to send
        once it is durable.
        """
        if (
            self._send is None or ready.hard_state is not None or self._barriers_queued or not ready.messages
            or not all(isinstance(m, AppendEntries) for m in ready.messages)
        ):
            return ready
        for message in ready.messages:
            self._send(message)
        return attrs.evolve(ready, messages=())

    def _persist(self, readies) -> None:
        """Runs on the log thread: every queued Ready, one fsync."""
        wrote = False
        for ready in readies:
            if ready.hard_state is not None:
                self._hard_state_file.save(ready.hard_state)
            if (ready.received or ready.restore) and self._snapshots is None:
                raise RuntimeError("the leader sent a snapshot but this node has no snapshot store")
            for chunk in ready.received:
                self._snapshots.write_chunk(chunk.offset, chunk.data)
            if ready.restore is not None:
                # The file first: once it is durable, a restart restores it.
                self._snapshots.finish_incoming(ready.restore.meta)
                if ready.restore.discard_log:
                    self._segments.reset(ready.restore.meta.index + 1)
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

    def _persisted(self, ready: Ready, barrier: bool) -> None:
        self._writes_queued -= 1
        self._barriers_queued -= barrier
        self._finish(ready)
        self._pump_soon()

    def _finish(self, ready: Ready) -> None:
        if self._send is not None:
            for message in ready.messages:
                self._send(message)
            for request in ready.chunks:
                self._send_chunk(request)
        if ready.restore is not None:
            self._enqueue_apply(lambda meta=ready.restore.meta: self._restore(meta))
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

    def _enqueue_apply(self, work: Union[Tuple[Entry, ...], Callable[[], Deferred]]) -> None:
        """Queue entries to apply, or a job (snapshot, restore) to run between batches."""
        self._apply_queue.append(work)
        if self._applying is None:
            self._apply_next()

    def _apply_next(self) -> None:
        if not self._apply_queue:
            self._applying = None
            self._check_idle()
            return
        if callable(self._apply_queue[0]):
            job = self._apply_queue.pop(0)
            self._applying = job()
            self._applying.addCallbacks(lambda _: self._apply_next(), self._apply_failed)
            return
        # Every batch queued up to the next job goes into one transaction.
        count = next((i for i, w in enumerate(self._apply_queue) if callable(w)), len(self._apply_queue))
        batch = tuple(e for entries in self._apply_queue[:count] for e in entries)
        del self._apply_queue[:count]
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

    # -- snapshots -----------------------------------------------------------

    def _take_snapshot(self) -> None:
        if self._snapshots is None:
            self.core.snapshot_failed()  # nowhere to keep one
            return

        def job() -> Deferred:
            d = self._apply_worker(self._snapshots.take, self._state_machine)
            return d.addCallbacks(self._snapshot_taken, self._snapshot_failed)

        self._enqueue_apply(job)

    def _snapshot_taken(self, meta: SnapshotMeta) -> None:
        keep_from = self.core.snapshot_taken(meta)
        self.log.info("raft snapshot at {index}, log kept from {keep}", index=meta.index, keep=keep_from)
        self._compactions += 1

        def compacted(result):
            self._compactions -= 1
            self._check_idle()
            return result

        self._log_worker(self._segments.truncate_prefix, keep_from).addBoth(compacted).addErrback(self._fail)

    def _snapshot_failed(self, failure) -> None:
        # The state is intact: the core asks again after another interval.
        self.log.failure("raft snapshot failed", failure)
        self.core.snapshot_failed()

    def _send_chunk(self, request: SnapshotChunkRequest) -> None:
        def read():
            meta = self._snapshots.meta(request.index)
            data, total = self._snapshots.read_chunk(request.index, request.offset, self._chunk_bytes)
            return meta, data, total

        def send(result) -> None:
            meta, data, total = result
            self._send(InstallSnapshot(
                term=request.term, sender=self.core.id, recipient=request.peer, index=meta.index,
                snapshot_term=meta.term, configuration=meta.configuration, offset=request.offset,
                data=data, done=request.offset + len(data) >= total,
            ))

        def unavailable(failure) -> None:
            self.log.info("raft snapshot {index} for {peer} unavailable: {error}",
                          index=request.index, peer=request.peer, error=failure.value)
            self.core.snapshot_unavailable(request.peer, request.index)
            self._pump_soon()

        if self._snapshots is None:
            unavailable(Failure(FileNotFoundError("no snapshot store")))
            return
        self._read_worker(read).addCallbacks(send, unavailable)

    def _restore(self, meta: SnapshotMeta) -> Deferred:
        """Runs in the apply queue: replace the state machine with snapshot C{meta}."""
        d = self._apply_worker(self._snapshots.restore, self._state_machine, meta.index)

        def restored(_) -> None:
            self.log.info("raft state restored from snapshot {index}", index=meta.index)
            self.applied = meta.index
            for index in sorted(i for i in self._waiting if i <= meta.index):
                _, waiter = self._waiting.pop(index)
                waiter.errback(ProposalDropped(f"entry {index} is in a snapshot from the leader; outcome unknown"))
            ready = [(i, w) for i, w in self._appliedWaiters if i <= self.applied]
            self._appliedWaiters = [(i, w) for i, w in self._appliedWaiters if i > self.applied]
            for _, waiter in ready:
                waiter.callback(self.applied)
            for listener in self._restore_listeners:
                listener(meta)

        return d.addCallback(restored)
