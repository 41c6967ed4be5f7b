# -*- test-case-name: tests.integration.test_startup_errors -*-
"""
Mistakes an operator makes when starting C{twistd -n stalwart-jmap}: each
stops the process quickly with a non-zero status and exactly one line on
stderr naming the key, port or file at fault, never a traceback (README,
"Configuration"; STYLE.md section 6).
"""

from __future__ import annotations

import os
import socket
import sys

from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ProcessTerminated
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.integration.server import _TWISTD, ServerTestMixin, check_one_line, free_port, http_client

__all__ = ["FailedStartMixin"]

EXIT_SECONDS_MAX = 8.0
"""A refused start must end within this time (Python and Twisted start in about one second)."""



class FailedStartMixin(ServerTestMixin):
    @inlineCallbacks
    def assertRefusedStart(self, arguments, *needles, data_dir=None, port=None):
        """
        Start a server that must refuse to run; check its exit and stderr.

        @return: a Deferred firing with the one stderr line.
        """
        server = yield self.start_server(data_dir=data_dir, arguments=arguments, wait=False, port=port)
        reason = yield server.wait_refusal(EXIT_SECONDS_MAX)
        self.assertIsInstance(reason, ProcessTerminated, server.describe())
        self.assertTrue(reason.exitCode, f"exit status {reason.exitCode}, signal {reason.signal}\n{server.describe()}")
        self.assertNotIn("Traceback", server.log_text())
        self.assertEqual(server.stdout, "")
        line = check_one_line(self, server.stderr, *needles)
        return line


class StartupErrorTests(FailedStartMixin, TestCase):
    timeout = 30

    def test_bad_port_value(self):
        """C{--jmap-port=abc}: one line naming jmap-port and the bad text."""
        return self.assertRefusedStart(["--jmap-port=abc"], "jmap-port", "'abc'")

    def test_unknown_key_in_config_file(self):
        """An unknown key in the C{--config} file: one line naming the file, line and key."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("# settings\nlog-level: info\njmap-prot: 8081\n")
        return self.assertRefusedStart([f"--config={path}"], path, "line 3", "jmap-prot")

    def test_unreadable_certificate(self):
        """A certificate path that cannot be read: one line naming jmap-cert-path and the file."""
        missing = os.path.abspath(self.mktemp()) + ".pem"
        return self.assertRefusedStart(
            [f"--jmap-cert-path={missing}", f"--jmap-key-path={missing}.key"], "jmap-cert-path", missing)

    def test_port_in_use(self):
        """A JMAP port another socket is listening on: one line naming jmap-port and the port."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", free_port()))
        holder.listen(1)
        port = holder.getsockname()[1]
        return self.assertRefusedStart([], "jmap-port", str(port), port=port)

    @inlineCallbacks
    def test_data_dir_in_use(self):
        """A second process on a running node's data-dir: one line naming the directory, and the first keeps running."""
        first = yield self.start_server()
        yield self.assertRefusedStart([], "in use by another stalwart-jmap process", data_dir=first.data_dir)
        self.assertIsNone(first.reason, first.describe())
        status = yield first.wait_ready(http_client())
        self.assertEqual(status, 401)

    @inlineCallbacks
    def test_daemonized_start_refused(self):
        """
        Without -n, twistd's parent waits for the daemon's start report: a
        refused start must end it with status 1 and the reason, not hang.
        """
        from twisted.internet import reactor

        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        d = getProcessOutputAndValue(sys.executable, [
            "-c", _TWISTD, f"--pidfile={directory}/pid", f"--logfile={directory}/log", "stalwart-jmap",
            f"--data-dir={directory}/data", f"--jmap-port={port}", "--lmtp-port=0",
        ], env=env, path=directory)
        d.addTimeout(EXIT_SECONDS_MAX * 2, reactor)
        out, err, code = yield d
        self.assertEqual(code, 1, err)
        self.assertIn(f"jmap-port: cannot listen on 127.0.0.1:{port}".encode(), err)
        with open(f"{directory}/log") as log:
            self.assertIn(f"stalwart-jmap: error: jmap-port: cannot listen on 127.0.0.1:{port}", log.read())
