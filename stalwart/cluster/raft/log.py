# -*- test-case-name: tests.cluster.raft.test_log -*-
"""
The Raft core's view of its log: stable entries (on disk, known by term
only) plus the recent entries it still holds in memory.

Raft section 5.3.  Indexes used here:

    first stable ... stable_last | unstable_from ... handed ... last_index
                     <------------ in memory --------------------->
    applying <= committed <= last_index

Entries up to C{handed} have been given to the driver to write (several
writes may be queued at once); they become stable when it reports them
durable.

The core never reads files: terms of stable entries come from the segment
log's in-memory index (C{term_of}), payloads that are not in memory are the
driver's business (it loads the unapplied tail at start, and may give a
C{read_stable} callable so that a leader can send old entries to a follower
that lags behind, or to a new member).

Snapshots and compaction (paper section 7).  C{snapshot_index} and
C{snapshot_term} name the newest snapshot of the state machine: its index
answers C{term()} even once the entry itself is gone.  Entries below the
in-memory tail that C{read_stable} cannot give back (their segment files
were deleted) are I{compacted}: L{RaftLog.entries} returns None for them
and L{RaftLog.term} raises L{Compacted}, and the leader sends the snapshot
instead.  A follower that installs a snapshot keeps the entries after it
if its log holds the snapshot's last entry, else starts over after it
(L{RaftLog.restore}).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from stalwart.cluster.raft.messages import Entry

__all__ = ["RaftLog", "Compacted"]


class Compacted(LookupError):
    """The entry (or its term) was discarded by log compaction."""


class RaftLog:
    def __init__(
        self,
        stable_last: int,
        term_of: Callable[[int], int],
        tail: Sequence[Entry] = (),
        applied: int = 0,
        read_stable: Optional[Callable[[int, int, int], Sequence[Entry]]] = None,
        snapshot_index: int = 0,
        snapshot_term: int = 0,
    ) -> None:
        """
        @param stable_last: last index on disk.
        @param term_of: term of a stable index (0 for index 0); no I/O.
        @param tail: stable entries after C{applied}, read by the driver at
            start so that they can be applied once committed again.
        @param applied: the state machine's last applied index.
        @param read_stable: C{read_stable(lo, hi, bytes_max)} returns stable
            entries C{lo}..C{hi} (fewer once C{bytes_max} is passed, at
            least one); None when old entries cannot be read back.  It
            and C{term_of} raise L{LookupError} for compacted indexes.
        @param snapshot_index: index of the newest snapshot (0: none); the
            state machine has applied at least that far.
        @param snapshot_term: the term of entry C{snapshot_index}.
        """
        assert snapshot_index <= applied <= stable_last, (snapshot_index, applied, stable_last)
        self._term_of = term_of
        self._read_stable = read_stable
        self.stable_last = stable_last
        self.snapshot_index = snapshot_index
        self.snapshot_term = snapshot_term
        self._mem: List[Entry] = list(tail)
        self._mem_first = self._mem[0].index if self._mem else stable_last + 1
        assert not self._mem or (
            self._mem[-1].index == stable_last and self._mem_first <= applied + 1
        ), "tail must be the stable entries from at most applied + 1 on"
        #: Term of the entry just before the in-memory tail, kept because
        #: that entry may be compacted while the leader still needs its
        #: term as C{prev_term}.
        self._base_term: Optional[int] = None
        if self.has_term(self._mem_first - 1):
            self._base_term = self.term(self._mem_first - 1)
        self.unstable_from = stable_last + 1
        self.handed = stable_last
        self.committed = applied
        self.applying = applied

    # -- reading -----------------------------------------------------------

    @property
    def last_index(self) -> int:
        if self._mem:
            return self._mem[-1].index
        return self.stable_last

    def term(self, index: int) -> int:
        """Term of C{index}; 0 for index 0 and for indexes past the end."""
        if index == 0 or index > self.last_index:
            return 0
        if index >= self._mem_first:
            return self._mem[index - self._mem_first].term
        if index == self.snapshot_index:
            return self.snapshot_term
        if index == self._mem_first - 1 and self._base_term is not None:
            return self._base_term
        try:
            return self._term_of(index)
        except LookupError:
            raise Compacted(index) from None

    def has_term(self, index: int) -> bool:
        """Whether L{term} can answer for C{index} (it is not compacted)."""
        try:
            self.term(index)
        except Compacted:
            return False
        return True

    @property
    def last_term(self) -> int:
        return self.term(self.last_index)

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft section 5.4.1: is a candidate's log at least as up to date as ours?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def entries(self, lo: int, hi: int, bytes_max: int) -> Optional[List[Entry]]:
        """
        Entries C{lo}..C{hi} inclusive, stopping once C{bytes_max} is passed
        (at least one entry is returned).  None when C{lo} is no longer in
        memory and there is no C{read_stable}, or it was compacted.
        """
        if lo > hi:
            return []
        out: List[Entry] = []
        size = 0
        if lo < self._mem_first:
            if self._read_stable is None or not self.has_term(lo - 1):
                return None
            try:
                out = list(self._read_stable(lo, min(hi, self._mem_first - 1), bytes_max))
            except LookupError:
                return None
            assert out and out[0].index == lo, (lo, out[:1])
            size = sum(e.size() for e in out)
            if out[-1].index < min(hi, self._mem_first - 1) or size > bytes_max:
                return out
            lo = out[-1].index + 1
        for entry in self._mem[lo - self._mem_first : hi - self._mem_first + 1]:
            size += entry.size()
            if out and size > bytes_max:
                break
            out.append(entry)
        return out

    def unstable_entries(self) -> List[Entry]:
        """Entries not yet handed to the driver for writing."""
        first = max(self.unstable_from, self.handed + 1)
        if first > self.last_index:
            return []
        return self._mem[first - self._mem_first :]

    def hand_to(self, index: int) -> None:
        """Entries up to C{index} are queued for writing."""
        self.handed = max(self.handed, index)

    def next_committed(self) -> List[Entry]:
        """Committed, stable entries not yet handed to the state machine."""
        hi = min(self.committed, self.stable_last)
        if hi <= self.applying:
            return []
        return self._mem[self.applying + 1 - self._mem_first : hi + 1 - self._mem_first]

    # -- changing ----------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """
        Append C{entries}, replacing any existing entries from the first
        one's index on (a conflict found by the caller).
        """
        if not entries:
            return
        first = entries[0].index
        assert first <= self.last_index + 1, "gap in log"
        assert first > self.committed, "committed entries never change (Raft 5.3)"
        if first <= self.last_index:
            if first >= self._mem_first:
                del self._mem[first - self._mem_first :]
            else:
                self._mem = []
            self.stable_last = min(self.stable_last, first - 1)
            self.unstable_from = min(self.unstable_from, first)
            self.handed = min(self.handed, first - 1)
        if not self._mem:
            self._mem_first = first
        self._mem.extend(entries)

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to C{index} (of C{term}) are durable."""
        if index < self.unstable_from:
            return
        if index >= self._mem_first and self.term(index) != term:
            # Replaced while being written: the next Ready writes it again.
            return
        # Below memory: a restore kept the log up to a snapshot past this
        # write, after checking that it matches; committed entries never change.
        self.unstable_from = index + 1
        self.stable_last = index

    def commit_to(self, index: int) -> None:
        index = min(index, self.last_index)
        if index > self.committed:
            self.committed = index

    def applying_to(self, index: int, keep_from: int) -> None:
        """
        Entries up to C{index} are handed to the state machine; memory up
        to C{min(index, keep_from - 1)} may be released (the leader keeps
        what followers still need).
        """
        assert index <= self.committed
        self.applying = max(self.applying, index)
        self._release(min(self.applying, keep_from - 1, self.stable_last))

    def _release(self, release: int) -> None:
        if release >= self._mem_first:
            self._base_term = self.term(release)
            del self._mem[: release - self._mem_first + 1]
            self._mem_first = release + 1

    # -- snapshots ---------------------------------------------------------

    def snapshot_taken(self, index: int, term: int, keep_from: int) -> None:
        """
        The state machine was snapshotted at C{index} (of C{term}): that
        index's term stays known after compaction; memory before
        C{keep_from} may be released.
        """
        assert index <= self.applying, (index, self.applying)
        if index > self.snapshot_index:
            self.snapshot_index, self.snapshot_term = index, term
        self._release(min(self.applying, keep_from - 1, self.stable_last))

    @property
    def first_index(self) -> int:
        """First entry held in memory (older ones need C{read_stable})."""
        return self._mem_first

    def restore(self, index: int, term: int) -> bool:
        """
        Install a snapshot of C{index}/C{term} from the leader (paper
        section 7): if the log holds that entry, written or being written,
        the entries after it stay; otherwise the whole log is discarded and
        continues at C{index + 1}.  Returns whether the log was discarded.
        """
        assert index > self.committed, "a snapshot must be newer than the commit index"
        keep = index <= self.handed and self.has_term(index) and self.term(index) == term
        if keep:
            self._release(index)
        else:
            self._mem = []
            self._mem_first = index + 1
            self._base_term = term
            self.stable_last = index
            self.unstable_from = index + 1
            self.handed = index
        self.snapshot_index, self.snapshot_term = index, term
        self.committed = self.applying = index
        return not keep
