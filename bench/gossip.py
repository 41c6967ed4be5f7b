"""
Gossip benchmark (issue 6), in simulation: the SWIM cores of
L{stalwart.cluster.swim.members} on the simulated network of
C{tests/simulation/test_swim.py} (one C{Clock}, one seeded C{random.Random},
0.5 to 5 ms one-way delay), with the default L{SwimConfig}
(C{peer-ping-interval} 500 ms).

Reports, for 10 and 50 members:

  - detection: a member crashes at a random time after the cluster has
    converged; seconds until the first member declares it dead, and until
    every member does (median and max over 20 runs);
  - false positives: healthy members declared dead (any node's
    C{MemberDead} about a live member) with 10% of packets lost, over
    C{--loss-minutes} simulated minutes, and how many suspicions were
    raised (and refuted) meanwhile;
  - bytes: gossip bytes sent per member per second (sealed datagrams:
    plaintext plus 38 bytes of header and tag), without and with loss.

Stalwart needed 1.9 to 2.7 s to convict a dead peer (phi > 9 on 500 ms
pings).  Run from the repository root: C{python bench/gossip.py
[--runs 20] [--loss-minutes 10]}.  Prints a table and writes
bench/results/gossip.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from stalwart.cluster.swim.config import SwimConfig  # noqa: E402
from stalwart.cluster.swim.messages import MemberDead, MemberSuspected  # noqa: E402
from tests.simulation.test_swim import SimulatedCluster  # noqa: E402


def detection(size: int, runs: int) -> dict:
    firsts, lasts = [], []
    for seed in range(runs):
        cluster = SimulatedCluster(1000 + seed, size)
        cluster.start_all()
        if cluster.run_until_converged(60.0) is None:
            raise SystemExit(f"{size} members did not converge (seed {1000 + seed})")
        cluster.run_for(cluster.rng.uniform(5.0, 10.0))
        victim = cluster.nodes[cluster.rng.randrange(size)]
        crashed_at = cluster.now
        cluster.crash(victim)
        first, last = cluster.detection(victim, crashed_at, 30.0, step=0.005)
        firsts.append(first)
        lasts.append(last)
    return {
        "runs": runs,
        "first_median_s": round(statistics.median(firsts), 3),
        "first_max_s": round(max(firsts), 3),
        "all_median_s": round(statistics.median(lasts), 3),
        "all_max_s": round(max(lasts), 3),
    }


def steady(size: int, minutes: float, loss: float, seed: int) -> dict:
    cluster = SimulatedCluster(seed, size, loss=loss, measure=True)
    cluster.start_all()
    if cluster.run_until_converged(120.0) is None:
        raise SystemExit(f"{size} members did not converge under {loss:.0%} loss")
    cluster.run_for(10.0)
    start, sent_before = cluster.now, dict(cluster.bytes_sent)
    suspected_before = len(cluster.events_of(MemberSuspected))
    cluster.run_for(minutes * 60)
    elapsed = cluster.now - start
    sent = sum(cluster.bytes_sent.values()) - sum(sent_before.values())
    return {
        "members": size,
        "loss": loss,
        "simulated_s": round(elapsed),
        "false_dead": len(cluster.events_of(MemberDead)),
        "suspicions": len(cluster.events_of(MemberSuspected)) - suspected_before,
        "bytes_per_member_s": round(sent / size / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--loss-minutes", type=float, default=10.0)
    args = parser.parse_args()
    started = time.time()
    config = SwimConfig()
    results = {
        "config": {"ping_interval_s": config.ping_interval, "ping_timeout_s": config.ping_timeout,
                   "indirect_checks": config.indirect_checks, "phi_threshold": config.phi_threshold,
                   "suspicion_multiplier": config.suspicion_multiplier,
                   "suspicion_max_multiplier": config.suspicion_max_multiplier},
        "python": platform.python_version(),
        "detection": {},
        "steady": [],
    }
    for size in (10, 50):
        results["detection"][str(size)] = detection(size, args.runs)
        for loss in (0.0, 0.10):
            results["steady"].append(steady(size, args.loss_minutes, loss, seed=7))
    results["wall_s"] = round(time.time() - started, 1)

    print("crash detection (seconds after the crash; %d runs)" % args.runs)
    print(f"{'members':>8} {'first med':>10} {'first max':>10} {'all med':>8} {'all max':>8}")
    for size, d in results["detection"].items():
        print(f"{size:>8} {d['first_median_s']:>10.3f} {d['first_max_s']:>10.3f} "
              f"{d['all_median_s']:>8.3f} {d['all_max_s']:>8.3f}")
    print()
    print(f"steady state ({args.loss_minutes:g} simulated minutes)")
    print(f"{'members':>8} {'loss':>5} {'false dead':>10} {'suspicions':>10} {'B/member/s':>11}")
    for s in results["steady"]:
        print(f"{s['members']:>8} {s['loss']:>5.0%} {s['false_dead']:>10} {s['suspicions']:>10} "
              f"{s['bytes_per_member_s']:>11}")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "gossip.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
