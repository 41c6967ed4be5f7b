"""
The disk's own fsync ceiling, for comparison with the write path's numbers.

Group commit (DESIGN.md section 4) cannot be faster than the disk can make
appends durable, so the write-path benchmark imports L{measure} and reports
these figures in the same run:

  - C{single_append_syncs_per_s}: one ~200-byte C{os.write} and one
    C{os.fdatasync} per append: the ceiling without group commit.
  - C{batch64_entries_per_s}, C{batch64_syncs_per_s}: 64 such writes per
    fdatasync: what batching buys on this disk.

Run C{python bench/fsync_rate.py [directory] [seconds]}; it prints JSON.  Use
a directory on the disk that will hold the data directory: a tmpfs gives
meaningless numbers.
"""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = ["measure"]

RECORD_BYTES = 200
BATCH_RECORDS = 64

_sync = getattr(os, "fdatasync", os.fsync)


def _rate(fd: int, seconds: float, records_per_sync: int) -> tuple[int, int, float]:
    """
    Append and sync for about C{seconds}.

    @return: (records written, syncs done, seconds taken).
    """
    record = b"r" * (RECORD_BYTES - 1) + b"\n"
    records = syncs = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(records_per_sync):
            os.write(fd, record)
        _sync(fd)
        records += records_per_sync
        syncs += 1
        now = time.perf_counter()
        if now >= deadline:
            return records, syncs, now - start


def measure(directory: str, seconds: float = 2.0) -> dict:
    """
    Measure fdatasync rates on a scratch file in C{directory} (removed after).

    @param seconds: total time to spend, split between the two patterns.
    @return: C{{"single_append_syncs_per_s", "batch64_entries_per_s",
        "batch64_syncs_per_s"}}, all floats.
    """
    path = os.path.join(directory, f".fsync_rate.{os.getpid()}.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    try:
        _, single_syncs, single_elapsed = _rate(fd, seconds / 2, 1)
        batch_records, batch_syncs, batch_elapsed = _rate(fd, seconds / 2, BATCH_RECORDS)
    finally:
        os.close(fd)
        os.remove(path)
    return {
        "single_append_syncs_per_s": single_syncs / single_elapsed,
        "batch64_entries_per_s": batch_records / batch_elapsed,
        "batch64_syncs_per_s": batch_syncs / batch_elapsed,
    }


def main(argv: list[str]) -> None:
    directory = argv[1] if len(argv) > 1 else "."
    seconds = float(argv[2]) if len(argv) > 2 else 2.0
    result = measure(directory, seconds)
    result["directory"] = os.path.abspath(directory)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv)
