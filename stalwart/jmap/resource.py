# -*- test-case-name: tests.jmap.test_resource -*-
"""
The JMAP HTTP endpoints (RFC 8620): session (2), API (3), upload (6.1)
and download (6.2).  A thin shell: it authenticates, enforces the HTTP
limits and hands the work to the dispatcher, the reader or the log.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Dict, Mapping

from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File

from stalwart.cluster.raft.core import NotLeader
from stalwart.cluster.raft.driver import ProposalDropped, Stopping, StorageFailed
from stalwart.jmap.errors import RequestError
from stalwart.jmap.http import HttpError, client_address, run_async, send_json
from stalwart.jmap.methods.blob import UPLOAD_COMMAND
from stalwart.jmap.request import parse_request
from stalwart.jmap.routing import Redirect, Serve, Unavailable, is_write_request, route
from stalwart.mail.partblobs import read_blob, stored_blob_id
from stalwart.store.blobs import is_blob_id
from stalwart.store.commands import Command, encode_command
from stalwart.store.refusal import Refused

__all__ = ["JmapRoot"]

#: Request bodies up to this size are parsed on the reactor thread; larger
#: ones on a worker thread, so one big request cannot stall the others.
INLINE_PARSE_BYTES_MAX = 65536


class _Endpoint(Resource):
    isLeaf = True

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node

    def authenticate(self, request):
        return self.node.authenticator.authenticate(
            request.getHeader(b"authorization"), client_address(request)
        )


class SessionEndpoint(_Endpoint):
    def render_GET(self, request):
        @inlineCallbacks
        def handle():
            principal = yield self.authenticate(request)
            session = yield self.node.session_for(principal)
            send_json(request, 200, session)

        return run_async(request, handle)


class _InFlight:
    """Requests in progress per account, for maxConcurrentRequests and maxConcurrentUpload (RFC 8620 2)."""

    def __init__(self, limit_name: str, limit: int) -> None:
        self._limit_name = limit_name
        self._limit = limit
        self._counts: Dict[str, int] = {}

    def enter(self, account: str) -> None:
        if self._counts.get(account, 0) >= self._limit:
            raise RequestError.limit(self._limit_name, f"at most {self._limit} requests at once")
        self._counts[account] = self._counts.get(account, 0) + 1

    def leave(self, account: str) -> None:
        self._counts[account] -= 1
        if not self._counts[account]:
            del self._counts[account]


@inlineCallbacks
def _route(node, request, write: bool):
    """
    Decide where C{request} is served (L{stalwart.jmap.routing}); fires
    with C{True} to serve it here.  Otherwise it is answered: a redirect to
    the leader with an empty body, or 503 with Retry-After when no leader
    is known.  A read on a follower first waits briefly for this node to
    catch up with the leader's log.
    """
    is_leader, leader_url = node.routing_state()
    caught_up = True
    if not write and not is_leader:
        caught_up = yield node.catch_up()
        is_leader, leader_url = node.routing_state()
    decision = route(
        write=write, is_leader=is_leader, leader_url=leader_url, caught_up=caught_up,
        path_and_query=request.uri, redirect_status=node.redirect_status,
    )
    if isinstance(decision, Serve):
        return True
    if isinstance(decision, Unavailable):
        raise HttpError(
            503, "no leader is known; retry",
            headers={b"retry-after": str(decision.retry_after_seconds).encode("ascii")},
        )
    assert isinstance(decision, Redirect), decision
    if not request.finished and not getattr(request, "_disconnected", False):
        request.setResponseCode(decision.status)
        request.setHeader(b"location", decision.location.encode("latin-1"))
        request.setHeader(b"cache-control", b"no-cache, no-store, must-revalidate")
        request.setHeader(b"content-length", b"0")
        request.finish()
    return False


def _unavailable(failure):
    """The write path is not available here now (no leader, stopping, failed disk): 503, retry."""
    failure.trap(NotLeader, ProposalDropped, Stopping, StorageFailed)
    raise HttpError(503, "the server cannot take writes right now; retry", headers={b"retry-after": b"1"})


class ApiEndpoint(_Endpoint):
    def __init__(self, node) -> None:
        super().__init__(node)
        self._in_flight = _InFlight("maxConcurrentRequests", node.config.max_concurrent_requests)

    def render_POST(self, request):
        @inlineCallbacks
        def handle():
            principal = yield self.authenticate(request)
            config = self.node.config
            body = request.content.read()
            if len(body) > config.max_size_request:
                raise RequestError.limit("maxSizeRequest", f"request body over {config.max_size_request} bytes")
            account = principal.account_id
            self._in_flight.enter(account)
            try:
                args = (body, self.node.capability_uris(), config.max_calls_in_request)
                if len(body) > INLINE_PARSE_BYTES_MAX:
                    jmap_request = yield self.node.cpu_worker(parse_request, *args)
                else:
                    jmap_request = parse_request(*args)
                serve = yield _route(self.node, request, is_write_request([call.name for call in jmap_request.method_calls]))
                if not serve:
                    return
                context = yield self.node.request_context(principal)
                response = yield self.node.dispatcher.process(jmap_request, context)
            finally:
                self._in_flight.leave(account)
            send_json(request, 200, response)

        return run_async(request, handle)


class UploadEndpoint(_Endpoint):
    """POST /jmap/upload/{accountId}/ (RFC 8620 6.1)."""

    def __init__(self, node) -> None:
        super().__init__(node)
        # Each upload holds its bytes in memory until written to the log.
        self._in_flight = _InFlight("maxConcurrentUpload", node.config.max_concurrent_requests)

    def render_POST(self, request):
        @inlineCallbacks
        def handle():
            principal = yield self.authenticate(request)
            if len(request.postpath) < 1 or request.postpath[0].decode("utf-8", "replace") != principal.account_id:
                raise HttpError(404, "no such account for this user", "urn:ietf:params:jmap:error:accountNotFound")
            serve = yield _route(self.node, request, write=True)
            if not serve:
                return
            self._in_flight.enter(principal.account_id)
            try:
                yield self._upload(request, principal)
            finally:
                self._in_flight.leave(principal.account_id)

        return run_async(request, handle)

    @inlineCallbacks
    def _upload(self, request, principal):
        limit = self.node.config.max_size_upload
        content_type = (request.getHeader(b"content-type") or b"application/octet-stream").decode("latin-1").strip()
        if len(content_type) > 255:
            raise HttpError(400, "content type too long")
        args = {"account": principal.account_id, "type": content_type, "now": self.node.now()}

        def read_and_encode():
            data = request.content.read(limit + 1)
            if len(data) > limit:
                return None
            return encode_command(Command(kind=UPLOAD_COMMAND, args=args, body=data))

        payload = yield self.node.cpu_worker(read_and_encode)
        if payload is None:
            raise HttpError(413, f"upload over {limit} bytes", "urn:ietf:params:jmap:error:limit", limit="maxSizeUpload")
        result = yield self.node.propose_bytes(payload).addErrback(_unavailable)
        if isinstance(result, Refused):
            status = 403 if result.code == "overQuota" else 400
            raise HttpError(status, result.detail, f"urn:ietf:params:jmap:error:{result.code}")
        send_json(request, 201, result)


class DownloadEndpoint(_Endpoint):
    """
    GET /jmap/download/{accountId}/{blobId}/{name}?accept={type} (RFC 8620 6.2).

    A whole blob is served from its file (with Range).  A part blob
    (RFC 8621 4.1.4, L{stalwart.mail.partblobs}) is decoded from its
    message on a reader thread and sent in one piece.
    """

    def render_GET(self, request):
        @inlineCallbacks
        def handle():
            principal = yield self.authenticate(request)
            parts = [p.decode("utf-8", "replace") for p in request.postpath]
            if len(parts) < 3 or parts[0] != principal.account_id or stored_blob_id(parts[1]) is None:
                raise HttpError(404, "no such blob")
            account, blob_id, name = parts[0], parts[1], urllib.parse.unquote(parts[2])
            serve = yield _route(self.node, request, write=False)
            if not serve:
                return
            if not is_blob_id(blob_id):
                found = yield self.node.reader.run(read_blob, self.node.blobs.read, account, blob_id)
                if found is None:
                    raise HttpError(404, "no such blob")
                data, part_type = found
                if getattr(request, "_disconnected", False):
                    return
                self._headers(request, name, part_type)
                request.setHeader(b"content-length", str(len(data)).encode("ascii"))
                request.write(data)
                request.finish()
                return
            found = yield self.node.reader.run(_blob_type, account, blob_id)
            if found is None or not self.node.blobs.exists(blob_id):
                raise HttpError(404, "no such blob")
            accept = self._headers(request, name, found)
            blob = File(self.node.blobs.path(blob_id), defaultType=accept)
            blob.type, blob.encoding = accept, None
            result = blob.render(request)
            if result is not NOT_DONE_YET:
                request.write(result)
                request.finish()

        return run_async(request, handle)

    def _headers(self, request, name: str, default_type: str) -> str:
        """Set the headers of a download; the media type it is served as."""
        accept = request.args.get(b"accept", [b""])[0].decode("latin-1") or default_type
        if not _is_media_type(accept):
            raise HttpError(400, "accept must be a media type")
        request.setHeader(b"content-type", accept.encode("latin-1"))
        request.setHeader(b"content-disposition", _disposition(name))
        request.setHeader(b"cache-control", b"private, immutable, max-age=31536000")
        return accept


def _blob_type(conn, account: str, blob_id: str):
    row = conn.execute(
        "SELECT type FROM blobs WHERE account_id = ? AND blob_id = ?", (account, blob_id)
    ).fetchone()
    return row[0] if row else None


def _is_media_type(value: str) -> bool:
    kind, slash, sub = value.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&-^_.+;= ")
    # "/" is not in allowed: exactly one slash, the one partition found.
    return bool(kind and slash and sub) and all(c in allowed for c in kind + sub) and len(value) < 256


def _disposition(name: str) -> bytes:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "blob"
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}".encode("ascii")


class JmapRoot(Resource):
    """
    /.well-known/jmap, /jmap/session, /jmap/api, /jmap/upload/...,
    /jmap/download/..., and C{extra} children of /jmap (push: eventsource, ws).
    """

    def __init__(self, node, extra: Mapping[bytes, Resource] = {}) -> None:
        super().__init__()
        session = SessionEndpoint(node)
        well_known = Resource()
        well_known.putChild(b"jmap", session)
        self.putChild(b".well-known", well_known)
        jmap = Resource()
        jmap.putChild(b"session", session)
        jmap.putChild(b"api", ApiEndpoint(node))
        jmap.putChild(b"upload", UploadEndpoint(node))
        jmap.putChild(b"download", DownloadEndpoint(node))
        for name, child in extra.items():
            jmap.putChild(name, child)
        self.putChild(b"jmap", jmap)

    def getChild(self, path, request):
        return _NotFound()


class _NotFound(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/problem+json")
        return json.dumps({"type": "about:blank", "status": 404, "detail": "no such resource"}).encode()
