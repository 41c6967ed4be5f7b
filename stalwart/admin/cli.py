# -*- test-case-name: tests.admin.test_cli -*-
"""
C{stalwart-jmap-admin}: manage accounts of a running stalwart-jmap server
through its admin HTTP API.

    stalwart-jmap-admin account create alice --email alice@example.com
    stalwart-jmap-admin account list [--json]
    stalwart-jmap-admin account delete alice
    stalwart-jmap-admin account passwd alice
    stalwart-jmap-admin account add-email alice al@example.com
    stalwart-jmap-admin account remove-email alice al@example.com
    stalwart-jmap-admin token create alice
    stalwart-jmap-admin cluster status [--json]

The server and secret come from C{--url} and C{--secret}, or the environment
variables C{STALWART_URL} (default C{http://127.0.0.1:8080}) and
C{STALWART_ADMIN_SECRET}. Any error is one line on stderr and a non-zero
exit status.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Callable, Mapping, NoReturn, Optional, TextIO

import attrs

from stalwart.admin.client import (
    AdminClient,
    AdminError,
    Transport,
    ssl_context,
    urllib_transport,
)

__all__ = ["main", "run"]

PROG = "stalwart-jmap-admin"
DEFAULT_URL = "http://127.0.0.1:8080"
EXIT_ERROR = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    """
    The command line is wrong; argparse's message.
    """


class _Parser(argparse.ArgumentParser):
    """
    An argparse parser that raises instead of printing usage and exiting, so
    errors are one line, and that prints help on the given stream.
    """

    def __init__(self, *args: object, out: TextIO, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._out = out

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)

    def print_help(self, file: Optional[TextIO] = None) -> None:
        self._out.write(self.format_help())


@attrs.frozen
class Console:
    """
    The outside world of one run: environment, streams and password prompt.

    @ivar read_password: Prompts on the terminal without echo (L{getpass}).
    """

    environ: Mapping[str, str]
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    read_password: Callable[[str], str] = getpass.getpass


def _quota(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes >= 0")
    return value


def _parser(out: TextIO) -> _Parser:
    parser = _Parser(
        prog=PROG, out=out,
        description="Manage accounts of a running stalwart-jmap server and show its cluster.",
        epilog="Environment: STALWART_URL, STALWART_ADMIN_SECRET.",
    )
    parser.add_argument("--url", help=f"server URL (env STALWART_URL, default {DEFAULT_URL})")
    parser.add_argument(
        "--secret", help="the server's admin-secret (env STALWART_ADMIN_SECRET, "
        "which, unlike this option, other users cannot see in the process list)"
    )
    parser.add_argument("--cacert", metavar="FILE", help="PEM CA file to trust for HTTPS")
    parser.add_argument("--insecure", action="store_true",
                        help="do not check the server's certificate (test servers only)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="seconds to wait for the server (default 30)")
    groups = parser.add_subparsers(dest="group", metavar="{account,token,cluster}", required=True)

    account = groups.add_parser("account", help="create, list, change and delete accounts",
                                out=out)
    commands = account.add_subparsers(dest="command", metavar="COMMAND", required=True)
    create = commands.add_parser("create", help="create an account", out=out)
    create.add_argument("name")
    create.add_argument("--password", help="the password (default: ask, or read "
                        "the first line of stdin when it is not a terminal)")
    create.add_argument("--email", action="append", default=[], metavar="ADDR",
                        help="an email address of the account (repeatable)")
    create.add_argument("--quota", type=_quota, metavar="BYTES", help="storage quota")
    listing = commands.add_parser("list", help="list accounts", out=out)
    listing.add_argument("--json", action="store_true", help="print JSON")
    delete = commands.add_parser("delete", help="delete an account", out=out)
    delete.add_argument("name")
    passwd = commands.add_parser("passwd", help="change an account's password", out=out)
    passwd.add_argument("name")
    passwd.add_argument("--password", help="the new password (default: ask)")
    for verb, what in (("add-email", "add an address to"), ("remove-email", "remove an address from")):
        email = commands.add_parser(verb, help=f"{what} an account", out=out)
        email.add_argument("name")
        email.add_argument("address")

    token = groups.add_parser("token", help="bearer tokens for JMAP access", out=out)
    token_commands = token.add_subparsers(dest="command", metavar="COMMAND", required=True)
    token_create = token_commands.add_parser(
        "create", help="print a new bearer token for an account", out=out
    )
    token_create.add_argument("name")

    cluster = groups.add_parser("cluster", help="the Raft cluster as the server sees it", out=out)
    cluster_commands = cluster.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = cluster_commands.add_parser(
        "status", help="each member's role, term, log/commit/applied indexes and lag", out=out
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    remove = cluster_commands.add_parser(
        "remove", help="take a node out of the cluster for good (ask the leader)", out=out
    )
    remove.add_argument("node", help="the node id, as cluster status shows it")
    cluster_commands.add_parser(
        "leave", help="make the node at --url leave the cluster for good (then stop it)", out=out
    )
    return parser


def _password(arguments: argparse.Namespace, console: Console) -> str:
    """
    The password from C{--password}, a terminal prompt (asked twice) or the
    first line of stdin.
    """
    if arguments.password is not None:
        password = arguments.password
    elif console.stdin.isatty():
        password = console.read_password("Password: ")
        if console.read_password("Repeat password: ") != password:
            raise AdminError("the passwords do not match")
    else:
        password = console.stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError("the password is empty")
    return password


def _table(accounts: list[dict[str, object]]) -> str:
    rows = [("NAME", "EMAILS", "QUOTA")] + [
        (
            str(account.get("name", "")),
            ", ".join(str(e) for e in account.get("emails") or []),  # type: ignore[attr-defined]
            "-" if account.get("quota") is None else str(account["quota"]),
        )
        for account in accounts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() + "\n"
        for row in rows
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _roster_cells(row: dict) -> tuple:
    """A cluster node's view of another node: RPC, JMAP, GOSSIP and PHI cells."""
    return tuple(_cell(row.get(key)) for key in ("rpcAddress", "jmapUrl", "gossip", "phi"))


