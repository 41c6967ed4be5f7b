# -*- test-case-name: tests.integration -*-
"""
Real C{twistd -n stalwart-jmap} child processes for the integration tests,
and the real HTTP(S) clients that talk to them.

Everything stays on 127.0.0.1.  Nothing here sleeps: waiting is done with
reactor timers (L{deferLater}) and every wait is bounded, so a server that
never becomes ready fails the test instead of hanging it.

Each L{ServerProcess} starts the server with C{PYTHONPATH} set to the
checkout, so the tests work without installing the project, an empty
C{--pidfile} (parallel runs do not clash) and a C{--logfile} in the test's
own directory.  L{ServerProcess.reap} (registered as a cleanup by
L{ServerTestMixin.start_server}) kills and waits for the process whatever
the test did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import List, Optional, Sequence

import treq
from twisted.internet import error, reactor
from twisted.internet.defer import Deferred, inlineCallbacks, returnValue
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

__all__ = [
    "ADMIN_SECRET",
    "REPO_ROOT",
    "admin_headers",
    "check_one_line",
    "ServerProcess",
    "ServerTestMixin",
    "free_port",
    "http_client",
    "run_admin_cli",
    "child_environment",
    "free_ports",
    "poll_until",
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_SECRET = "integration-test-admin-secret"

READY_SECONDS_MAX = 20.0
"""How long a server may take to answer its first request."""

POLL_SECONDS = 0.05
"""Interval between readiness polls."""

_TWISTD = "from twisted.scripts.twistd import run; run()"
_ADMIN = "from stalwart.admin.cli import main; main()"


def free_port() -> int:
    """
    A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
    the port, close).  Another process could take it before the server binds
    it; on a test machine that is rare enough.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> List[int]:
    """
    C{count} distinct TCP ports on 127.0.0.1 that were free a moment ago
    (see L{free_port}); the sockets are held open together while choosing,
    so no port is given twice.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@inlineCallbacks
def poll_until(what: str, attempt, seconds: float, interval: float = POLL_SECONDS):
    """
    Call C{attempt()} (a value or a Deferred) every C{interval} seconds,
    with reactor timers, until it gives something other than C{None} or
    C{False}; fire with that.  An exception from C{attempt} counts as "not
    yet" and is shown if time runs out.

    @param what: what is awaited, for the failure message.
    @raise AssertionError: not within C{seconds}.
    """
    deadline = reactor.seconds() + seconds
    last = None
    while True:
        try:
            result = yield attempt()
        except Exception as e:  # noqa: BLE001 - reported below
            result, last = None, f"{type(e).__name__}: {e}"
        else:
            if result is not None and result is not False:
                returnValue(result)
        if reactor.seconds() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s (last error: {last})")
        yield deferLater(reactor, interval, lambda: None)


def child_environment(**extra: str) -> dict:
    """
    The environment of a child process: ours, with the checkout first on
    C{PYTHONPATH} (for C{stalwart} and C{twisted/plugins/stalwart_jmap.py}).
    """
    env = dict(os.environ)
    paths = [REPO_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def http_client(trust_pem: Optional[bytes] = None):
    """
    A L{treq.client.HTTPClient} with its own non-persistent pool (no
    connection outlives its response, so trial's reactor stays clean).

    @param trust_pem: for HTTPS, the PEM certificate to trust, and only it.
    """
    pool = HTTPConnectionPool(reactor, persistent=False)
    if trust_pem is None:
        agent = Agent(reactor, pool=pool)
    else:
        from twisted.internet.ssl import Certificate

        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(trust_pem))
        agent = Agent(reactor, contextFactory=policy, pool=pool)
    return treq.client.HTTPClient(agent)


def _admin_command() -> List[str]:
    script = os.path.join(os.path.dirname(sys.executable), "stalwart-jmap-admin")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-c", _ADMIN]


def run_admin_cli(url: str, arguments: Sequence[str]) -> Deferred:
    """
    Run C{stalwart-jmap-admin} (the installed script, or its module when the
    project is not installed) against C{url}.

    @return: a Deferred firing with (stdout, stderr, exit code), texts.
    """
    command = _admin_command()
    env = child_environment(STALWART_URL=url, STALWART_ADMIN_SECRET=ADMIN_SECRET)
    d = getProcessOutputAndValue(command[0], command[1:] + list(arguments), env=env, path=REPO_ROOT)
    return d.addCallback(lambda r: (r[0].decode(), r[1].decode(), r[2]))


class _Recorder(ProcessProtocol):
    def __init__(self) -> None:
        self.output = {1: bytearray(), 2: bytearray()}
        self.ended = Deferred()
        self.reason = None

    def childDataReceived(self, fd, data):
        self.output.setdefault(fd, bytearray()).extend(data)

    def processEnded(self, reason):
        self.reason = reason.value
        self.ended.callback(reason.value)


class ServerProcess:
    """
    One C{twistd -n stalwart-jmap} child process.

    @ivar port: the JMAP port; C{url} the base URL.
    @ivar lmtp_port: the LMTP port (pass C{lmtp_port=free_port()}); 0, the
        default, starts no LMTP listener.
    """

    def __init__(self, directory: str, data_dir: str, arguments: Sequence[str] = (),
                 port: Optional[int] = None, tls: bool = False, name: str = "server",
                 lmtp_port: int = 0) -> None:
        self.directory = directory
        self.data_dir = data_dir
        self.port = free_port() if port is None else port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        #: The LMTP port; 0 (the default) starts no LMTP listener.
        self.lmtp_port = lmtp_port
        self.log_path = os.path.join(directory, f"{name}.log")
        self.arguments = list(arguments)
        self._protocol: Optional[_Recorder] = None
        self.pid: Optional[int] = None

    def start(self) -> None:
        """Spawn the process (it is not ready yet: see L{wait_ready})."""
        argv = [
            sys.executable, "-c", _TWISTD, "-n", "--pidfile=", f"--logfile={self.log_path}",
            "stalwart-jmap", f"--data-dir={self.data_dir}", f"--jmap-port={self.port}", f"--lmtp-port={self.lmtp_port}",
            f"--admin-secret={ADMIN_SECRET}",
        ] + self.arguments
        self._protocol = _Recorder()
        transport = reactor.spawnProcess(
            self._protocol, sys.executable, argv, env=child_environment(), path=self.directory
        )
        self.pid = transport.pid

    @property
    def running(self) -> bool:
        return self._protocol is not None and self._protocol.reason is None

    @property
    def stderr(self) -> str:
        return bytes(self._protocol.output[2]).decode("utf-8", "replace") if self._protocol else ""

    @property
    def stdout(self) -> str:
        return bytes(self._protocol.output[1]).decode("utf-8", "replace") if self._protocol else ""

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """What the process said, for failure messages."""
        return f"stderr:\n{self.stderr}\nlog {self.log_path}:\n{self.log_text()[-4000:]}"

    @inlineCallbacks
    def wait_ready(self, client, seconds: float = READY_SECONDS_MAX):
        """
        Poll the session endpoint until it answers (401 without credentials
        is an answer), with reactor timers.

        @raise AssertionError: the process ended or did not answer in time.
        """
        deadline = reactor.seconds() + seconds
        while True:
            if not self.running:
                raise AssertionError(f"server ended before it was ready: {self.reason}\n{self.describe()}")
            try:
                response = yield client.get(self.url + "/.well-known/jmap")
                yield response.content()
                returnValue(response.code)
            except (error.ConnectionRefusedError, error.ConnectError, error.TimeoutError):
                pass
            if reactor.seconds() > deadline:
                raise AssertionError(f"server not ready after {seconds} s\n{self.describe()}")
            yield deferLater(reactor, POLL_SECONDS, lambda: None)

    @property
    def reason(self):
        """L{error.ProcessDone} or L{error.ProcessTerminated} once ended."""
        return self._protocol.reason if self._protocol else None

    def signal(self, number: int) -> None:
        if self.running:
            os.kill(self.pid, number)

    def wait_exit(self, seconds: float) -> Deferred:
        """
        Fire with the end reason once the process ends; if it has not ended
        after C{seconds}, kill it and fail.
        """
        if not self.running:
            return _succeeded(self.reason)
        result = Deferred()
        ended = self._protocol.ended

        def on_end(reason):
            if timer.active():
                timer.cancel()
                result.callback(reason)
            return reason

        def too_late():
            self.signal(signal.SIGKILL)
            ended.addCallback(lambda _: result.errback(AssertionError(
                f"process still running {seconds} s later (killed)\n{self.describe()}")))

        timer = reactor.callLater(seconds, too_late)
        ended.addCallback(on_end)
        return result

    @inlineCallbacks
    def wait_refusal(self, seconds: float, marker: str = "stalwart-jmap: error", grace: float = 2.0):
        """
        Like L{wait_exit} for a process expected to refuse to start, but give
        up C{grace} seconds after C{marker} shows in the log: a process that
        has reported its error and still runs is hung, no need to wait longer.
        """
        deadline = reactor.seconds() + seconds
        seen = None
        while self.running:
            now = reactor.seconds()
            if seen is None and marker in self.log_text():
                seen = now
            if now > deadline or (seen is not None and now - seen > grace):
                ended = self._protocol.ended
                self.signal(signal.SIGKILL)
                yield ended
                raise AssertionError(
                    f"process still running {now - (seen or now - seconds):.1f} s after "
                    f"{'reporting its error' if seen else 'starting'} (killed)\n{self.describe()}")
            yield deferLater(reactor, POLL_SECONDS * 2, lambda: None)
        returnValue(self.reason)

    def restart(self) -> None:
        """Spawn the process again, same arguments and ports, once it has ended."""
        if self.running:
            raise RuntimeError("the process is still running")
        self.start()

    def stop(self, seconds: float = 15.0) -> Deferred:
        """SIGTERM, then wait for the end (see L{wait_exit})."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(seconds)

    def reap(self) -> Deferred:
        """Cleanup: SIGKILL if still running and wait until it has ended."""
        if not self.running:
            return _succeeded(None)
        ended = self._protocol.ended
        self.signal(signal.SIGKILL)
        return ended


def _succeeded(value) -> Deferred:
    d = Deferred()
    d.callback(value)
    return d


class ServerTestMixin:
    """
    For C{twisted.trial.unittest.TestCase}: start servers that are always
    reaped, and make JSON requests.
    """

    def start_server(self, data_dir: Optional[str] = None, arguments: Sequence[str] = (),
                     client=None, wait: bool = True, **kwargs) -> Deferred:
        """
        Start a server (reaped at cleanup) and, if C{wait}, wait until it answers.

        @return: a Deferred firing with the L{ServerProcess}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        if data_dir is None:
            data_dir = os.path.join(directory, "data")
        kwargs.setdefault("name", f"server{len(getattr(self, '_servers', ()))}")
        server = ServerProcess(directory, data_dir, arguments, **kwargs)
        self._servers = getattr(self, "_servers", []) + [server]
        server.start()
        self.addCleanup(server.reap)
        if not wait:
            return _succeeded(server)
        client = client or http_client()
        return server.wait_ready(client).addCallback(lambda _: server)

    @inlineCallbacks
    def json_request(self, client, method: str, url: str, body=None, expect: Optional[int] = None, **kwargs):
        """
        Send a request and decode the JSON answer.

        @return: (status code, decoded body or None, raw bytes).
        """
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            kwargs.setdefault("headers", {})["Content-Type"] = ["application/json"]
        response = yield client.request(method, url, data=body, **kwargs)
        raw = yield response.content()
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = None
        if expect is not None:
            self.assertEqual(response.code, expect, f"{method} {url}: {raw[:500]!r}")
        returnValue((response.code, decoded, raw))

    def assertCleanStop(self, server: ServerProcess, reason) -> None:
        """
        The process ended after SIGTERM without error: status 0, or killed by
        the SIGTERM itself.  twistd (since Twisted 19.7) re-raises the
        signal that stopped the reactor once it has shut down cleanly, so
        that its parent sees how it ended; systemd counts that as success.
        """
        clean = isinstance(reason, error.ProcessDone) or (
            isinstance(reason, error.ProcessTerminated)
            and reason.exitCode is None and reason.signal == signal.SIGTERM
        )
        self.assertTrue(clean, f"not a clean stop: {reason!r}\n{server.describe()}")
        self.assertCleanLog(server)
        self.assertIn("Server Shut Down.", server.log_text())

    def assertCleanLog(self, server: ServerProcess) -> None:
        """The server's log shows no unhandled error and no traceback."""
        text = server.log_text()
        for marker in ("Unhandled error", "Traceback"):
            self.assertNotIn(marker, text, f"{marker!r} in {server.log_path}:\n{text[-4000:]}")


def admin_headers() -> dict:
    return {"Authorization": [f"Bearer {ADMIN_SECRET}"]}


def check_one_line(testcase, text: str, *needles: str) -> str:
    """
    Assert C{text} is exactly one non-empty line containing every needle
    and no traceback; return the line.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    testcase.assertEqual(len(lines), 1, f"expected one line, got: {text!r}")
    testcase.assertNotIn("Traceback", text)
    for needle in needles:
        testcase.assertIn(needle, lines[0])
    return lines[0]
