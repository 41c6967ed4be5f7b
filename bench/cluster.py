"""
Cluster benchmark (DESIGN.md section 3): three real C{twistd -n
stalwart-jmap} processes on 127.0.0.1, seeded as a ring like the quick
start, JMAP over plain HTTP (TLS is not what is measured; the cluster RPC
is TLS as always).

  1. Committed writes/s and p50/p99 latency at 1, 16 and 64 concurrent
     writers.  A write is one JMAP request with one small change,
     C{Mailbox/set} renaming one of 64 Mailboxes to a name never used
     before (a create would hit the 1,000-Mailbox limit of an account long
     before the run ends), sent to the leader over keep-alive connections
     by wrk (C, one thread, one connection per writer, a Lua script that
     makes each body and checks each answer is 200 with C{"notUpdated":
     null}).  The CPU time of wrk and of each node per second of wall time
     is reported, so a client bottleneck would show.
  2. Failover: SIGKILL of the leader, then one write at a time tried on
     each surviving node (following the 302 by hand, 1 s timeout per
     request) until one is answered 200: the time from the kill to that
     answer.  The killed node is restarted and the bench waits until it has
     caught up and the cluster has one leader and three voters again
     before the next run.
  3. Catch-up: a follower is stopped (SIGTERM), N entries are written
     (wrk, 64 connections), the follower is restarted: the time from its
     restart (process spawn) until its appliedIndex reaches the leader's
     commitIndex as of the restart.
  4. The disk's fdatasync rate (L{fsync_rate.measure}) in the same
     directory, in the same run.

Run from the repository root: C{python bench/cluster.py [--quick] [--dir .]}.
Prints a table and writes JSON to bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import fsync_rate  # noqa: E402

SECRET = "bench-admin-secret"
KEY = "bench-cluster-key"
PASSWORD = "bench password"
AUTH = "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
MAILBOXES = 64
WRITERS = (1, 16, 64)
ETCD = {"puts_per_s": {"1": 300, "64": 2200}, "failover_median_s": 1.44, "failover_max_s": 2.64,
        "version": "etcd 3.4, same machines (figures from the issue)"}


# -- nodes ------------------------------------------------------------------------

def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, body=None, headers=None, timeout=5.0):
    """(status, body bytes, Location); a refused or cut connection raises OSError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Location")


class Node:
    def __init__(self, directory, name, port, rpc_port, seed_port):
        self.name, self.port, self.rpc_port = name, port, rpc_port
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = os.path.join(directory, name)
        self.log_path = os.path.join(directory, f"{name}.log")
        self.argv = [
            sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
            f"--logfile={self.log_path}", "stalwart-jmap", f"--data-dir={self.data_dir}",
            f"--jmap-port={port}", f"--jmap-url={self.url}", "--lmtp-port=0", f"--admin-secret={SECRET}",
            f"--encryption-key={KEY}", "--rpc-advertise-addr=127.0.0.1", f"--rpc-port={rpc_port}",
            f"--seed-nodes=127.0.0.1:{seed_port}", "--max-concurrent-requests=128",
        ]
        self.process = None
        self.started_at = None

    def start(self):
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.argv, env=_environment(), cwd=os.path.dirname(self.data_dir),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def status(self, timeout=2.0):
        code, body, _ = http("GET", self.url + "/admin/cluster", headers={"Authorization": f"Bearer {SECRET}"},
                             timeout=timeout)
        if code != 200:
            raise OSError(f"/admin/cluster answered {code}")
        return json.loads(body)

    def cpu_seconds(self):
        """utime + stime of the process so far."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(what, check, seconds, interval=0.02):
    """Poll C{check()} until it returns something true; a plain script, so sleeping is fine."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError as e:
            last = e
        time.sleep(interval)
    raise SystemExit(f"bench: {what}: not within {seconds} s (last error: {last})")


def healthy(nodes):
    """The running nodes' statuses if they agree on one leader and every node is a voter, else None."""
    statuses = [n.status() for n in nodes]
    ids = {s["node"] for s in statuses}
    leaders = {s["leader"] for s in statuses}
    if len(leaders) != 1 or None in leaders or sorted(s["role"] for s in statuses).count("leader") != 1:
        return None
    if any({m["id"] for m in s["members"] if m["voter"]} != ids for s in statuses):
        return None
    return statuses


