"""
The pure cores import no reactor, socket, clock, global randomness or
file I/O (STYLE.md section 1): that is what lets tests drive them with
plain values, and the cluster replay them deterministically.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

import stalwart

ROOT = os.path.dirname(stalwart.__file__)

#: Modules that must stay pure.
CORES = [
    "cluster/raft/core.py",
    "cluster/roster.py",
    "cluster/raft/log.py",
    "cluster/raft/quorum.py",
    "cluster/raft/progress.py",
    "cluster/raft/messages.py",
    "cluster/raft/segments/format.py",
    "store/commands.py",
    "jmap/request.py",
    "jmap/pointer.py",
    "jmap/patch.py",
    "jmap/ids.py",
    "jmap/errors.py",
    "jmap/session.py",
    "jmap/objecttype.py",
    "jmap/arguments.py",
    "auth/passwords.py",
    "auth/ratelimit.py",
    "auth/header.py",
    "cluster/rpc/codec.py",
    "cluster/rpc/auth.py",
    "mail/compose.py",
    "mail/compose_fields.py",
    "mail/headers.py",
    "mail/parse.py",
    "mail/html.py",
    "mail/blobids.py",
    "mail/query.py",
    "cluster/phi/history.py",
    "cluster/phi/detector.py",
    "cluster/swim/config.py",
    "cluster/swim/messages.py",
    "cluster/swim/codec.py",
    "cluster/swim/seal.py",
    "cluster/swim/awareness.py",
    "cluster/swim/suspicion.py",
    "cluster/swim/broadcasts.py",
    "cluster/swim/probe.py",
    "cluster/swim/members.py",
]

FORBIDDEN = ("twisted.internet.reactor", "twisted.internet.task", "twisted.internet.threads",
             "socket", "time", "os", "threading", "select", "asyncio", "sqlite3")


def imported_names(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
            yield "open()"


class LayeringTests(SynchronousTestCase):
    def test_cores_are_pure(self) -> None:
        """No pure core imports a reactor, socket, clock, thread, database or opens a file."""
        for module in CORES:
            for name in imported_names(os.path.join(ROOT, module)):
                bad = name == "open()" or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
                self.assertFalse(bad, f"{module} uses {name}")

    def test_no_global_random(self) -> None:
        """Cores take a random.Random as a parameter: they never call the module-level functions."""
        for module in CORES:
            with open(os.path.join(ROOT, module)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "random":
                    self.assertEqual(node.attr, "Random", f"{module} calls random.{node.attr}")

    def test_checker_catches_violations(self) -> None:
        """The check itself notices a forbidden import (so it can fail)."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("import time\nfrom twisted.internet import reactor\n")
        names = set(imported_names(path))
        self.assertIn("time", names)
        self.assertIn("twisted.internet.reactor", names)
