# -*- test-case-name: tests.admin.test_client -*-
"""
A blocking client of the stalwart-jmap admin HTTP API, for the
C{stalwart-jmap-admin} command.

The HTTP exchange is a parameter: L{AdminClient} builds L{Request}s and hands
them to a L{Transport}, a callable returning a L{Response}. L{urllib_transport}
is the real one (stdlib C{urllib}, blocking, which is fine in a command-line
tool); tests pass a fake.

The API: every request carries C{Authorization: Bearer <admin-secret>};
bodies are JSON; errors are C{application/problem+json} (RFC 9457) objects
C{{"type", "status", "detail"}}. 401 means a wrong secret, 403 an admin API
that is disabled (no admin-secret configured on the server).
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Callable, Optional
from urllib.parse import quote, urljoin, urlsplit

import attrs

__all__ = [
    "AdminClient",
    "AdminError",
    "Request",
    "Response",
    "Transport",
    "ssl_context",
    "urllib_transport",
]

REDIRECTS_MAX = 5
"""Redirects followed at most: a follower sends writes to the leader."""
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class AdminError(Exception):
    """
    A request failed; the message is one line for the operator.
    """


@attrs.frozen
class Request:
    """
    One HTTP request to the admin API.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    body: Optional[bytes] = None


@attrs.frozen
class Response:
    """
    One HTTP response: status, C{Content-Type}, C{Location} (for redirects)
    and body.
    """

    status: int
    body: bytes = b""
    content_type: str = ""
    location: Optional[str] = None


Transport = Callable[[Request], Response]
"""Sends a L{Request}; raises L{AdminError} if no response arrives."""


