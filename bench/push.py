"""
Push benchmark (issue 7): the time from an LMTP delivery's 250 to the
StateChange arriving at 100 concurrent EventSource clients, and the server
memory per idle EventSource client.

A real C{twistd -n stalwart-jmap} process (L{lmtp.Server}: JMAP and LMTP on
free ports, its own data directory) runs once per event-source-throttle
given (C{--throttles}, default 1000 ms, the product default, and 50 ms, so
that the mechanism's own latency shows beside the throttle's).  One account
is created; a separate load process (this script with C{--load}, Twisted,
plain TCP reading the C{text/event-stream}) opens C{--clients} concurrent
C{GET /jmap/eventsource?types=*&closeafter=no&ping=0} streams for it.  Then
C{--messages} messages (L{lmtp.generate_messages}) are delivered one at a
time with C{smtplib.LMTP}; after each, the driver waits until every client
has had a StateChange naming Email for the account (or C{--timeout}
seconds) before the next: at once (back-to-back, so the throttle holds
most events back), and, in a second run, throttle + 50 ms later (spaced:
each delivery is an isolated one and goes out at the end of the reactor
turn that applied it).  For each (delivery, client) pair the latency is
the client's arrival time of the first such event after DATA was sent,
minus the time the 250 came back (both C{CLOCK_MONOTONIC}, shared by the
processes; it is negative when the event beats the 250).  A pair with no
event before the next delivery started is lost.

With the default throttle, back-to-back deliveries are held back by it:
that is what a client sees of a busy mailbox; spaced runs show what it sees
of one new message, and the 50 ms spaced run the mechanism's own cost.

Memory: a fresh server with five accounts; after 10 streams opened and
closed (warming the code paths and the password cache), its VmRSS with 0,
100 and 500 idle streams (at most 100 per account: a server allows 256 per
account), each read after 2 s of quiet.  The figure per client is the
growth divided by the number of streams.

Run from the repository root: C{python bench/push.py [--messages 50]
[--clients 100] [--throttles 1000,50]}.  Prints a table; writes
bench/results/push.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import select
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lmtp  # noqa: E402

PATH = "/jmap/eventsource?types=*&closeafter=no&ping=0"
STREAMS_PER_ACCOUNT = 100


# -- load process ---------------------------------------------------------------


def load(port: int, users: list, clients: int) -> None:
    """
    Open C{clients} event streams, client j as C{users[j // 100]}; print
    C{ready} once all are open, then C{min <n>} whenever the fewest Email
    StateChanges any client has had grows; on C{done} (stdin) print the
    arrivals as JSON and exit.
    """
    from twisted.internet import reactor, stdio
    from twisted.internet.protocol import ClientFactory, Protocol
    from twisted.protocols.basic import LineReceiver

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    streams = []
    state = {"ready": 0, "min": 0, "failed": []}

    class Stream(Protocol):
        def __init__(self, user: str) -> None:
            self.user = user
            self.buffer = b""
            self.headers_done = False
            self.arrivals = []  # (monotonic seconds, {type: state}) of events naming Email
            self.other = 0

        def connectionMade(self):
            auth = base64.b64encode(f"{self.user}:{lmtp.PASSWORD}".encode()).decode()
            self.transport.write(
                f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Basic {auth}\r\n\r\n".encode())

        def dataReceived(self, data):
            now = time.monotonic()
            self.buffer += data
            if not self.headers_done:
                head, sep, rest = self.buffer.partition(b"\r\n\r\n")
                if not sep:
                    return
                if not head.startswith(b"HTTP/1.1 200"):
                    state["failed"].append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                    self.transport.loseConnection()
                    return
                self.headers_done = True
                self.buffer = rest
            # Chunked transfer coding: chunk-size lines and the CRLF after
            # each chunk are lines that do not start with "data: ".
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                if line.startswith(b": stalwart-jmap"):
                    state["ready"] += 1
                    if state["ready"] == 1:
                        connect_rest()
                    if state["ready"] == clients:
                        out("ready")
                elif line.startswith(b"data: "):
                    change = json.loads(line[6:])
                    changed = change.get("changed", {})
                    types = next(iter(changed.values()), {}) if changed else {}
                    if change.get("@type") == "StateChange" and ("Email" in types or "EmailDelivery" in types):
                        self.arrivals.append((now, types))
                        fewest = min(len(s.arrivals) for s in streams)
                        if fewest > state["min"]:
                            state["min"] = fewest
                            out(f"min {fewest}")
                    else:
                        self.other += 1

    class Factory(ClientFactory):
        def __init__(self, user):
            self.user = user

        def buildProtocol(self, addr):
            stream = Stream(self.user)
            streams.append(stream)
            return stream

        def clientConnectionFailed(self, connector, reason):
            state["failed"].append(reason.getErrorMessage())

    def connect(j):
        reactor.connectTCP("127.0.0.1", port, Factory(users[j // STREAMS_PER_ACCOUNT]))

    def connect_rest():
        # The first stream has had its password checked (scrypt, then cached):
        # the others do not all run scrypt at once.
        for j in range(1, clients):
            connect(j)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            if line.startswith(b"done "):
                # A file, not stdout: StandardIO made stdout non-blocking, and
                # a long line would be cut short.
                with open(line[5:].strip().decode(), "w") as f:
                    json.dump({"arrivals": [s.arrivals for s in streams], "failed": state["failed"],
                               "other_events": sum(s.other for s in streams)}, f)
                out("written")
                reactor.stop()

    stdio.StandardIO(Control())
    reactor.callWhenRunning(connect, 0)
    reactor.run()


class LoadProcess:
    def __init__(self, port: int, users: list, clients: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--load", str(port), ",".join(users), str(clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.min = 0

    def line(self, timeout: float):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"load process exited with {self.process.wait()}")
        return line.strip()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.line(deadline - time.monotonic()) == "ready":
                return
        raise SystemExit("event streams not all open")

    def wait_min(self, target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.min < target:
            remaining = deadline - time.monotonic()
            line = self.line(max(0.0, remaining)) if remaining > 0 else None
            if line is None:
                return False
            if line.startswith("min "):
                self.min = int(line.split()[1])
        return True

    def finish(self) -> dict:
        with tempfile.NamedTemporaryFile(prefix="push-load.", suffix=".json") as report:
            self.process.stdin.write(f"done {report.name}\n")
            self.process.stdin.flush()
            while True:
                line = self.line(60)
                if line is None:
                    raise SystemExit("load process did not report")
                if line == "written":
                    self.process.wait(30)
                    return json.load(open(report.name))


# -- driver ---------------------------------------------------------------------


def _pct(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))] * 1000


def latency_run(throttle_ms: int, spaced: bool, messages: list, clients: int, timeout: float, parent: str) -> dict:
    directory = os.path.abspath(tempfile.mkdtemp(prefix="push.", dir=parent))
    server = lmtp.Server(directory, [f"--event-source-throttle={throttle_ms}", "--max-concurrent-requests=1000"])
    try:
        server.create_account("bench", f"bench@{lmtp.DOMAIN}")
        load_process = LoadProcess(server.port, ["bench"], clients)
        try:
            load_process.wait_ready()
            lmtp_client = smtplib.LMTP("127.0.0.1", server.lmtp_port)
            lmtp_client.ehlo_or_helo_if_needed()
            sent, acked, waits, errors = [], [], [], []
            for i, message in enumerate(messages):
                lmtp_client.mail("sender@example.org")
                code, reply = lmtp_client.rcpt(f"bench@{lmtp.DOMAIN}")
                if code != 250:
                    raise SystemExit(f"RCPT: {code} {reply!r}")
                sent.append(time.monotonic())
                code, reply = lmtp_client.data(message)
                acked.append(time.monotonic())
                if code != 250:
                    errors.append((code, reply.decode("latin-1")))
                waits.append(load_process.wait_min(i + 1, timeout))
                if spaced:  # the next delivery finds the throttle open again
                    time.sleep(throttle_ms / 1000 + 0.05)
            lmtp_client.quit()
            time.sleep(timeout if not all(waits) else 0.1)  # late events still count as late, not lost
            report = load_process.finish()
        finally:
            if load_process.process.poll() is None:
                load_process.process.kill()
        revision = server.revision
        rss = lmtp.proc_status(server.pid, "VmRSS")
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    latencies, lost, extra = [], 0, 0
    windows = sent[1:] + [float("inf")]
    for arrivals in report["arrivals"]:
        for start, ack, end in zip(sent, acked, windows):
            inside = [t for t, _ in arrivals if start <= t < end]
            if inside:
                latencies.append(inside[0] - ack)
                extra += len(inside) - 1
            else:
                lost += 1
    before_ack = sum(1 for x in latencies if x < 0)
    latencies.sort()
    streams = len(report["arrivals"])
    return {
        "event_source_throttle_ms": throttle_ms, "spacing": "spaced" if spaced else "back-to-back",
        "clients": clients, "streams_open": streams,
        "stream_failures": report["failed"][:5], "deliveries": len(messages), "lmtp_errors": len(errors),
        "pairs": len(messages) * streams, "received": len(latencies), "lost": lost,
        "extra_email_events": extra, "other_events": report["other_events"],
        "p50_ms": _pct(latencies, 0.5), "p99_ms": _pct(latencies, 0.99), "max_ms": _pct(latencies, 1.0),
        "min_ms": _pct(latencies, 0.0), "events_before_250": before_ack,
        "lmtp_data_to_250_p50_ms": _pct(sorted(a - s for s, a in zip(sent, acked)), 0.5),
        "waits_timed_out": waits.count(False), "server_rss_kib_after": rss, "revision": revision,
    }


def memory_run(levels: list, parent: str) -> dict:
    directory = os.path.abspath(tempfile.mkdtemp(prefix="push-mem.", dir=parent))
    accounts = (max(levels) + STREAMS_PER_ACCOUNT - 1) // STREAMS_PER_ACCOUNT
    users = [f"idle{k}" for k in range(accounts)]
    server = lmtp.Server(directory, ["--max-concurrent-requests=1000"])
    processes = []

    def settled_rss():
        time.sleep(2)
        return lmtp.proc_status(server.pid, "VmRSS")

    try:
        for user in users:
            server.create_account(user, f"{user}@{lmtp.DOMAIN}")
        # Warm up: one stream per account (its password checked and cached),
        # then closed.
        for user in users:
            warm = LoadProcess(server.port, [user], 2)
            warm.wait_ready()
            warm.finish()
        rss = {0: settled_rss()}
        opened = 0
        for level in sorted(levels):
            # Streams opened in steps of whole accounts; one load process per step.
            first = opened // STREAMS_PER_ACCOUNT
            step_users = users[first:(level + STREAMS_PER_ACCOUNT - 1) // STREAMS_PER_ACCOUNT]
            process = LoadProcess(server.port, step_users, level - opened)
            processes.append(process)
            process.wait_ready()
            opened = level
            rss[level] = settled_rss()
        peak = lmtp.proc_status(server.pid, "VmHWM")
    finally:
        for process in processes:
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    per_client = {str(n): (rss[n] - rss[0]) / n for n in levels}
    return {"accounts": accounts, "rss_kib": {str(k): v for k, v in rss.items()},
            "kib_per_idle_client": per_client, "server_peak_rss_kib": peak}


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50, help="deliveries per throttle")
    parser.add_argument("--clients", type=int, default=100, help="concurrent EventSource clients")
    parser.add_argument("--throttles", default="1000,50", help="event-source-throttle values, in ms")
    parser.add_argument("--idle", default="100,500", help="idle stream counts for the memory figure")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an event after a delivery")
    parser.add_argument("--dir", default=".", help="parent of the scratch data directories")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "push.json"))
    parser.add_argument("--load", nargs=3, metavar=("PORT", "USERS", "CLIENTS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.load:
        port, users, clients = arguments.load
        load(int(port), users.split(","), int(clients))
        return 0
    if arguments.clients > STREAMS_PER_ACCOUNT:
        raise SystemExit(f"--clients: at most {STREAMS_PER_ACCOUNT} (one account)")

    messages = lmtp.generate_messages(arguments.messages, 7, f"bench@{lmtp.DOMAIN}", "push")
    runs = [latency_run(int(t), spaced, messages, arguments.clients, arguments.timeout, arguments.dir)
            for t in arguments.throttles.split(",") for spaced in (False, True)]
    memory = memory_run([int(n) for n in arguments.idle.split(",")], arguments.dir)

    print(f"{arguments.messages} LMTP deliveries, one at a time, to {arguments.clients} EventSource clients "
          f"({PATH}); latency from the 250 to each client's StateChange naming Email")
    print(f"{'throttle':>9} {'spacing':>12} {'streams':>7} {'pairs':>6} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'min ms':>8} {'<250':>5} {'DATA ms':>8}")
    for r in runs:
        print(f"{r['event_source_throttle_ms']:>7}ms {r['spacing']:>12} {r['streams_open']:>7} {r['pairs']:>6} {r['lost']:>5} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['min_ms']:>8.2f} "
              f"{r['events_before_250']:>5} {r['lmtp_data_to_250_p50_ms']:>8.2f}")
        if r["stream_failures"] or r["lmtp_errors"] or r["extra_email_events"]:
            print(f"           failures {r['stream_failures']}, LMTP errors {r['lmtp_errors']}, "
                  f"extra events {r['extra_email_events']}")
    print("back-to-back: each delivery right after every client had the previous one's event; spaced: "
          "throttle + 50 ms later (an isolated delivery)")
    print("<250: events that arrived before the 250 (negative latency); DATA ms: median DATA-to-250")
    rss = memory["rss_kib"]
    print("idle streams: server VmRSS " + ", ".join(f"{k} streams {v / 1024:.1f} MiB" for k, v in rss.items())
          + "; per stream " + ", ".join(f"{v:.1f} KiB ({k})" for k, v in memory["kib_per_idle_client"].items()))
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump({
            "what": "LMTP delivery (one at a time) to StateChange at concurrent EventSource clients of one "
                    "account; latency from the 250 reply to each client's event naming Email; memory per "
                    "idle EventSource client from the server's VmRSS",
            "eventsource": PATH, "revision": runs[0]["revision"], "python": platform.python_version(),
            "cpus": os.cpu_count(), "latency": runs, "memory": memory,
        }, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
