"""
Write-path benchmark: JMAP C{Note/set} creates through the real node.

What is measured: a node built with L{stalwart.service.maker.build_service}
(real threads, a real data directory, the real reactor), and writers that
each loop on one JMAP request C{[["Note/set", {"accountId": account_id, "create": {...}}, "0"]]}
parsed with L{parse_request} and run by the node's L{Dispatcher} with the
same request context the HTTP API uses.  That is the whole write path a
client sees (method, proposal, group-commit fdatasync of the Raft log,
apply to SQLite, response) except HTTP and authentication, which the read
benchmark covers.

For 1, 16 and 64 concurrent writers it reports proposals/s and p50/p99
latency, then compares with the disk's own ceiling from L{fsync_rate}:

  - 1 writer / single-append fdatasync rate (target >= 0.5): with one
    writer there is nothing to batch, so this is the per-write overhead
    on top of one fdatasync;
  - 64 writers / 64-entries-per-fdatasync entries rate (target >= 0.25):
    how much of the batching the disk allows group commit delivers.

Run from the repository root: C{python bench/write_path.py [--seconds S]
[--dir DIR]}.  DIR must be on the disk under test (not a tmpfs); it
defaults to a scratch directory under the current directory.  Writes a
table to stdout and JSON to bench/results/write_path.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import DeferredList, ensureDeferred  # noqa: E402

import fsync_rate  # noqa: E402
from stalwart.auth.authenticate import Principal  # noqa: E402
from stalwart.jmap.capabilities import CORE  # noqa: E402
from stalwart.jmap.objecttype import ObjectType, Property, is_string  # noqa: E402
from stalwart.jmap.request import parse_request  # noqa: E402
from stalwart.service.config import ServerConfig  # noqa: E402
from stalwart.service.maker import build_service  # noqa: E402
from stalwart.store.commands import Command  # noqa: E402

NOTES = "urn:stalwart:bench:notes"
WRITERS = (1, 16, 64)


class Note(ObjectType):
    """A bench-only data type: a title and a body."""

    name = "Note"
    capability = NOTES
    id_prefix = "N"
    properties = (
        Property("id", is_string, server_set=True),
        Property("title", is_string, required=True),
        Property("body", is_string, default=""),
    )


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[k]


async def run_level(write, writers, seconds):
    """C{writers} loops of C{write(writer, n)} for C{seconds}; returns the figures."""
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds

    async def writer(w):
        n = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            error = await write(w, n)
            latencies.append(time.perf_counter() - started)
            if error is not None:
                errors.append(error)
            n += 1

    started = time.perf_counter()
    await DeferredList([ensureDeferred(writer(w)) for w in range(writers)], fireOnOneErrback=True)
    elapsed = time.perf_counter() - started
    latencies.sort()
    if errors:
        print(f"{writers} writers: {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    return {
        "writers": writers,
        "proposals": len(latencies),
        "errors": len(errors),
        "seconds": elapsed,
        "proposals_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def raw_proposal(node, principal):
    """
    The Raft write path alone: propose a small command (issuing a bearer
    token: one row), wait until it is durable, committed and applied.
    """
    async def write(w, n):
        result = await node.propose(Command(kind="token.create", args={
            "name": principal.name, "hash": f"{w:04d}{n:016d}", "now": node.now()}))
        return None if result is None else result

    return write


def jmap_set(node, principal):
    """A whole JMAP request (parse, dispatch, Note/set proposal, apply, response) without HTTP."""
    async def write(w, n):
        body = json.dumps({
            "using": [CORE, NOTES],
            "methodCalls": [["Note/set", {"accountId": principal.account_id, "create": {"k": {"title": f"w{w} n{n}", "body": "x" * 100}}}, "0"]],
        }).encode()
        request = parse_request(body, [CORE, NOTES], 16)
        context = await node.request_context(principal)
        response = await node.dispatcher.process(request, context)
        [[name, result, _]] = response["methodResponses"]
        if name != "Note/set" or not result.get("created"):
            return result
        return None

    return write


WORKLOADS = {"proposal": raw_proposal, "jmap": jmap_set}


async def bench(directory, seconds):
    config = ServerConfig(data_dir=os.path.join(directory, "data"), jmap_port=0, log_level="warn")
    service = build_service(config, reactor, object_types=[Note()])
    service.startService()
    node = service.node
    try:
        account = await node.propose(Command(kind="account.create", args={
            "name": "bench", "password": "not-a-real-hash", "emails": [], "quota": None,
            "now": node.now()}))
        principal = Principal(account_id=account["id"], name="bench")
        levels = {}
        for name, workload in WORKLOADS.items():
            write = workload(node, principal)
            levels[name] = [await run_level(write, writers, seconds) for writers in WRITERS]
    finally:
        await service.stopService()
    disk = fsync_rate.measure(directory, max(2.0, seconds))
    return levels, disk


def report(levels, disk, directory):
    ratios = {}
    for name, runs in levels.items():
        by_writers = {level["writers"]: level for level in runs}
        ratios[name] = {
            "one_writer_vs_single_fdatasync": by_writers[1]["proposals_per_s"] / disk["single_append_syncs_per_s"],
            "sixty_four_writers_vs_batch64_entries": by_writers[64]["proposals_per_s"] / disk["batch64_entries_per_s"],
        }
        print(f"{name}: {WORKLOADS[name].__doc__.strip().splitlines()[0]}")
        print(f"{'writers':>8} {'proposals':>10} {'errors':>7} {'per s':>10} {'p50 ms':>9} {'p99 ms':>9}")
        for level in runs:
            print(f"{level['writers']:>8} {level['proposals']:>10} {level['errors']:>7} "
                  f"{level['proposals_per_s']:>10.1f} {level['p50_ms']:>9.2f} {level['p99_ms']:>9.2f}")
        print(f"  1 writer / single fdatasync   = {ratios[name]['one_writer_vs_single_fdatasync']:.3f} (target >= 0.5)")
        print(f"  64 writers / 64-batch entries = {ratios[name]['sixty_four_writers_vs_batch64_entries']:.3f} (target >= 0.25)")
    print(f"disk: single-append fdatasync {disk['single_append_syncs_per_s']:.1f}/s, "
          f"64 per fdatasync {disk['batch64_entries_per_s']:.1f} entries/s "
          f"({disk['batch64_syncs_per_s']:.1f} syncs/s)")
    return {
        "what": {name: WORKLOADS[name].__doc__.strip() for name in levels},
        "directory": os.path.abspath(directory),
        "python": platform.python_version(),
        "levels": levels,
        "disk": disk,
        "ratios": ratios,
        "targets": {"one_writer_vs_single_fdatasync": 0.5, "sixty_four_writers_vs_batch64_entries": 0.25},
    }


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each concurrency level")
    parser.add_argument("--dir", default=".", help="parent of the scratch data directory (on the disk under test)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "write_path.json"))
    arguments = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="write_path.", dir=arguments.dir)
    outcome = {}

    async def run():
        try:
            outcome["figures"] = await bench(directory, arguments.seconds)
        finally:
            reactor.stop()

    def start():
        d = ensureDeferred(run())
        d.addErrback(lambda f: outcome.setdefault("failure", f))

    reactor.callWhenRunning(start)
    try:
        reactor.run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if "failure" in outcome:
        outcome["failure"].printTraceback()
        return 1
    result = report(*outcome["figures"], directory)
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