def _cluster_table(status: dict[str, object]) -> str:
    """
    One row per member.  Term and commit/applied indexes are known for the
    answering node only; a peer's LAST is its match index, known (like its
    lag) only when the answering node leads.
    """
    me, leader = status.get("node"), status.get("leader")
    clustered = "known" in status  # a cluster node: its roster's addresses too
    rows = [("MEMBER", "ROLE", "TERM", "LAST", "COMMIT", "APPLIED", "LAG")
            + (("RPC", "JMAP", "GOSSIP", "PHI") if clustered else ())]
    for member in status.get("members") or []:  # type: ignore[attr-defined]
        role = str(member.get("role", ""))
        if member.get("id") == me:
            cells = (status.get("term"), status.get("lastIndex"), status.get("commitIndex"),
                     status.get("appliedIndex"))
            name = f"{member.get('id')} (this node)"
        else:
            cells = (None, member.get("match"), None, None)
            name = str(member.get("id"))
            if member.get("id") == leader:
                role += " (leader)"
        extra = _roster_cells(member) if clustered else ()
        rows.append((name, role, *(_cell(c) for c in cells), _cell(member.get("lag")), *extra))
    for other in status.get("known") or []:  # type: ignore[attr-defined]
        rows.append((str(other.get("id")), "not a member", "-", "-", "-", "-", "-", *_roster_cells(other)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)).rstrip() + "\n"
        for row in rows
    )


def _emails(account: dict[str, object]) -> str:
    return ", ".join(str(e) for e in account.get("emails") or []) or "none"  # type: ignore[attr-defined]


def _execute(arguments: argparse.Namespace, client: AdminClient, console: Console) -> None:
    """
    Run one parsed command and print its result on stdout.
    """
    out = console.stdout
    command = (arguments.group, arguments.command)
    if command == ("account", "create"):
        password = _password(arguments, console)
        account = client.create_account(arguments.name, password, arguments.email, arguments.quota)
        out.write(f"created account {account.get('name')} (id {account.get('id')})\n")
    elif command == ("account", "list"):
        accounts = client.list_accounts()
        out.write(json.dumps(accounts, indent=2) + "\n" if arguments.json else _table(accounts))
    elif command == ("account", "delete"):
        client.delete_account(arguments.name)
        out.write(f"deleted account {arguments.name}\n")
    elif command == ("account", "passwd"):
        client.set_password(arguments.name, _password(arguments, console))
        out.write(f"changed the password of {arguments.name}\n")
    elif command == ("account", "add-email"):
        account = client.add_email(arguments.name, arguments.address)
        out.write(f"{arguments.name}: {_emails(account)}\n")
    elif command == ("account", "remove-email"):
        account = client.remove_email(arguments.name, arguments.address)
        out.write(f"{arguments.name}: {_emails(account)}\n")
    elif command == ("cluster", "status"):
        status = client.cluster_status()
        out.write(json.dumps(status, indent=2) + "\n" if arguments.json else _cluster_table(status))
    elif command == ("cluster", "leave"):
        answer = client.leave_cluster()
        out.write(f"{answer.get('node')} is leaving the cluster: stop it once cluster status no longer lists it\n")
    elif command == ("cluster", "remove"):
        client.remove_member(arguments.node)
        out.write(f"removed {arguments.node} from the cluster configuration\n")
    else:
        assert command == ("token", "create"), command
        out.write(client.create_token(arguments.name) + "\n")


def run(
    argv: list[str], console: Console, transport: Optional[Transport] = None
) -> int:
    """
    Run the command line C{argv} (without the program name).

    @param console: Environment, streams and password prompt.
    @param transport: Sends HTTP requests; by default L{urllib_transport}
        with the TLS options of the command line.
    @return: The exit status: 0 on success, 1 for a failed request, 2 for a
        wrong command line.
    """
    try:
        arguments = _parser(console.stdout).parse_args(argv)
    except _UsageError as e:
        console.stderr.write(f"{PROG}: error: {e} (see --help)\n")
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    url = arguments.url or console.environ.get("STALWART_URL") or DEFAULT_URL
    secret = arguments.secret or console.environ.get("STALWART_ADMIN_SECRET")
    try:
        if not secret:
            raise AdminError("no admin secret: give --secret or set STALWART_ADMIN_SECRET")
        if transport is None:
            context = ssl_context(arguments.cacert, arguments.insecure)
            transport = urllib_transport(context, arguments.timeout)
        _execute(arguments, AdminClient(url, secret, transport), console)
    except AdminError as e:
        console.stderr.write(f"{PROG}: error: {e}\n")
        return EXIT_ERROR
    except (EOFError, KeyboardInterrupt):
        console.stderr.write(f"{PROG}: error: interrupted\n")
        return EXIT_ERROR
    return 0


def main() -> NoReturn:
    """
    The C{stalwart-jmap-admin} console script.
    """
    console = Console(os.environ, sys.stdin, sys.stdout, sys.stderr)
    sys.exit(run(sys.argv[1:], console))


if __name__ == "__main__":
    main()
