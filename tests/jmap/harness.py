# -*- test-case-name: tests.jmap.test_resource -*-
"""
A whole stalwart-jmap node in-process, without threads or sockets, for
C{SynchronousTestCase}s.

L{build_service} is called with C{threads=False}, so the Raft log writes,
the state machine's applies, the store reads and scrypt all run on the
calling thread and every Deferred fires before the call that made it
returns.  The reactor is a L{MemoryReactorClock}: the HTTP listener
"listens" in memory and the Raft ticker and the failure limiter use its
clock, which tests move with L{LiveNode.advance}.  HTTP goes through
L{StubTreq} on the same resource tree the listener serves.
"""

from __future__ import annotations

import json
import random
from typing import Any, Dict, Iterable, Optional, Tuple

import attrs
import treq
from treq.testing import StubTreq
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from stalwart.auth.authenticate import Principal
from stalwart.jmap.capabilities import CORE
from stalwart.jmap.request import parse_request
from stalwart.service.config import ServerConfig
from stalwart.service.maker import build_service
from stalwart.store.commands import Command
from tests.jmap.notes import NOTES, Note

__all__ = ["LiveNode", "Reply", "ADMIN_SECRET", "JMAP_URL", "basic"]

ADMIN_SECRET = "admin-secret-for-tests"
JMAP_URL = "https://jmap.example.com"
USING = [CORE, NOTES]


def basic(user: str, password: str) -> bytes:
    """An HTTP Basic Authorization header value (RFC 7617)."""
    import base64

    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@attrs.frozen
