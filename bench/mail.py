"""
JMAP mail benchmark (issue 3): a real C{twistd -n stalwart-jmap} process
with one account holding C{--messages} (10,000) realistic messages, loaded
by wrk (a C load generator; Lua scripts rotate the request bodies).

The store is filled over LMTP (eight connections, the messages of
L{lmtp.generate_messages}: 2-50 KB, text + HTML, attachments, threads),
in three steps, and the server's C{VmRSS} is read after 2,000, 5,000 and
10,000 messages: it must stay flat as the store grows.  Then, for 1 and 8
concurrent clients (wrk connections), each for C{--seconds}:

  - C{email_get}: C{Email/get} of 10 ids (rotating over the whole store)
    with the list properties id, threadId, mailboxIds, keywords, from,
    subject, receivedAt, preview;
  - C{query}: C{Email/query} inMailbox Inbox, sorted by receivedAt
    descending, limit 50, calculateTotal;
  - C{query_text}: the same with a C{text} filter (rotating over names and
    words of different frequencies);
  - C{sync}: the usual client request, one POST of C{Mailbox/get} (all),
    C{Email/query} (as above) and C{Email/get} of C{#ids} (back-reference)
    with the list properties;
  - C{import}: C{Email/import} of one message (a distinct blob uploaded
    beforehand) into the Inbox: a write, durable before its answer.

It reports requests/s, p50/p99 latency (wrk's), non-200 answers and
answers holding a JMAP method error (a Lua C{response} hook looks for
C{"error"} in the method responses), and the server's peak RSS (VmHWM).
The server runs with C{--max-concurrent-requests=64}: the default of 4
concurrent requests per account would answer most of the 8-client
requests with a C{limit} error, which is the limit working, not the read
path.

Run from the repository root on the disk under test: C{python
bench/mail.py [--messages N] [--seconds S] [--dir DIR]}.  Prints a table;
writes JSON to bench/results/mail.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.pool import ThreadPool

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lmtp  # noqa: E402

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
LIST_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "preview"]
TEXT_TERMS = ["Kowalski", "firewall", "Mallory", "escalation", "keynote", "Tanaka", "rollback", "invoice"]
OPTIONS = ["--max-concurrent-requests=64"]

#: Cyrus 3.6 on these machines (issue 3), requests/s at 1 and 8 clients.
REFERENCE = {"cyrus-3.6": {"email_get": {1: 200, 8: 400}, "query": {1: 115, 8: 230},
                           "sync": {1: 57, 8: 100}, "import": {1: 35, 8: 35}}}


class Jmap:
    """A tiny blocking JMAP client (urllib) for setting up and checking."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        session = self._open(urllib.request.Request(url + "/.well-known/jmap", headers={"Authorization": self.auth}))
        self.account = next(iter(session["accounts"]))

    def _open(self, request):
        return json.loads(urllib.request.urlopen(request, timeout=120).read())

    def call(self, calls) -> list:
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        request = urllib.request.Request(self.url + "/jmap/api", data=body, headers={
            "Authorization": self.auth, "Content-Type": "application/json"})
        responses = self._open(request)["methodResponses"]
        for name, arguments, _ in responses:
            if name == "error":
                raise RuntimeError(f"{calls[0][0]}: {arguments}")
        return responses

    def upload(self, data: bytes) -> str:
        request = urllib.request.Request(f"{self.url}/jmap/upload/{self.account}/", data=data, headers={
            "Authorization": self.auth, "Content-Type": "message/rfc822"})
        return self._open(request)["blobId"]


def requests_for(client: Jmap, inbox: str, ids: list, blobs: list) -> dict:
    """The request bodies of each kind (lists rotated over by wrk)."""
    account = client.account
    query = {"accountId": account, "filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt", "isAscending": False}],
             "limit": 50, "calculateTotal": True}

    def body(*calls):
        return json.dumps({"using": USING, "methodCalls": [list(c) for c in calls]})

    return {
        "email_get": [body(("Email/get", {"accountId": account, "ids": ids[i:i + 10], "properties": LIST_PROPERTIES}, "0"))
                      for i in range(0, len(ids) - 9, 10)],
        "query": [body(("Email/query", query, "0"))],
        "query_text": [body(("Email/query", dict(query, filter={"inMailbox": inbox, "text": term}), "0"))
                       for term in TEXT_TERMS],
        "sync": [body(("Mailbox/get", {"accountId": account, "ids": None}, "0"),
                      ("Email/query", query, "1"),
                      ("Email/get", {"accountId": account, "#ids": {"resultOf": "1", "name": "Email/query", "path": "/ids"},
                                     "properties": LIST_PROPERTIES}, "2"))],
        "import": [body(("Email/import", {"accountId": account, "emails": {
            "k": {"blobId": blob, "mailboxIds": {inbox: True}, "keywords": {"$seen": True}}}}, "0"))
            for blob in blobs],
    }


