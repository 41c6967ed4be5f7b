"""
LMTP delivery benchmark (issue 4): a real C{twistd -n stalwart-jmap}
process, loaded over LMTP (RFC 2033) by separate load-generator processes
using the standard library's L{smtplib.LMTP}.

Messages are realistic and deterministic (L{generate_messages}, seeded):
2-50 KB, multipart/alternative text + HTML, about one in five
multipart/mixed with a base64 attachment, Message-ID, Date, From/To/Cc,
List-Id on some, and threads (about a third are replies carrying
In-Reply-To and References to an earlier message with a "Re:" subject).

Four runs of C{--messages} (2,000) deliveries each, one recipient per
transaction:

  - C{empty-1}: one connection into an empty Inbox;
  - C{empty-8}: eight concurrent connections into another empty Inbox;
  - C{full-1} and C{full-8}: the same into an Inbox already holding
    C{--prefill} (5,000) messages, delivered first over eight connections.

Each connection is its own process (L{multiprocessing}, fork), so the
load generator is not held back by the GIL; every process records its
own CPU time, and the report gives the load generator's total CPU time
against the server's (from C{/proc/<pid>/stat}) so a client bottleneck
would show.  Latency is per message, from sending C{DATA} to the final
250 reply (C{smtplib.LMTP.data}: DATA, 354, the message, the reply:
with one recipient there is exactly one reply), MAIL and RCPT are not
in it.  The server's peak RSS is C{VmHWM} from C{/proc/<pid>/status}.

Every delivery is durable before its 250 (DESIGN.md section 4: the
entry is fdatasync'ed in the Raft log, group commit sharing a sync
between concurrent deliveries).  Run from the repository root on the
disk under test (not a tmpfs): C{python bench/lmtp.py [--messages N]
[--prefill N] [--dir DIR]}.  Prints a table; writes JSON to
bench/results/lmtp.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECRET = "bench-admin-secret"
PASSWORD = "bench password"
DOMAIN = "bench.example"

#: Dovecot 2.3 and Cyrus 3.6 on these machines (issue 4), messages/s.
REFERENCE = {
    "dovecot-2.3": {"empty-1": 180, "empty-8": 600, "full-1": 110, "full-8": 220},
    "cyrus-3.6": {"empty-1": 37, "empty-8": 80},
}

# -- messages -------------------------------------------------------------------

_WORDS = (
    "the quarterly report budget meeting schedule review draft proposal customer release "
    "deadline server migration invoice contract update agenda feedback design project team "
    "thanks please attached regarding discussed tomorrow afternoon morning office travel "
    "security patch deploy rollback incident summary analysis numbers forecast launch plan "
    "question answer notes minutes action items follow urgent weekly monthly benchmark "
    "database index latency throughput storage backup restore cluster network firewall "
    "vendor pricing quote order shipment delivery warehouse support ticket escalation "
    "holiday lunch conference slides keynote workshop training onboarding hiring interview"
).split()
_FIRST = "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil Trent Victor Walter".split()
_LAST = "Martin Dupont Schmidt Rossi Tanaka Novak Silva Larsen Kowalski Murphy Jensen Costa Weber Moreau".split()
_ORGS = ("example.com", "example.org", "example.net", "corp.example", "mail.example", "lists.example")
_ATTACHMENTS = (("application/pdf", "report.pdf"), ("image/png", "chart.png"),
                ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "figures.xlsx"),
                ("text/calendar", "invite.ics"))


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}@{rng.choice(_ORGS)}"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 18))]
    return " ".join(words).capitalize() + rng.choice(".!?.")


def _paragraphs(rng: random.Random, size: int) -> list[str]:
    """Paragraphs of lines of at most 76 characters, about C{size} bytes in all."""
    out, total = [], 0
    while total < size:
        text = " ".join(_sentence(rng) for _ in range(rng.randrange(2, 6)))
        lines, line = [], ""
        for word in text.split():
            if len(line) + len(word) + 1 > 76:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        out.append("\r\n".join(lines))
        total += len(text) + 2
    return out


def _date(seconds: int) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(seconds))


def generate_messages(count: int, seed: int, recipient: str, tag: str = "m") -> list[bytes]:
    """
    C{count} realistic messages to C{recipient}, the same for the same
    arguments.  Sizes are log-uniform between 2 and 50 KB (attachments
    included).  Message-IDs are C{<tag.N.seed@DOMAIN>}, distinct per tag.
    """
    rng = random.Random(seed)
    messages, threads = [], []
    start = 1_700_000_000 + seed * 1000
    for n in range(count):
        target = int(2000 * (25 ** rng.random()))  # 2 KB .. 50 KB
        name, address = _person(rng)
        message_id = f"<{tag}.{n}.{seed}@{DOMAIN}>"
        headers = [
            f"From: {name} <{address}>",
            f"To: Bench User <{recipient}>",
        ]
        if rng.random() < 0.3:
            cc_name, cc = _person(rng)
            headers.append(f"Cc: {cc_name} <{cc}>")
        if threads and rng.random() < 0.35:
            parent_id, subject, references = rng.choice(threads[-50:])
            subject = subject if subject.startswith("Re: ") else "Re: " + subject
            references = (references + " " + parent_id).strip()
            headers += [f"Subject: {subject}", f"In-Reply-To: {parent_id}", f"References: {references[-900:]}"]
        else:
            subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 8))).capitalize()
            references = ""
            headers.append(f"Subject: {subject}")
        threads.append((message_id, subject, references))
        if rng.random() < 0.15:
            headers.append(f"List-Id: <team{rng.randrange(5)}.lists.example>")
        headers += [
            f"Date: {_date(start + n * 37)}",
            f"Message-ID: {message_id}",
            "MIME-Version: 1.0",
            "X-Mailer: bench/lmtp.py",
        ]
        attachment = rng.random() < 0.2
        attachment_bytes = int(target * rng.uniform(0.4, 0.8)) if attachment else 0
        text_bytes = max(600, (target - attachment_bytes) * 2 // 5)
        paragraphs = _paragraphs(rng, text_bytes)
        text = "\r\n\r\n".join(paragraphs) + f"\r\n\r\n-- \r\n{name}\r\n"
        html = ("<html><head><meta charset=\"utf-8\"></head><body>\r\n"
                + "\r\n".join(f"<p>{p}</p>" for p in paragraphs)
                + f"\r\n<p>--<br>\r\n<b>{name}</b></p>\r\n</body></html>\r\n")
        alt = f"alt-{seed}-{n}"
        alternative = (
            f"--{alt}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            f"{text}\r\n--{alt}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{html}\r\n--{alt}--\r\n"
        )
        if attachment:
            mixed = f"mixed-{seed}-{n}"
            kind, filename = rng.choice(_ATTACHMENTS)
            encoded = base64.encodebytes(rng.randbytes(attachment_bytes * 3 // 4)).decode().replace("\n", "\r\n")
            headers.append(f'Content-Type: multipart/mixed; boundary="{mixed}"')
            body = (
                f"This is a multi-part message in MIME format.\r\n\r\n--{mixed}\r\n"
                f'Content-Type: multipart/alternative; boundary="{alt}"\r\n\r\n{alternative}\r\n'
                f'--{mixed}\r\nContent-Type: {kind}; name="{filename}"\r\n'
                f'Content-Disposition: attachment; filename="{filename}"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}--{mixed}--\r\n"
            )
        else:
            headers.append(f'Content-Type: multipart/alternative; boundary="{alt}"')
            body = alternative
        messages.append(("\r\n".join(headers) + "\r\n\r\n" + body).encode())
    return messages


# -- load generator (one process per connection) -------------------------------


def _connection(port: int, recipient: str, messages: list, start_at: float, results) -> None:
    """Deliver C{messages} on one LMTP connection; put (latencies, errors, cpu s) on C{results}."""
    latencies, errors = [], []
    cpu = time.process_time()
    client = smtplib.LMTP("127.0.0.1", port)
    try:
        client.ehlo_or_helo_if_needed()  # LHLO
        while time.time() < start_at:  # all connections start together
            time.sleep(0.001)
        for message in messages:
            client.mail("sender@example.org")
            code, reply = client.rcpt(recipient)
            if code != 250:
                errors.append((code, reply.decode("latin-1")))
                client.rset()
                continue
            started = time.perf_counter()
            code, reply = client.data(message)
            latencies.append(time.perf_counter() - started)
            if code != 250:
                errors.append((code, reply.decode("latin-1")))
        client.quit()
    finally:
        client.close()
    results.put((latencies, errors, time.process_time() - cpu))


def deliver(port: int, recipient: str, messages: list, connections: int, server_pid: int) -> dict:
    """Deliver C{messages} over C{connections} concurrent connections; return the figures."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.5
    slices = [messages[i::connections] for i in range(connections)]
    processes = [context.Process(target=_connection, args=(port, recipient, s, start_at, results))
                 for s in slices]
    for p in processes:
        p.start()
    server_cpu = _cpu_seconds(server_pid)
    gathered = [results.get(timeout=3600) for _ in processes]
    elapsed = time.time() - start_at
    server_cpu = _cpu_seconds(server_pid) - server_cpu
    for p in processes:
        p.join()
    latencies = sorted(x for r in gathered for x in r[0])
    errors = [e for r in gathered for e in r[1]]
    return {
        "connections": connections, "messages": len(messages), "delivered": len(latencies) - len(errors),
        "errors": len(errors), "first_error": errors[0] if errors else None,
        "bytes": sum(len(m) for m in messages), "seconds": elapsed,
        "deliveries_per_s": (len(latencies) - len(errors)) / elapsed,
        "p50_ms": _pct(latencies, 0.50), "p99_ms": _pct(latencies, 0.99), "max_ms": _pct(latencies, 1.0),
        "load_generator_cpu_s": sum(r[2] for r in gathered), "server_cpu_s": server_cpu,
        "server_rss_kib_after": proc_status(server_pid, "VmRSS"),
    }


