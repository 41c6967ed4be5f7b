# -*- test-case-name: tests.admin.test_api -*-
"""
The admin HTTP API behind C{stalwart-jmap-admin}: accounts, addresses,
passwords and bearer tokens, and the Raft cluster's status, authorised by
the configured admin-secret.

Every change is a command through the log, like any other write.
Passwords are hashed here, on a worker thread, so the command carries only
the scrypt hash.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse

from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource

from stalwart.auth.authenticate import token_digest
from stalwart.auth.passwords import hash_password
from stalwart.cluster.raft.core import ConfigChangeRefused
from stalwart.jmap.http import HttpError, run_async, send_json
from stalwart.store.accounts import list_accounts
from stalwart.store.commands import Command
from stalwart.store.refusal import Refused

__all__ = ["AdminApi", "cluster_status"]

_STATUS = {"exists": 409, "addressTaken": 409, "notFound": 404}
PASSWORD_CHARS_MAX = 1024


class AdminApi(Resource):
    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def render(self, request):
        return run_async(request, lambda: self._handle(request))

    @inlineCallbacks
    def _handle(self, request):
        self._authorise(request)
        path = [urllib.parse.unquote(p.decode("latin-1")) for p in request.postpath]
        method = request.method
        if path == ["cluster"] and method == b"GET":
            cluster = self.node.cluster
            if cluster is None:
                send_json(request, 200, cluster_status(self.node.raft.driver))
            else:
                gossip = cluster.gossip
                send_json(request, 200, cluster_status(
                    self.node.raft.driver, cluster.roster, cluster.liveness(),
                    dict(gossip.counters) if gossip is not None else None))
            return
        if path == ["cluster", "leave"] and method == b"POST":
            cluster = self.node.cluster
            if cluster is None:
                raise HttpError(409, "this node is not in a cluster")
            result = yield cluster.leave()
            if isinstance(result, Refused):
                raise HttpError(400, result.detail)
            send_json(request, 202, {"node": cluster.node_id, "leaving": True})
            return
        if len(path) == 3 and path[:2] == ["cluster", "members"] and method == b"DELETE":
            self._remove_member(path[2])
            _no_content(request)
            return
        if path == ["accounts"] and method == b"GET":
            accounts = yield self.node.reader.run(list_accounts)
            send_json(request, 200, {"accounts": accounts})
            return
        body = _json_body(request) if method in (b"POST", b"PUT") else {}
        if path == ["accounts"] and method == b"POST":
            password = _password(body)
            hashed = yield self.node.cpu_worker(hash_password, password, self.node.urandom(16))
            account = yield self._write("account.create", {
                "name": body.get("name"), "password": hashed,
                "emails": body.get("emails") or [], "quota": body.get("quota"), "now": self.node.now(),
            })
            send_json(request, 201, {"account": account})
        elif len(path) == 2 and path[0] == "accounts" and method == b"DELETE":
            yield self._write("account.delete", {"name": path[1]})
            _no_content(request)
        elif len(path) == 3 and path[2] == "password" and method == b"PUT":
            hashed = yield self.node.cpu_worker(hash_password, _password(body), self.node.urandom(16))
            yield self._write("account.password", {"name": path[1], "password": hashed})
            _no_content(request)
        elif len(path) == 3 and path[2] == "emails" and method == b"POST":
            account = yield self._write("account.address.add", {"name": path[1], "email": body.get("email")})
            send_json(request, 200, {"account": account})
        elif len(path) == 4 and path[2] == "emails" and method == b"DELETE":
            account = yield self._write("account.address.remove", {"name": path[1], "email": path[3]})
            send_json(request, 200, {"account": account})
        elif len(path) == 3 and path[2] == "tokens" and method == b"POST":
            token = self.node.urandom(32).hex()
            yield self._write("token.create", {"name": path[1], "hash": token_digest(token), "now": self.node.now()})
            send_json(request, 201, {"token": token})
        else:
            raise HttpError(404, f"no admin operation {method.decode()} /admin/{'/'.join(path)}")

    def _authorise(self, request) -> None:
        secret = self.node.config.admin_secret
        if not secret:
            raise HttpError(403, "the admin API is disabled: no admin-secret is configured")
        given = request.getHeader(b"authorization") or b""
        expected = b"Bearer " + secret.encode("utf-8")
        if not hmac.compare_digest(given, expected):
            raise HttpError(401, "wrong admin secret", headers={b"www-authenticate": b'Bearer realm="stalwart-jmap-admin"'})

    def _remove_member(self, node_id: str) -> None:
        """
        Take a node out of the Raft configuration for good (a machine
        retired or rebuilt under a new id): the only way the quorum
        shrinks.  Only the leader can; others answer 421 naming it.
        """
        driver = self.node.raft.driver
        if not driver.is_leader:
            leader = self.node.routing_state()[1]
            raise HttpError(421, f"only the leader removes members; ask {leader or 'the leader, once elected'}")
        core = driver.core
        if node_id not in core.configuration.members:
            raise HttpError(404, f"{node_id} is not a member")
        try:
            driver.change_configuration(remove=node_id)
        except ConfigChangeRefused as e:
            raise HttpError(409, f"cannot remove {node_id} now: {e.reason}") from None

    @inlineCallbacks
    def _write(self, kind, args):
        result = yield self.node.propose(Command(kind=kind, args=args))
        if isinstance(result, Refused):
            raise HttpError(_STATUS.get(result.code, 400), result.detail, f"urn:stalwart:admin:{result.code}")
        return result


def cluster_status(driver, roster=None, liveness=None, gossip_counters=None) -> dict:
    """
    This node's view of the Raft group, for C{GET /admin/cluster}.

    Its own row carries its role; a peer's is C{"voter"} or C{"learner"}.
    Only the leader tracks its peers' replication (C{match}, C{next},
    C{state}, C{recentActive}), so only there is a peer's C{lag} (the
    leader's last index minus the peer's match) known; elsewhere it is
    C{null}, as is this node's own lag unless it leads.
    """
    core = driver.core
    last = core.log.last_index
    voters, learners = core.voters, core.learners
    progress = core.progress()
    members = [{
        "id": core.id, "voter": core.id in voters, "role": core.role,
        "lag": 0 if core.leader == core.id else None,
    }]
    for peer in sorted((voters | learners) - {core.id}):
        member = {"id": peer, "voter": peer in voters, "role": "voter" if peer in voters else "learner", "lag": None}
        known = progress.get(peer)
        if known is not None:
            member.update(match=known.match, next=known.next, state=known.state,
                          recentActive=known.recent_active, lag=max(0, last - known.match))
        members.append(member)
    status = {
        "node": core.id, "role": core.role, "term": core.term, "leader": core.leader,
        "lastIndex": last, "commitIndex": core.log.committed, "appliedIndex": driver.applied,
        "members": members,
    }
    if roster is not None:
        for member in members:
            member.update(_roster_fields(roster.get(member["id"])))
        in_config = {m["id"] for m in members}
        status["known"] = [
            {"id": r.node_id, **_roster_fields(r), "clusterId": r.cluster_id, "fresh": r.fresh}
            for r in roster.records() if r.node_id not in in_config
        ]
    if liveness is not None:
        for row in members + status.get("known", []):
            if row["id"] != core.id:
                state, phi = liveness.get(row["id"], (None, None))
                row.update(gossip=state, phi=None if phi is None else round(phi, 2))
    if gossip_counters is not None:
        status["gossipCounters"] = gossip_counters
    return status


def _roster_fields(record) -> dict:
    if record is None:
        return {"rpcAddress": None, "jmapUrl": None, "readReplica": None}
    return {"rpcAddress": "%s:%d" % record.rpc_address, "jmapUrl": record.jmap_url, "readReplica": record.read_replica}


def _json_body(request) -> dict:
    raw = request.content.read(65537)
    if len(raw) > 65536:
        raise HttpError(413, "admin request body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise HttpError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


def _password(body: dict) -> str:
    password = body.get("password")
    if not isinstance(password, str) or not password or len(password) > PASSWORD_CHARS_MAX:
        raise HttpError(400, f"password must be a non-empty string of at most {PASSWORD_CHARS_MAX} characters")
    return password


def _no_content(request) -> None:
    request.setResponseCode(204)
    request.finish()
