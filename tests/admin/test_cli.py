# -*- test-case-name: tests.admin.test_cli -*-
"""
Tests for L{stalwart.admin.cli}: argument parsing, environment, output and
exit status, with a fake transport and in-memory streams.
"""

import io
import json
from typing import Callable, Optional

from twisted.trial.unittest import SynchronousTestCase

from stalwart.admin.cli import Console, run
from stalwart.admin.client import AdminError, Request, Response


class TTYInput(io.StringIO):
    """
    Standard input that claims to be a terminal.
    """

    def isatty(self) -> bool:
        return True


class CLITestCase(SynchronousTestCase):
    """
    Run the command with recorded requests and captured output.
    """

    def setUp(self) -> None:
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        self.prompts: list[str] = []
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def transport(self, request: Request) -> Response:
        """
        Record C{request} and answer the next queued response.
        """
        self.requests.append(request)
        return self.responses.pop(0)

    def answer(self, status: int, body: object = None) -> None:
        """
        Queue a JSON response.
        """
        data = b"" if body is None else json.dumps(body).encode()
        self.responses.append(Response(status, data, "application/json"))

    def run_cli(
        self,
        *argv: str,
        environ: Optional[dict[str, str]] = None,
        stdin: Optional[io.StringIO] = None,
        passwords: tuple[str, ...] = (),
        transport: Optional[Callable[[Request], Response]] = None,
    ) -> int:
        """
        Run the command line C{argv}; the environment holds a secret unless
        C{environ} is given.
        """
        answers = list(passwords)

        def read_password(prompt: str) -> str:
            self.prompts.append(prompt)
            return answers.pop(0)

        console = Console(
            {"STALWART_ADMIN_SECRET": "envsecret"} if environ is None else environ,
            stdin if stdin is not None else io.StringIO(""),
            self.stdout,
            self.stderr,
            read_password,
        )
        return run(list(argv), console, transport or self.transport)

    def body(self, index: int = 0) -> object:
        """
        The decoded JSON body of a recorded request.
        """
        return json.loads(self.requests[index].body)


class EnvironmentTests(CLITestCase):
    """
    Server and secret come from options or the environment.
    """

    def test_defaults(self) -> None:
        """
        Without C{--url} or C{STALWART_URL}, the server is
        C{http://127.0.0.1:8080}; the secret comes from C{STALWART_ADMIN_SECRET}.
        """
        self.answer(200, {"accounts": []})
        self.assertEqual(self.run_cli("account", "list"), 0)
        [request] = self.requests
        self.assertEqual(request.url, "http://127.0.0.1:8080/admin/accounts")
        self.assertEqual(dict(request.headers)["Authorization"], "Bearer envsecret")

    def test_environment_url(self) -> None:
        """
        C{STALWART_URL} names the server.
        """
        self.answer(200, {"accounts": []})
        environ = {"STALWART_URL": "https://mail.example.com/", "STALWART_ADMIN_SECRET": "e"}
        self.run_cli("account", "list", environ=environ)
        self.assertEqual(self.requests[0].url, "https://mail.example.com/admin/accounts")

    def test_options_win(self) -> None:
        """
        C{--url} and C{--secret} win over the environment.
        """
        self.answer(200, {"accounts": []})
        environ = {"STALWART_URL": "http://env:1", "STALWART_ADMIN_SECRET": "env"}
        self.run_cli("--url=http://opt:2", "--secret=opt", "account", "list", environ=environ)
        [request] = self.requests
        self.assertEqual(request.url, "http://opt:2/admin/accounts")
        self.assertEqual(dict(request.headers)["Authorization"], "Bearer opt")

    def test_no_secret(self) -> None:
        """
        Without a secret nothing is sent, and one line says how to give it.
        """
        self.assertEqual(self.run_cli("account", "list", environ={}), 1)
        self.assertEqual(self.requests, [])
        self.assertEqual(
            self.stderr.getvalue(),
            "stalwart-jmap-admin: error: no admin secret: give --secret or set "
            "STALWART_ADMIN_SECRET\n",
        )


