# -*- test-case-name: tests.jmap.test_resource -*-
"""
Small HTTP helpers shared by the JMAP and admin resources: JSON and
problem-details responses (RFC 7807), authentication outcomes, and
running a Deferred-returning handler behind NOT_DONE_YET.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from stalwart.logs import observer
from twisted.web.server import NOT_DONE_YET

from stalwart.auth.authenticate import TooManyFailures, Unauthorized
from stalwart.jmap.errors import RequestError

__all__ = ["send_json", "send_problem", "HttpError", "run_async", "client_address"]

log = Logger(observer=observer)


class HttpError(Exception):
    def __init__(self, status: int, detail: str, type: str = "about:blank", **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type
        self.extra = extra


def send_json(request, status: int, body: Any, content_type: bytes = b"application/json") -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"content-type", content_type + b"; charset=utf-8")
    request.setHeader(b"cache-control", b"no-cache, no-store, must-revalidate")
    request.setHeader(b"content-length", str(len(data)).encode())
    request.write(data)
    request.finish()


def send_problem(request, status: int, type: str, detail: str, **extra: Any) -> None:
    body = {"type": type, "status": status, "detail": detail, **extra}
    send_json(request, status, body, content_type=b"application/problem+json")


def client_address(request) -> str:
    peer = request.getClientAddress()
    return getattr(peer, "host", None) or str(peer)


def run_async(request, handler: Callable[[], Any]) -> bytes:
    """
    Run C{handler()} (which finishes C{request} itself) and turn its
    failures into responses.  Returns NOT_DONE_YET for C{render_*}.
    """
    finished = []
    request.notifyFinish().addBoth(finished.append)

    def failed(failure):
        if finished:
            return None  # the client went away; nothing to answer
        error = failure.value
        if isinstance(error, RequestError):
            send_problem(request, error.status, error.type, error.detail, **({"limit": error.limit} if error.limit else {}))
        elif isinstance(error, TooManyFailures):
            request.setHeader(b"retry-after", str(max(1, int(error.retry_after + 0.999))).encode())
            send_problem(request, 429, "about:blank", "too many failed logins; retry later")
        elif isinstance(error, Unauthorized):
            request.setHeader(b"www-authenticate", b'Basic realm="stalwart-jmap", charset="UTF-8"')
            send_problem(request, 401, "about:blank", str(error))
        elif isinstance(error, HttpError):
            for name, value in error.extra.pop("headers", {}).items():
                request.setHeader(name, value)
            send_problem(request, error.status, error.type, error.detail, **error.extra)
        else:
            log.failure("request {method} {uri} failed", failure, method=request.method, uri=request.uri)
            send_problem(request, 500, "about:blank", "internal server error")
        return None

    maybeDeferred(handler).addErrback(failed).addErrback(
        lambda f: log.failure("could not send an error response", f)
    )
    return NOT_DONE_YET