class Reply:
    """A finished HTTP response, read in full."""

    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class LiveNode:
    """
    One started node, stopped at the test's cleanup.

    @ivar node: the L{stalwart.service.node.Node} resources use.
    @ivar clock: its reactor, a L{MemoryReactorClock}.
    @ivar http: a L{StubTreq} on the root resource (JMAP plus /admin).
    """

    def __init__(self, case: SynchronousTestCase, seed: int = 1, extensions: Iterable = (), make_rpc=None,
                 clock: Optional[MemoryReactorClock] = None, **config: Any) -> None:
        self.case = case
        if clock is None:
            clock = MemoryReactorClock()
            clock.advance(1_700_000_000)  # a plausible wall-clock time
        self.clock = clock
        #: Called between flushes while a request is pending: a cluster
        #: test moves the shared clock so that Raft messages flow.
        self.between_flushes = None
        rng = random.Random(seed)
        config.setdefault("admin_secret", ADMIN_SECRET)
        config.setdefault("jmap_url", JMAP_URL)
        self.config = ServerConfig(data_dir=case.mktemp(), **config)
        self.service = build_service(
            self.config, self.clock, object_types=[Note()], extensions=list(extensions),
            urandom=rng.randbytes, threads=False, make_rpc=make_rpc,
        )
        self.service.startService()
        case.addCleanup(self._stop)
        self.node = self.service.node
        # build_service does not advertise the capabilities of the object
        # types it is given; the test type's capability is added here.
        self.node.capabilities[NOTES] = {}
        self.root = self.service.getServiceNamed("jmap").site.resource
        self.http = StubTreq(self.root)

    def _stop(self) -> None:
        if not self.service.running:
            return
        d = self.service.stopService()
        # A cluster leader hands over leadership first, on the clock.
        done = []
        d.addBoth(lambda result: (done.append(True), result)[1])
        for _ in range(200):
            if done:
                break
            self.clock.advance(0.05)
        self.case.successResultOf(d)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- HTTP ------------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, Any]] = None,
        authorization: Optional[bytes] = None,
    ) -> Reply:
        """Make one HTTP request to C{JMAP_URL + path}; its response, read in full."""
        headers = dict(headers or {})
        if authorization is not None:
            headers["Authorization"] = authorization
        d = self.http.request(method, JMAP_URL + path, data=body or None, headers=headers, allow_redirects=False)
        response = self.case.successResultOf(self._flushed(d))
        content = self._flushed(treq.content(response))
        return Reply(response.code, response.headers, self.case.successResultOf(content))

    def _flushed(self, d):
        """
        Pump bytes between client and server until C{d} fires: a static
        file is sent by a pull producer, one chunk per pump.
        """
        fired = []
        d.addBoth(lambda r: (fired.append(True), r)[1])
        for _ in range(1000):
            if fired:
                break
            self.http.flush()
            if self.between_flushes is not None and not fired:
                self.between_flushes()
        return d

    @inlineCallbacks
    def request_pumped(
        self, method: str, path: str, headers: Optional[Dict[str, Any]] = None,
        authorization: Optional[bytes] = None,
    ):
        """
        L{request} for responses sent by a pull producer (static files):
        twisted.web drives those through the global cooperator, hence the
        global reactor, so this needs an asynchronous C{TestCase} and
        yields to the reactor between pumps.  Fires with a L{Reply}.
        """
        headers = dict(headers or {})
        if authorization is not None:
            headers["Authorization"] = authorization
        response = yield self._pumped(self.http.request(method, JMAP_URL + path, headers=headers))
        body = yield self._pumped(treq.content(response))
        return Reply(response.code, response.headers, body)

    @inlineCallbacks
    def _pumped(self, d):
        from twisted.internet import reactor

        fired = []
        d.addBoth(lambda r: (fired.append(True), r)[1])
        for _ in range(1000):
            self.http.flush()
            if fired:
                break
            yield deferLater(reactor, 0, lambda: None)
        return (yield d)

    def admin(self, method: str, path: str, body: Any = None, secret: Optional[str] = ADMIN_SECRET) -> Reply:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        auth = None if secret is None else b"Bearer " + secret.encode()
        return self.request(method, "/admin" + path, data, {"Content-Type": "application/json"}, auth)

    def create_account(self, name: str, password: str = "secret password", **extra: Any) -> Dict:
        """Create an account through the admin API; its JSON."""
        reply = self.admin("POST", "/accounts", {"name": name, "password": password, **extra})
        assert reply.status == 201, reply
        return reply.json()["account"]

    def api(self, calls: Iterable, authorization: bytes, using=USING, **extra: Any) -> Reply:
        body = json.dumps({"using": list(using), "methodCalls": list(calls), **extra}).encode()
        return self.request("POST", "/jmap/api", body, {"Content-Type": "application/json"}, authorization)

    # -- methods without HTTP --------------------------------------------

    def quick_account(self, name: str, quota: Optional[int] = None) -> str:
        """
        Create an account by proposing the command directly (no scrypt);
        its id.  Nobody can log in to it.
        """
        result = self.case.successResultOf(self.node.propose(Command(kind="account.create", args={
            "name": name, "password": "not-a-hash", "emails": [], "quota": quota, "now": self.node.now(),
        })))
        return result["id"]

    def process(self, account_id: str, calls: Iterable, using=USING, **extra: Any) -> Dict:
        """Run a JMAP request for C{account_id} through the dispatcher; the Response object."""
        body = json.dumps({"using": list(using), "methodCalls": list(calls), **extra}).encode()
        request = parse_request(body, self.node.capability_uris(), self.config.max_calls_in_request)
        context = self.case.successResultOf(
            self.node.request_context(Principal(account_id=account_id, name=account_id))
        )
        return self.case.successResultOf(self.node.dispatcher.process(request, context))

    def call(self, account_id: str, name: str, arguments: Dict, **extra: Any) -> Tuple[str, Dict]:
        """Run one method call; its only response as C{(name, arguments)}."""
        arguments = {"accountId": account_id, **arguments}
        responses = self.process(account_id, [[name, arguments, "c0"]], **extra)["methodResponses"]
        assert len(responses) == 1, responses
        response_name, response_args, call_id = responses[0]
        return response_name, response_args