def _pct(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))] * 1000


# -- the server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, field: str):
    """A kB field of C{/proc/<pid>/status} (VmRSS, VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of C{pid} and its reaped children, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Server:
    """A C{twistd -n stalwart-jmap} child process with JMAP and LMTP on free ports."""

    def __init__(self, directory: str, extra=()) -> None:
        self.directory = directory
        self.port, self.lmtp_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             f"--logfile={os.path.join(directory, 'server.log')}", "stalwart-jmap",
             f"--data-dir={os.path.join(directory, 'data')}", f"--jmap-port={self.port}",
             f"--lmtp-port={self.lmtp_port}", f"--admin-secret={SECRET}", *extra],
            env=env, cwd=directory)
        self.pid = self.process.pid
        #: The code the process runs: read when it starts, not when the report is written.
        self.revision = git_revision()
        self._wait_ready()

    def _wait_ready(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(self.url + "/.well-known/jmap", timeout=1)
            except urllib.error.HTTPError:
                return  # 401: it answers
            except OSError:
                time.sleep(0.05)  # a plain script, not a reactor: sleeping is fine here
        raise SystemExit("server not ready")

    def create_account(self, name: str, email: str) -> str:
        request = urllib.request.Request(
            self.url + "/admin/accounts",
            data=json.dumps({"name": name, "password": PASSWORD, "emails": [email]}).encode(),
            headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=30).read())["account"]["id"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "stalwart"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+uncommitted changes in stalwart/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- driver ---------------------------------------------------------------------


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="deliveries per run")
    parser.add_argument("--prefill", type=int, default=5000, help="messages already in the full Inbox")
    parser.add_argument("--connections", type=int, default=8, help="the concurrent level")
    parser.add_argument("--dir", default=".", help="parent of the scratch data directory (on the disk under test)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "lmtp.json"))
    arguments = parser.parse_args(argv)
    n, many = arguments.messages, arguments.connections

    generated = time.perf_counter()
    runs = {
        "empty-1": generate_messages(n, 1, f"empty1@{DOMAIN}", "e1"),
        f"empty-{many}": generate_messages(n, 2, f"empty8@{DOMAIN}", "e8"),
        "full-1": generate_messages(n, 3, f"full@{DOMAIN}", "f1"),
        f"full-{many}": generate_messages(n, 4, f"full@{DOMAIN}", "f8"),
    }
    prefill = generate_messages(arguments.prefill, 5, f"full@{DOMAIN}", "pre")
    generated = time.perf_counter() - generated
    sizes = sorted(len(m) for m in runs["empty-1"])

    directory = os.path.abspath(tempfile.mkdtemp(prefix="lmtp.", dir=arguments.dir))
    results = {}
    server = Server(directory)
    try:
        for name in ("empty1", "empty8", "full"):
            server.create_account(name, f"{name}@{DOMAIN}")
        rss_idle = proc_status(server.pid, "VmRSS")
        results["empty-1"] = deliver(server.lmtp_port, f"empty1@{DOMAIN}", runs["empty-1"], 1, server.pid)
        results[f"empty-{many}"] = deliver(server.lmtp_port, f"empty8@{DOMAIN}", runs[f"empty-{many}"], many, server.pid)
        prefilled = deliver(server.lmtp_port, f"full@{DOMAIN}", prefill, many, server.pid)
        results["full-1"] = deliver(server.lmtp_port, f"full@{DOMAIN}", runs["full-1"], 1, server.pid)
        results[f"full-{many}"] = deliver(server.lmtp_port, f"full@{DOMAIN}", runs[f"full-{many}"], many, server.pid)
        peak_kib = proc_status(server.pid, "VmHWM")
        revision = server.revision
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    print(f"messages: {n} per run, {sizes[0]}-{sizes[-1]} bytes (median {sizes[len(sizes) // 2]}), "
          f"generated in {generated:.1f} s; prefill {len(prefill)} over {many} connections "
          f"at {prefilled['deliveries_per_s']:.1f}/s ({prefilled['errors']} errors)")
    print(f"{'run':>8} {'conns':>5} {'ok':>6} {'err':>4} {'deliv/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'srv cpu':>8} {'gen cpu':>8} {'dovecot':>8} {'cyrus':>6}")
    for name, r in results.items():
        key = name if name.endswith("-1") else name.rsplit("-", 1)[0] + "-8"
        print(f"{name:>8} {r['connections']:>5} {r['delivered']:>6} {r['errors']:>4} {r['deliveries_per_s']:>8.1f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['server_cpu_s'] / r['seconds']:>7.0%} "
              f"{r['load_generator_cpu_s'] / r['seconds']:>7.0%} "
              f"{REFERENCE['dovecot-2.3'].get(key, '-'):>8} {REFERENCE['cyrus-3.6'].get(key, '-'):>6}")
        if r["first_error"]:
            print(f"         first error: {r['first_error']}")
    print("srv cpu / gen cpu: CPU time of the server / of all load-generator processes, per second of wall time "
          f"({os.cpu_count()} CPUs)")
    print(f"server RSS idle {rss_idle / 1024:.1f} MiB, peak (VmHWM) {peak_kib / 1024:.1f} MiB")
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump({
            "what": "LMTP deliveries (one recipient each) of realistic 2-50 KB messages; latency from DATA "
                    "to the 250 reply; each connection is a separate process",
            "revision": revision, "python": platform.python_version(), "cpus": os.cpu_count(),
            "message_bytes": {"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1],
                              "mean": sum(sizes) / len(sizes)},
            "prefill": {k: prefilled[k] for k in ("messages", "errors", "deliveries_per_s", "seconds")},
            "runs": results, "server_idle_rss_kib": rss_idle, "server_peak_rss_kib": peak_kib,
            "reference_messages_per_s": REFERENCE,
        }, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