def leader_of(nodes):
    for node in nodes:
        if node.running:
            try:
                if node.status()["role"] == "leader":
                    return node
            except OSError:
                pass
    return None


def caught_up(node, target):
    status = node.status()
    return status if status["appliedIndex"] >= target else None


# -- load ----------------------------------------------------------------------------

_WRK_SCRIPT = r"""
local ids = {%(ids)s}
local limit = %(limit)d
counter = 0
answered = 0
errors = 0
first_error = ""
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local id = ids[(counter %% #ids) + 1]
  local body = '{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Mailbox/set",{"accountId":"%(account)s","update":{"' .. id .. '":{"name":"%(prefix)s' .. counter .. '"}}},"0"]]}'
  return wrk.format("POST", "/jmap/api", {["Content-Type"] = "application/json", ["Authorization"] = "%(auth)s"}, body)
end

response = function(status, headers, body)
  answered = answered + 1
  if status ~= 200 or not string.find(body, '"notUpdated":null', 1, true) then
    errors = errors + 1
    if first_error == "" then first_error = status .. " " .. string.sub(body, 1, 200) end
  end
  if limit > 0 and answered == limit then
    wrk.thread:stop()
    io.write("LIMIT\n")
    io.flush()
  end
end

done = function(summary, latency, requests)
  local e, a, fe = 0, 0, ""
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    a = a + t:get("answered")
    if fe == "" then fe = t:get("first_error") end
  end
  io.write(string.format("BENCH {\"answered\": %%d, \"errors\": %%d, \"duration_us\": %%d, \"p50_us\": %%d, \"p99_us\": %%d, \"socket_errors\": %%d, \"first_error\": %%q}\n",
    a, e, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, fe))
end
"""