def ssl_context(cacert: Optional[str], insecure: bool) -> ssl.SSLContext:
    """
    The TLS context for HTTPS servers.

    @param cacert: A PEM file of CA certificates to trust instead of the
        system's, for a server with a self-signed certificate.
    @param insecure: Do not check the server's certificate at all (test
        servers only).
    @raise AdminError: If C{cacert} cannot be loaded.
    """
    if cacert is not None and insecure:
        raise AdminError("give --cacert or --insecure, not both")
    try:
        context = ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as e:
        raise AdminError(f"--cacert: cannot load {cacert!r}: {e.strerror or e}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """
    Return redirects as responses: urllib would turn a redirected POST into a
    GET, so L{AdminClient} follows them itself.
    """

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def urllib_transport(context: Optional[ssl.SSLContext], timeout_seconds: float) -> Transport:
    """
    A L{Transport} over C{urllib}, ignoring proxy environment variables (the
    admin secret goes straight to the server).
    """
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
        _NoRedirect(),
    )

    def send(request: Request) -> Response:
        http_request = urllib.request.Request(
            request.url, data=request.body, headers=dict(request.headers), method=request.method
        )
        try:
            with opener.open(http_request, timeout=timeout_seconds) as reply:
                return Response(
                    reply.status, reply.read(), reply.headers.get("Content-Type", ""),
                    reply.headers.get("Location"),
                )
        except urllib.error.HTTPError as e:
            with e:
                return Response(
                    e.code, e.read(), e.headers.get("Content-Type", ""), e.headers.get("Location")
                )
        except urllib.error.URLError as e:
            raise AdminError(f"cannot connect to {request.url}: {_reason(e.reason)}") from None
        except (OSError, socket.timeout) as e:
            raise AdminError(f"cannot connect to {request.url}: {_reason(e)}") from None

    return send


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"{reason.verify_message or reason}; use --cacert FILE for a self-signed "
            "certificate (or --insecure for a test server)"
        )
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _segment(text: str) -> str:
    return quote(text, safe="")


class AdminClient:
    """
    Calls of the admin API. Each method returns the decoded JSON answer, or
    raises L{AdminError} with one line naming the problem.
    """

    def __init__(self, base_url: str, secret: str, transport: Transport) -> None:
        """
        @param base_url: The server's URL, e.g. C{http://127.0.0.1:8080}.
        @param secret: The server's admin-secret.
        @param transport: Sends requests (see L{urllib_transport}).
        """
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AdminError(f"--url: {base_url!r} is not an http:// or https:// URL")
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._transport = transport

    def request(self, method: str, path: str, body: Optional[dict[str, object]] = None) -> object:
        """
        Send one request, following redirects, and decode the JSON answer.

        @param path: Starting with C{/admin/}; segments already encoded.
        @return: The decoded JSON body, or C{None} for an empty body (204).
        """
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = [
            ("Authorization", f"Bearer {self._secret}"),
            ("Accept", "application/json"),
            ("User-Agent", "stalwart-jmap-admin"),
        ]
        if data is not None:
            headers.append(("Content-Type", "application/json"))
        url = self._base_url + path
        for _ in range(REDIRECTS_MAX + 1):
            response = self._transport(Request(method, url, tuple(headers), data))
            if response.status not in _REDIRECT_STATUSES or not response.location:
                return _decode(response)
            url = urljoin(url, response.location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise AdminError(f"the server redirected to {url!r}, which is not http(s)")
        raise AdminError(f"more than {REDIRECTS_MAX} redirects, last to {url}")

    def list_accounts(self) -> list[dict[str, object]]:
        """
        All accounts: C{[{"id", "name", "emails", "quota"}]}.
        """
        answer = self.request("GET", "/admin/accounts")
        return _field(answer, "accounts", list)  # type: ignore[no-any-return]

    def create_account(
        self, name: str, password: str, emails: list[str], quota: Optional[int]
    ) -> dict[str, object]:
        """
        Create an account and return it.
        """
        body = {"name": name, "password": password, "emails": emails, "quota": quota}
        return _field(self.request("POST", "/admin/accounts", body), "account", dict)

    def delete_account(self, name: str) -> None:
        """
        Delete an account.
        """
        self.request("DELETE", f"/admin/accounts/{_segment(name)}")

    def set_password(self, name: str, password: str) -> None:
        """
        Replace an account's password.
        """
        self.request(
            "PUT", f"/admin/accounts/{_segment(name)}/password", {"password": password}
        )

    def add_email(self, name: str, email: str) -> dict[str, object]:
        """
        Add an address to an account and return the account.
        """
        answer = self.request(
            "POST", f"/admin/accounts/{_segment(name)}/emails", {"email": email}
        )
        return _field(answer, "account", dict)

    def remove_email(self, name: str, email: str) -> dict[str, object]:
        """
        Remove an address from an account and return the account.
        """
        answer = self.request(
            "DELETE", f"/admin/accounts/{_segment(name)}/emails/{_segment(email)}"
        )
        return _field(answer, "account", dict)

    def create_token(self, name: str) -> str:
        """
        A new bearer token for JMAP access as the account.
        """
        return _field(  # type: ignore[no-any-return]
            self.request("POST", f"/admin/accounts/{_segment(name)}/tokens"), "token", str
        )

    def leave_cluster(self) -> dict[str, object]:
        """Make the node this client talks to leave its cluster for good."""
        return self.request("POST", "/admin/cluster/leave", {})  # type: ignore[return-value]

    def remove_member(self, node_id: str) -> None:
        """Take C{node_id} out of the Raft configuration (the leader must be asked)."""
        self.request("DELETE", f"/admin/cluster/members/{_segment(node_id)}")

    def cluster_status(self) -> dict[str, object]:
        """
        The server's view of its Raft group: C{{"node", "role", "term",
        "leader", "lastIndex", "commitIndex", "appliedIndex", "members"}}.
        """
        answer = self.request("GET", "/admin/cluster")
        _field(answer, "members", list)
        return answer  # type: ignore[return-value]


def _field(answer: object, name: str, kind: type) -> object:
    if not isinstance(answer, dict) or not isinstance(answer.get(name), kind):
        raise AdminError(f"unexpected answer from the server: no {name!r} in it")
    return answer[name]


def _decode(response: Response) -> object:
    """
    The JSON body of a 2xx response; L{AdminError} for any other status.
    """
    if response.status == 401:
        raise AdminError(
            "the server refused the admin secret (401): check --secret or STALWART_ADMIN_SECRET"
        )
    if response.status == 403:
        raise AdminError(
            "the admin API is disabled on this server (403): start it with --admin-secret"
        )
    if not 200 <= response.status < 300:
        raise AdminError(f"{_problem(response)} (HTTP {response.status})")
    if not response.body.strip():
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        raise AdminError(
            f"unexpected answer from the server: not JSON (HTTP {response.status})"
        ) from None


def _problem(response: Response) -> str:
    """
    The C{detail} of a problem document, or a short, single-line excerpt.
    """
    try:
        problem = json.loads(response.body)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        text = problem["detail"]
    else:
        text = response.body.decode("utf-8", "replace")[:200] or "no detail"
    return " ".join(text.split())