class AccountTests(CLITestCase):
    """
    The C{account} commands.
    """

    def test_create(self) -> None:
        """
        C{account create} sends name, password, emails and quota.
        """
        self.answer(201, {"account": {"id": "a1", "name": "joe", "emails": [], "quota": 9}})
        status = self.run_cli(
            "account", "create", "joe", "--password=pw", "--email=a@x.org",
            "--email", "b@x.org", "--quota=9",
        )
        self.assertEqual(status, 0)
        self.assertEqual(self.requests[0].method, "POST")
        self.assertEqual(
            self.body(),
            {"name": "joe", "password": "pw", "emails": ["a@x.org", "b@x.org"], "quota": 9},
        )
        self.assertEqual(self.stdout.getvalue(), "created account joe (id a1)\n")

    def test_create_password_from_stdin(self) -> None:
        """
        Without C{--password} and with no terminal, the password is the first
        line of stdin; there is no quota unless given.
        """
        self.answer(201, {"account": {"id": "a1", "name": "joe"}})
        self.run_cli("account", "create", "joe", stdin=io.StringIO("s3cret pw\r\nnext\n"))
        self.assertEqual(self.body(), {"name": "joe", "password": "s3cret pw",
                                       "emails": [], "quota": None})
        self.assertEqual(self.prompts, [])

    def test_create_password_prompt(self) -> None:
        """
        On a terminal, the password is asked twice without echo.
        """
        self.answer(201, {"account": {"id": "a1", "name": "joe"}})
        self.run_cli("account", "create", "joe", stdin=TTYInput(), passwords=("pw", "pw"))
        self.assertEqual(self.prompts, ["Password: ", "Repeat password: "])
        self.assertEqual(self.body()["password"], "pw")

    def test_password_mismatch(self) -> None:
        """
        Two different answers at the prompt send nothing.
        """
        status = self.run_cli("account", "passwd", "joe", stdin=TTYInput(),
                              passwords=("pw", "pW"))
        self.assertEqual(status, 1)
        self.assertEqual(self.requests, [])
        self.assertEqual(self.stderr.getvalue(),
                         "stalwart-jmap-admin: error: the passwords do not match\n")

    def test_empty_password(self) -> None:
        """
        An empty password is refused before any request.
        """
        self.assertEqual(self.run_cli("account", "create", "joe"), 1)
        self.assertEqual(self.requests, [])
        self.assertIn("the password is empty", self.stderr.getvalue())

    def test_list_table(self) -> None:
        """
        C{account list} prints a table of name, emails and quota.
        """
        self.answer(200, {"accounts": [
            {"id": "a1", "name": "joe", "emails": ["j@x.org", "joe@x.org"], "quota": None},
            {"id": "a2", "name": "annabel", "emails": [], "quota": 1000},
        ]})
        self.assertEqual(self.run_cli("account", "list"), 0)
        self.assertEqual(
            self.stdout.getvalue(),
            "NAME     EMAILS              QUOTA\n"
            "joe      j@x.org, joe@x.org  -\n"
            "annabel                      1000\n",
        )

    def test_list_json(self) -> None:
        """
        C{account list --json} prints the accounts as JSON.
        """
        accounts = [{"id": "a1", "name": "joe", "emails": [], "quota": None}]
        self.answer(200, {"accounts": accounts})
        self.run_cli("account", "list", "--json")
        self.assertEqual(json.loads(self.stdout.getvalue()), accounts)

    def test_delete(self) -> None:
        """
        C{account delete} sends C{DELETE} on the encoded name.
        """
        self.answer(204)
        self.assertEqual(self.run_cli("account", "delete", "jo e"), 0)
        self.assertEqual((self.requests[0].method, self.requests[0].url),
                         ("DELETE", "http://127.0.0.1:8080/admin/accounts/jo%20e"))
        self.assertEqual(self.stdout.getvalue(), "deleted account jo e\n")

    def test_passwd(self) -> None:
        """
        C{account passwd} sends C{PUT .../password}.
        """
        self.answer(204)
        self.assertEqual(self.run_cli("account", "passwd", "joe", "--password", "n"), 0)
        self.assertEqual(self.requests[0].method, "PUT")
        self.assertEqual(self.body(), {"password": "n"})
        self.assertEqual(self.stdout.getvalue(), "changed the password of joe\n")

    def test_emails(self) -> None:
        """
        C{add-email} and C{remove-email} print the account's addresses.
        """
        self.answer(200, {"account": {"name": "joe", "emails": ["j@x.org", "k@x.org"]}})
        self.answer(200, {"account": {"name": "joe", "emails": []}})
        self.assertEqual(self.run_cli("account", "add-email", "joe", "k@x.org"), 0)
        self.assertEqual(self.run_cli("account", "remove-email", "joe", "k@x.org"), 0)
        self.assertEqual(self.body(0), {"email": "k@x.org"})
        self.assertEqual(self.requests[1].url,
                         "http://127.0.0.1:8080/admin/accounts/joe/emails/k%40x.org")
        self.assertEqual(self.stdout.getvalue(), "joe: j@x.org, k@x.org\njoe: none\n")