class Load:
    def __init__(self, directory, account, mailbox_ids):
        self.directory, self.account, self.mailbox_ids = directory, account, mailbox_ids
        self.runs = 0

    def run(self, url, connections, seconds, limit=0):
        """wrk with C{connections} writers for C{seconds} (or until C{limit} answers); figures and wrk's CPU."""
        self.runs += 1
        script = os.path.join(self.directory, f"load{self.runs}.lua")
        with open(script, "w") as f:
            f.write(_WRK_SCRIPT % {
                "ids": ", ".join(json.dumps(i) for i in self.mailbox_ids), "limit": limit,
                "account": self.account, "prefix": f"r{self.runs}-", "auth": AUTH})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        # wrk's main thread sleeps for the whole -d even once the Lua
        # script has stopped its thread: on "LIMIT", SIGINT ends the run
        # (wrk then prints its summary and calls done()).
        wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--timeout", "10s", "-s", script, url],
            stdout=subprocess.PIPE, text=True)
        lines = []
        for line in wrk.stdout:
            lines.append(line)
            if line.strip() == "LIMIT":
                wrk.send_signal(signal.SIGINT)
        if wrk.wait() != 0:
            raise SystemExit(f"wrk failed: {''.join(lines)}")
        out = "".join(lines)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        [line] = [line for line in out.splitlines() if line.startswith("BENCH ")]
        figures = json.loads(line[len("BENCH "):])
        figures["client_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return figures


# -- the runs ------------------------------------------------------------------------

def throughput(load, nodes, seconds):
    leader = leader_of(nodes)
    levels = []
    for writers in WRITERS:
        cpu_before = [n.cpu_seconds() for n in nodes]
        figures = load.run(leader.url, writers, seconds)
        cpu_after = [n.cpu_seconds() for n in nodes]
        wall = figures["duration_us"] / 1e6
        committed = figures["answered"] - figures["errors"]
        levels.append({
            "writers": writers, "answered": figures["answered"], "errors": figures["errors"],
            "socket_errors": figures["socket_errors"], "first_error": figures["first_error"] or None,
            "seconds": wall, "committed_per_s": committed / wall,
            "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
            "client_cpu_per_s": figures["client_cpu_s"] / wall,
            "node_cpu_per_s": {("leader" if n is leader else n.name): (a - b) / wall
                               for n, a, b in zip(nodes, cpu_after, cpu_before)},
        })
    return levels


def one_write(url, account, mailbox_id, name, timeout=1.0):
    """One rename sent to C{url}, following redirects by hand: True once answered 200 and applied."""
    body = {"using": USING, "methodCalls": [["Mailbox/set", {"accountId": account, "update": {mailbox_id: {"name": name}}}, "0"]]}
    for _ in range(3):
        code, raw, location = http("POST", url + "/jmap/api" if "/jmap/" not in url else url, body,
                                   {"Authorization": AUTH}, timeout)
        if code in (301, 302, 307, 308) and location:
            url = location
            continue
        return code == 200 and b'"notUpdated":null' in raw
    return False


def failover(nodes, account, mailbox_id, runs):
    times, details = [], []
    for run in range(runs):
        wait_for("a healthy cluster before the kill", lambda: healthy(nodes), 60, 0.05)
        leader = leader_of(nodes)
        survivors = [n for n in nodes if n is not leader]
        killed_at = time.monotonic()
        leader.process.send_signal(signal.SIGKILL)
        attempt = 0
        while True:
            done = False
            for node in survivors:
                attempt += 1
                try:
                    done = one_write(node.url, account, mailbox_id, f"failover-{run}-{attempt}")
                except OSError:
                    done = False
                if done:
                    break
            if done:
                break
            if time.monotonic() - killed_at > 60:
                raise SystemExit("bench: no write succeeded within 60 s of the kill")
            time.sleep(0.01)
        elapsed = time.monotonic() - killed_at
        leader.process.wait()
        new_leader = leader_of(survivors)
        times.append(elapsed)
        details.append({"run": run, "seconds": elapsed, "killed": leader.name,
                        "new_leader": new_leader.name if new_leader else None, "attempts": attempt})
        print(f"  failover run {run}: {elapsed:.3f} s (killed {leader.name}, new leader "
              f"{new_leader.name if new_leader else '?'})", flush=True)
        leader.start()
        wait_for(f"{leader.name} answering after restart", lambda: leader.status(), 30, 0.05)
    wait_for("a healthy cluster after the failover runs", lambda: healthy(nodes), 60, 0.05)
    return {"runs": details, "median_s": statistics.median(times), "max_s": max(times), "min_s": min(times)}


def catch_up(load, nodes, entries):
    wait_for("a healthy cluster before the catch-up run", lambda: healthy(nodes), 60, 0.05)
    leader = leader_of(nodes)
    follower = next(n for n in nodes if n is not leader)
    follower.stop()
    applied_at_stop = wait_for(f"{leader.name} status", lambda: leader.status(), 10)["commitIndex"]
    figures = load.run(leader.url, 64, 600, limit=entries)
    target = leader.status()["commitIndex"]
    behind = target - applied_at_stop
    follower.start()
    started = follower.started_at
    wait_for(f"{follower.name} answering after restart", lambda: follower.status(), 30, 0.02)
    answering = time.monotonic() - started
    final = wait_for(f"{follower.name} catching up {behind} entries", lambda: caught_up(follower, target), 300, 0.02)
    elapsed = time.monotonic() - started
    return {"entries_behind": behind, "writes_answered": figures["answered"], "write_errors": figures["errors"],
            "seconds_from_spawn": elapsed, "seconds_from_answering": elapsed - answering,
            "seconds_to_answer": answering, "entries_per_s": behind / elapsed,
            "follower_role_after": final["role"]}


def setup(nodes):
    for node in nodes:
        node.start()
    wait_for("the ring forming one cluster", lambda: healthy(nodes), 60, 0.05)
    leader = leader_of(nodes)
    code, raw, _ = http("POST", leader.url + "/admin/accounts", {"name": "bench", "password": PASSWORD},
                        {"Authorization": f"Bearer {SECRET}"}, 30)
    assert code == 201, (code, raw)
    account = json.loads(raw)["account"]["id"]
    create = {f"m{i}": {"name": f"bench-{i}"} for i in range(MAILBOXES)}
    code, raw, _ = http("POST", leader.url + "/jmap/api", {"using": USING, "methodCalls": [
        ["Mailbox/set", {"accountId": account, "create": create}, "0"]]}, {"Authorization": AUTH}, 30)
    assert code == 200, (code, raw)
    created = json.loads(raw)["methodResponses"][0][1]["created"]
    return account, [created[k]["id"] for k in sorted(create, key=lambda k: int(k[1:]))]


def git_revision():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "stalwart"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(result):
    print(f"\ncommitted writes (Mailbox/set, one rename each), leader of 3 nodes over HTTP keep-alive, wrk -t1:")
    print(f"{'writers':>8} {'writes':>8} {'errors':>7} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'wrk cpu':>8} {'leader cpu':>10} {'follower cpu':>13} {'etcd 3.4':>9}")
    for level in result["throughput"]:
        cpu = level["node_cpu_per_s"]
        followers = "/".join(f"{v:.2f}" for k, v in cpu.items() if k != "leader")
        etcd = ETCD["puts_per_s"].get(str(level["writers"]), "")
        print(f"{level['writers']:>8} {level['answered']:>8} {level['errors']:>7} {level['committed_per_s']:>9.1f} "
              f"{level['p50_ms']:>8.2f} {level['p99_ms']:>8.2f} {level['client_cpu_per_s']:>8.2f} "
              f"{cpu['leader']:>10.2f} {followers:>13} {etcd:>9}")
        if level["first_error"]:
            print(f"         first error: {level['first_error']}")
    f = result["failover"]
    print(f"failover after kill -9 of the leader, {len(f['runs'])} runs: median {f['median_s']:.3f} s, "
          f"max {f['max_s']:.3f} s, min {f['min_s']:.3f} s (etcd 3.4: median {ETCD['failover_median_s']} s, "
          f"max {ETCD['failover_max_s']} s)")
    c = result["catch_up"]
    print(f"catch-up of a restarted follower {c['entries_behind']} entries behind: {c['seconds_from_spawn']:.2f} s "
          f"from spawn ({c['seconds_to_answer']:.2f} s to answer HTTP, then {c['seconds_from_answering']:.2f} s), "
          f"{c['entries_per_s']:.0f} entries/s")
    d = result["disk"]
    print(f"disk (same run, {result['directory']}): single-append fdatasync {d['single_append_syncs_per_s']:.1f}/s, "
          f"64 per fdatasync {d['batch64_entries_per_s']:.1f} entries/s ({d['batch64_syncs_per_s']:.1f} syncs/s)")
    print(f"load average (1 min) at start {result['load_average_at_start'][0]:.2f}, at end "
          f"{result['load_average_at_end'][0]:.2f}, on {result['cpus']} CPUs: other work on the machine shows here")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run: 2 s levels, 3 failovers, 2,000 entries")
    parser.add_argument("--seconds", type=float, default=None, help="duration of each concurrency level (10)")
    parser.add_argument("--failovers", type=int, default=None, help="failover runs (10)")
    parser.add_argument("--entries", type=int, default=None, help="entries a stopped follower falls behind (10000)")
    parser.add_argument("--dir", default=".", help="parent of the scratch directory (on the disk under test)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "cluster.json"))
    arguments = parser.parse_args(argv)
    seconds = arguments.seconds or (2.0 if arguments.quick else 10.0)
    failovers = arguments.failovers or (3 if arguments.quick else 10)
    entries = arguments.entries or (2000 if arguments.quick else 10000)
    if not shutil.which("wrk"):
        raise SystemExit("bench/cluster.py needs wrk (apt-get install wrk)")
    directory = os.path.abspath(tempfile.mkdtemp(prefix="cluster.", dir=arguments.dir))
    ports = _free_ports(6)
    nodes = [Node(directory, f"node{i}", ports[i], ports[3 + i], ports[3 + (i + 1) % 3]) for i in range(3)]
    result = {"directory": directory, "revision": git_revision(), "python": platform.python_version(),
              "cpus": os.cpu_count(), "quick": arguments.quick, "etcd": ETCD,
              "load_average_at_start": os.getloadavg(),
              "workload": "Mailbox/set renaming one of 64 Mailboxes, one per JMAP request, wrk -t1 -cN keep-alive to the leader"}
    try:
        account, mailbox_ids = setup(nodes)
        load = Load(directory, account, mailbox_ids)
        load.run(leader_of(nodes).url, 16, 1)  # warm up: password cache, connections, page cache
        print("throughput ...", flush=True)
        result["throughput"] = throughput(load, nodes, seconds)
        print("failover ...", flush=True)
        result["failover"] = failover(nodes, account, mailbox_ids[0], failovers)
        print("catch-up ...", flush=True)
        result["catch_up"] = catch_up(load, nodes, entries)
    finally:
        for node in nodes:
            node.stop()
    result["load_average_at_end"] = os.getloadavg()
    result["disk"] = fsync_rate.measure(directory, 4.0)
    shutil.rmtree(directory, ignore_errors=True)
    report(result)
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