def check(client: Jmap, kind: str, body: str) -> str:
    """Run one request of C{kind} and check its answer has what it should; returns a summary."""
    responses = client.call(json.loads(body)["methodCalls"])
    last = responses[-1][1]
    if kind == "email_get":
        assert len(last["list"]) == 10 and not last["notFound"], last
        assert set(last["list"][0]) >= set(LIST_PROPERTIES), last["list"][0]
        return f"{len(last['list'])} emails"
    if kind in ("query", "query_text"):
        assert len(last["ids"]) <= 50, len(last["ids"])
        return f"{len(last['ids'])} ids of {last.get('total')}"
    if kind == "sync":
        assert len(last["list"]) == 50, len(last["list"])
        return f"{len(responses[0][1]['list'])} mailboxes, {len(last['list'])} emails"
    assert last.get("created"), last
    return "created"


_WRK_SCRIPT = """
local bodies = {%s}
local n = 0
errors = 0  -- global: done() reads it with thread:get
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
request = function()
  n = n %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
response = function(status, headers, body)
  if status == 200 and string.find(body, '["error",', 1, true) then errors = errors + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local e = 0
  for _, t in ipairs(threads) do e = e + t:get("errors") end
  io.write(string.format("METHOD_ERRORS %%d\\n", e))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_wrk(url: str, auth: str, kind: str, bodies: list, clients: int, seconds: float, directory: str) -> dict:
    script = os.path.join(directory, f"{kind}.lua")
    with open(script, "w") as f:
        f.write(_WRK_SCRIPT % (",".join(_lua_string(b) for b in bodies), auth))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--timeout", "30s", "--latency", "-s", script,
         url + "/jmap/api"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    out = out.stdout
    fields = {"errors": 0, "method_errors": 0}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in ("50%", "99%"):
            fields[words[0]] = lmtp_ms(words[1])
        elif line.startswith("Requests/sec:"):
            fields["rate"] = float(words[1])
        elif "requests in" in line:
            fields["requests"] = int(words[0])
        elif line.strip().startswith("Non-2xx"):
            fields["errors"] = int(words[-1])
        elif line.startswith("METHOD_ERRORS"):
            fields["method_errors"] = int(words[1])
    return {"kind": kind, "clients": clients, "requests": fields.get("requests", 0), "non_200": fields["errors"],
            "method_errors": fields["method_errors"], "requests_per_s": fields.get("rate", 0.0),
            "p50_ms": fields.get("50%", float("nan")), "p99_ms": fields.get("99%", float("nan")),
            "distinct_bodies": len(bodies)}


def lmtp_ms(text: str) -> float:
    """wrk's latency (C{812.00us}, C{3.21ms}, C{1.02s}) in ms."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def all_ids(client: Jmap, inbox: str) -> list:
    ids, position = [], 0
    while True:
        [[_, result, _]] = client.call([["Email/query", {
            "accountId": client.account, "filter": {"inMailbox": inbox},
            "sort": [{"property": "receivedAt", "isAscending": False}], "position": position, "limit": 500}, "0"]])
        ids += result["ids"]
        position += len(result["ids"])
        if not result["ids"]:
            return ids


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the store")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each kind and level")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--imports", type=int, default=1500, help="distinct blobs uploaded for Email/import")
    parser.add_argument("--dir", default=".", help="parent of the scratch data directory (on the disk under test)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "mail.json"))
    arguments = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    n = arguments.messages
    steps = sorted({min(n, 2000), min(n, 5000), n})
    messages = lmtp.generate_messages(n, 10, f"bench@{lmtp.DOMAIN}", "store")
    imports = lmtp.generate_messages(arguments.imports, 11, f"bench@{lmtp.DOMAIN}", "import")

    directory = os.path.abspath(tempfile.mkdtemp(prefix="mail.", dir=arguments.dir))
    server = lmtp.Server(directory, OPTIONS)
    growth, results, checks = [], [], {}
    try:
        server.create_account("bench", f"bench@{lmtp.DOMAIN}")
        client = Jmap(server.url, "bench", lmtp.PASSWORD)
        growth.append({"messages": 0, "rss_kib": lmtp.proc_status(server.pid, "VmRSS")})
        loaded, load_runs = 0, []
        for step in steps:
            run = lmtp.deliver(server.lmtp_port, f"bench@{lmtp.DOMAIN}", messages[loaded:step], 8, server.pid)
            if run["errors"]:
                raise SystemExit(f"loading: {run['errors']} errors, first {run['first_error']}")
            load_runs.append(run)
            loaded = step
            # Touch the store the way a client does before reading memory.
            [[_, mailboxes, _]] = client.call([["Mailbox/get", {"accountId": client.account, "ids": None}, "0"]])
            inbox = next(m for m in mailboxes["list"] if m.get("role") == "inbox")
            client.call([["Email/query", {"accountId": client.account, "filter": {"inMailbox": inbox["id"]},
                                          "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "0"]])
            growth.append({"messages": loaded, "inbox_total": inbox["totalEmails"],
                           "rss_kib": lmtp.proc_status(server.pid, "VmRSS")})
        load_rate = loaded / sum(r["seconds"] for r in load_runs)
        ids = all_ids(client, inbox["id"])
        assert len(ids) == n, (len(ids), n)
        uploaded = time.perf_counter()
        with ThreadPool(8) as pool:  # uploads are writes: concurrent ones share a log fsync
            blobs = pool.map(client.upload, imports)
        uploaded = len(blobs) / (time.perf_counter() - uploaded)
        bodies = requests_for(client, inbox["id"], ids, blobs)
        for kind in ("email_get", "query", "query_text", "sync", "import"):
            checks[kind] = check(client, kind, bodies[kind][0])
            if kind == "import":
                bodies[kind] = bodies[kind][1:]
            for clients in [int(c) for c in arguments.clients.split(",")]:
                results.append(run_wrk(server.url, client.auth, kind, bodies[kind], clients, arguments.seconds, directory))
                results[-1]["rss_kib_after"] = lmtp.proc_status(server.pid, "VmRSS")
                if kind == "import":  # the next level imports other blobs
                    bodies[kind] = bodies[kind][results[-1]["requests"]:] or bodies[kind]
        peak_kib = lmtp.proc_status(server.pid, "VmHWM")
        revision = server.revision
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    sizes = sorted(len(m) for m in messages)
    print(f"store: {n} messages ({sum(sizes) / 1e6:.0f} MB, median {sizes[len(sizes) // 2]} bytes) loaded over LMTP "
          f"(8 connections) at {load_rate:.1f}/s; {len(blobs)} import blobs uploaded at {uploaded:.1f}/s")
    print("server VmRSS as the store grows: " + ", ".join(
        f"{g['messages']}: {g['rss_kib'] / 1024:.1f} MiB" for g in growth))
    print("checks: " + "; ".join(f"{k}: {v}" for k, v in checks.items()))
    print(f"{'kind':>10} {'clients':>7} {'requests':>8} {'non200':>6} {'m.err':>5} {'req/s':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'cyrus':>6}")
    for r in results:
        ref = REFERENCE["cyrus-3.6"].get("query" if r["kind"] == "query_text" else r["kind"], {}).get(r["clients"], "-")
        print(f"{r['kind']:>10} {r['clients']:>7} {r['requests']:>8} {r['non_200']:>6} {r['method_errors']:>5} "
              f"{r['requests_per_s']:>8.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {ref:>6}")
    print(f"server peak RSS (VmHWM): {peak_kib / 1024:.1f} MiB; options {' '.join(OPTIONS)}")
    os.makedirs(os.path.dirname(arguments.output), exist_ok=True)
    with open(arguments.output, "w") as f:
        json.dump({
            "what": "JMAP requests by wrk (-t1, N connections) on one account holding the store",
            "revision": revision, "python": platform.python_version(), "cpus": os.cpu_count(),
            "store_messages": n, "store_bytes": sum(sizes), "load_deliveries_per_s": load_rate,
            "upload_per_s": uploaded, "rss_growth": growth, "checks": checks, "levels": results,
            "server_peak_rss_kib": peak_kib, "server_options": OPTIONS, "reference_requests_per_s": REFERENCE,
        }, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