class TokenTests(CLITestCase):
    """
    The C{token} command.
    """

    def test_create(self) -> None:
        """
        C{token create} prints the bearer token alone, for scripts.
        """
        self.answer(201, {"token": "abc.def"})
        self.assertEqual(self.run_cli("token", "create", "joe"), 0)
        self.assertEqual(self.requests[0].url, "http://127.0.0.1:8080/admin/accounts/joe/tokens")
        self.assertEqual(self.stdout.getvalue(), "abc.def\n")


class ErrorOutputTests(CLITestCase):
    """
    Every error is one line on stderr and a non-zero status.
    """

    def test_server_error(self) -> None:
        """
        A 4xx problem detail is printed; the status is 1.
        """
        body = {"type": "about:blank", "status": 409, "detail": "account 'joe' exists"}
        self.responses.append(Response(409, json.dumps(body).encode(), "application/problem+json"))
        self.assertEqual(self.run_cli("account", "create", "joe", "--password=p"), 1)
        self.assertEqual(self.stderr.getvalue(),
                         "stalwart-jmap-admin: error: account 'joe' exists (HTTP 409)\n")
        self.assertEqual(self.stdout.getvalue(), "")

    def test_connection_refused(self) -> None:
        """
        A transport failure is printed as one line.
        """
        def refuse(request: Request) -> Response:
            raise AdminError(f"cannot connect to {request.url}: connection refused")

        self.assertEqual(self.run_cli("account", "list", transport=refuse), 1)
        self.assertEqual(
            self.stderr.getvalue(),
            "stalwart-jmap-admin: error: cannot connect to "
            "http://127.0.0.1:8080/admin/accounts: connection refused\n",
        )

    def test_usage_errors(self) -> None:
        """
        A wrong command line is one line and status 2, with nothing sent.
        """
        cases = [
            ((), "the following arguments are required"),
            (("account",), "the following arguments are required: COMMAND"),
            (("account", "create"), "the following arguments are required: name"),
            (("account", "frobnicate"), "invalid choice: 'frobnicate'"),
            (("account", "create", "joe", "--quota=lots"),
             "argument --quota: 'lots' is not a size in bytes >= 0"),
            (("--bogus", "account", "list"), "unrecognized arguments: --bogus"),
        ]
        for argv, message in cases:
            self.stderr.truncate(0)
            self.stderr.seek(0)
            self.assertEqual(self.run_cli(*argv), 2, argv)
            line = self.stderr.getvalue()
            self.assertEqual(line.count("\n"), 1, line)
            self.assertTrue(line.startswith("stalwart-jmap-admin: error: "), line)
            self.assertIn(message, line)
        self.assertEqual(self.requests, [])

    def test_help(self) -> None:
        """
        C{--help} prints help on stdout and exits 0.
        """
        self.assertEqual(self.run_cli("account", "create", "--help"), 0)
        self.assertIn("--email ADDR", self.stdout.getvalue())
        self.assertEqual(self.stderr.getvalue(), "")
