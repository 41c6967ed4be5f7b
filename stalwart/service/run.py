# -*- test-case-name: tests.service.test_run -*-
"""
The C{stalwart-jmap} command: the server in the foreground, as the
clustering quick start runs it (C{stalwart-jmap --jmap-port=8081 ... &}).

It is C{twistd --nodaemon --pidfile= stalwart-jmap ARGS}: no pid file, so
that several nodes can run from one directory, and logs on standard
output.  Use twistd itself for daemonizing, pid files and log files.
"""

from __future__ import annotations

import sys
from typing import List, Optional

__all__ = ["main", "twistd_arguments"]


def twistd_arguments(arguments: List[str]) -> List[str]:
    """The twistd command line that runs the server with C{arguments}."""
    return ["--nodaemon", "--pidfile=", "stalwart-jmap", *arguments]


def main(argv: Optional[List[str]] = None) -> None:
    from twisted.scripts.twistd import run

    sys.argv = ["stalwart-jmap", *twistd_arguments(list(sys.argv[1:] if argv is None else argv))]
    run()
