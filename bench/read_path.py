"""
Read-path benchmark: a real C{twistd -n stalwart-jmap} process, loaded over
HTTP by a separate load-generator process.

The server runs with its own data directory on 127.0.0.1 and
C{--max-concurrent-requests=64} (the default of 4 per account would turn
most concurrent requests into C{limit} errors: that is the limit working,
not the read path).  One account is created through the admin API.  The
load generator (this script with C{--load}) runs N concurrent keep-alive
clients (treq, one persistent L{HTTPConnectionPool}) that each loop on one
kind of request for a fixed time:

  - C{echo}: POST /jmap/api with one C{Core/echo} call (Basic auth; the
    server caches a checked password, so scrypt runs once);
  - C{session}: GET /.well-known/jmap.

It reports requests/s, p50 and p99 latency (ms) and non-200 answers for each
kind and N, plus the server's peak RSS (VmHWM from /proc/<pid>/status).

Run from the repository root: C{python bench/read_path.py [--seconds S]
[--clients 1,16]}.  Prints a table; writes JSON to
bench/results/read_path.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECRET = "bench-admin-secret"
PASSWORD = "bench password"
ECHO = json.dumps({
    "using": ["urn:ietf:params:jmap:core"],
    "methodCalls": [["Core/echo", {"hello": "world", "n": 42}, "c0"]],
}).encode()


# -- load generator (a separate process) --------------------------------------


def load(url, kind, clients, seconds):
    """Run in the load-generator process; prints one JSON object."""
    from twisted.internet import reactor
    from twisted.internet.defer import DeferredList, ensureDeferred
    from twisted.web.client import Agent, HTTPConnectionPool
    import treq

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = clients
    http = treq.client.HTTPClient(Agent(reactor, pool=pool))
    auth = {"Authorization": ["Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()]}
    latencies, errors = [], []
    result = {}

    async def one():
        if kind == "echo":
            response = await http.post(url + "/jmap/api", data=ECHO, headers=dict(auth, **{"Content-Type": ["application/json"]}))
        else:
            response = await http.get(url + "/.well-known/jmap", headers=auth)
        body = await response.content()
        if response.code != 200:
            errors.append((response.code, body[:200].decode("latin-1")))

    async def client(deadline):
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    async def run():
        try:
            await DeferredList([ensureDeferred(one()) for _ in range(clients)])  # warm the pool and the password cache
            latencies.clear()
            errors.clear()
            started = time.perf_counter()
            await DeferredList([ensureDeferred(client(started + seconds)) for _ in range(clients)], fireOnOneErrback=True)
            elapsed = time.perf_counter() - started
            latencies.sort()

            def pct(f):
                return latencies[min(len(latencies) - 1, round(f * (len(latencies) - 1)))] * 1000

            result.update(kind=kind, clients=clients, requests=len(latencies), errors=len(errors),
                          first_error=errors[0] if errors else None, seconds=elapsed,
                          requests_per_s=len(latencies) / elapsed, p50_ms=pct(0.5), p99_ms=pct(0.99))
        finally:
            await pool.closeCachedConnections()
            reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(run()))
    reactor.run()
    print(json.dumps(result))


# -- driver ---------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _wait_ready(url, process, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url + "/.well-known/jmap", timeout=1)
        except urllib.error.HTTPError:
            return  # 401: it answers
        except OSError:
            time.sleep(0.05)  # a plain script, not a reactor: sleeping is fine here
    raise SystemExit("server not ready")


def _peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


_WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic {auth}"
"""


def _wrk_ms(text):
    value = float(text.rstrip("umsµ"))
    return value / 1000 if text.endswith("us") else value * 1000 if text.endswith("s") and not text.endswith("ms") else value


def load_wrk(url, kind, clients, seconds, directory):
    """
    The same load from wrk, a C load generator: a Python client on the
    same two cores measures itself as much as the server.
    """
    auth = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
    if kind == "echo":
        method, path = "POST", "/jmap/api"
        body = json.dumps({"using": ["urn:ietf:params:jmap:core"],
                           "methodCalls": [["Core/echo", {"hello": "world"}, "c1"]]})
    else:
        method, path, body = "GET", "/.well-known/jmap", ""
    script = os.path.join(directory, f"{kind}.lua")
    with open(script, "w") as f:
        f.write(_WRK_SCRIPT.format(method=method, body=body, auth=auth))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--latency", "-s", script, url + path],
        check=True, capture_output=True, text=True).stdout
    fields = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("50%", "99%"):
            fields[words[0]] = _wrk_ms(words[1])
        elif line.startswith("Requests/sec:"):
            fields["rate"] = float(words[1])
        elif "requests in" in line:
            fields["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx"):
            fields["errors"] = int(words[-1])
    return {"kind": kind, "clients": clients, "requests": fields.get("requests", 0),
            "errors": fields.get("errors", 0), "requests_per_s": fields.get("rate", 0.0),
            "p50_ms": fields.get("50%", float("nan")), "p99_ms": fields.get("99%", float("nan")),
            "first_error": None, "client": "wrk"}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "read_path.json"))
    parser.add_argument("--python-client", action="store_true",
                        help="load with the treq client even when wrk is installed")
    parser.add_argument("--load", nargs=4, metavar=("URL", "KIND", "CLIENTS", "SECONDS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.load:
        url, kind, clients, seconds = arguments.load
        load(url, kind, int(clients), float(seconds))
        return 0

    directory = os.path.abspath(tempfile.mkdtemp(prefix="read_path.", dir="."))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
         f"--logfile={os.path.join(directory, 'server.log')}", "stalwart-jmap",
         f"--data-dir={os.path.join(directory, 'data')}", f"--jmap-port={port}", "--lmtp-port=0",
         f"--admin-secret={SECRET}", "--max-concurrent-requests=64"],
        env=_environment(), cwd=directory)
    results = []
    try:
        _wait_ready(url, server)
        request = urllib.request.Request(
            url + "/admin/accounts", data=json.dumps({"name": "bench", "password": PASSWORD}).encode(),
            headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        for kind in ("echo", "session"):
            for clients in [int(c) for c in arguments.clients.split(",")]:
                if shutil.which("wrk") and not arguments.python_client:
                    results.append(load_wrk(url, kind, clients, arguments.seconds, directory))
                    continue
                out = subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--load", url, kind, str(clients), str(arguments.seconds)],
                    env=_environment(), check=True, capture_output=True, text=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        peak_kib = _peak_rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)

    print(f"{'kind':>8} {'clients':>8} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['kind']:>8} {r['clients']:>8} {r['requests']:>9} {r['errors']:>7} "
              f"{r['requests_per_s']:>9.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        if r["first_error"]:
            print(f"         first error: {r['first_error']}")
    print(f"server peak RSS (VmHWM): {peak_kib / 1024:.1f} MiB")
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump({"levels": results, "server_peak_rss_kib": peak_kib,
                   "server_options": ["--max-concurrent-requests=64"]}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
