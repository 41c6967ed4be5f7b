# -*- test-case-name: tests.jmap.test_errors -*-
"""
The three levels of JMAP errors (RFC 8620 section 3.6 and 5.3).

  - L{RequestError}: the whole request is rejected (RFC 8620 3.6.1); the HTTP
    shell renders it as an C{application/problem+json} body (RFC 7807).
  - L{MethodError}: one method call fails (RFC 8620 3.6.2); the dispatcher
    turns it into an C{["error", {...}, callId]} response and carries on.
  - L{SetError}: one record of a C{/set} (or C{/copy}) fails (RFC 8620 5.3);
    methods put it in C{notCreated}, C{notUpdated} or C{notDestroyed}.
"""

from __future__ import annotations

from typing import Mapping

import attrs

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "REQUEST_ERROR_PREFIX",
    "RequestError",
    "MethodError",
    "SetError",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
"""The media type of a request-level error body (RFC 7807 section 3)."""

REQUEST_ERROR_PREFIX = "urn:ietf:params:jmap:error:"
"""The URI prefix of every request-level problem type of RFC 8620 3.6.1."""


class RequestError(Exception):
    """
    A request-level error (RFC 8620 3.6.1), rendered as
    C{application/problem+json}.

    @ivar type: the full problem type URI, e.g.
        C{"urn:ietf:params:jmap:error:notJSON"}.
    @ivar status: the HTTP status code to answer with.
    @ivar detail: a human-readable explanation, specific to this request.
    @ivar limit: for C{...:error:limit}, the name of the limit that was
        exceeded (e.g. C{"maxCallsInRequest"}); RFC 8620 3.6.1 makes it
        mandatory for that type.  C{None} otherwise.  (On an instance this
        attribute hides the L{RequestError.limit} constructor, which is still
        reachable through the class.)
    """

    def __init__(
        self, type: str, status: int, detail: str, limit: str | None = None
    ) -> None:
        if type == REQUEST_ERROR_PREFIX + "limit" and limit is None:
            raise ValueError("a limit problem must name its limit")
        super().__init__(type, status, detail, limit)
        self.type = type
        self.status = status
        self.detail = detail
        self.limit = limit

    def __str__(self) -> str:
        return f"{self.type} ({self.status}): {self.detail}"

    @classmethod
    def notJSON(cls, detail: str) -> RequestError:
        """
        The request was not I-JSON (or not C{application/json}).
        """
        return cls(REQUEST_ERROR_PREFIX + "notJSON", 400, detail)

    @classmethod
    def notRequest(cls, detail: str) -> RequestError:
        """
        The request was JSON but not of the Request object's type signature.
        """
        return cls(REQUEST_ERROR_PREFIX + "notRequest", 400, detail)

    @classmethod
    def unknownCapability(cls, detail: str) -> RequestError:
        """
        The request's C{using} names a capability this server lacks.
        """
        return cls(REQUEST_ERROR_PREFIX + "unknownCapability", 400, detail)

    @classmethod
    def limit(cls, limit_name: str, detail: str) -> RequestError:  # type: ignore[no-redef]
        """
        The request would exceed the request limit C{limit_name} of the core
        capability object (e.g. C{maxCallsInRequest}, C{maxSizeRequest}).
        """
        return cls(REQUEST_ERROR_PREFIX + "limit", 400, detail, limit=limit_name)

    def to_json(self) -> dict:
        """
        @return: the RFC 7807 problem details object.
        """
        body: dict = {"type": self.type, "status": self.status, "detail": self.detail}
        if self.limit is not None:
            body["limit"] = self.limit
        return body


class MethodError(Exception):
    """
    A method-level error (RFC 8620 3.6.2), raised by method implementations
    (synchronously or through their Deferred) and turned by the dispatcher
    into C{["error", err.to_json(), callId]}.

    @ivar type: the short error type, e.g. C{"invalidArguments"},
        C{"unknownMethod"}, C{"stateMismatch"}.
    @ivar description: an optional non-localised explanation for debugging.
    @ivar extra: further properties of the error object defined by the
        method's specification (e.g. C{arguments} for C{invalidArguments}).
    """

    def __init__(self, type: str, description: str | None = None, **extra: object) -> None:
        if not isinstance(type, str) or not type:
            raise ValueError(f"a method error type must be a non-empty string, not {type!r}")
        super().__init__(type, description)
        self.type = type
        self.description = description
        self.extra = dict(extra)

    def __str__(self) -> str:
        if self.description is None:
            return self.type
        return f"{self.type}: {self.description}"

    def to_json(self) -> dict:
        """
        @return: the arguments object of the C{"error"} response.
        """
        body: dict = {"type": self.type}
        if self.description is not None:
            body["description"] = self.description
        body.update(self.extra)
        return body


@attrs.frozen(init=False)
class SetError:
    """
    Why one create, update or destroy of a C{/set} failed (RFC 8620 5.3).

    Construct it like L{MethodError}:
    C{SetError("invalidProperties", "bad name", properties=["name"])}.

    @ivar type: the SetError type, e.g. C{"notFound"}, C{"invalidPatch"}.
    @ivar description: an optional non-localised explanation.
    @ivar extra: further properties, e.g. C{properties} (for
        C{invalidProperties}) or C{existingId} (for C{alreadyExists}).
    """

    type: str
    description: str | None
    extra: Mapping[str, object]

    def __init__(self, type: str, description: str | None = None, **extra: object) -> None:
        if not isinstance(type, str) or not type:
            raise ValueError(f"a SetError type must be a non-empty string, not {type!r}")
        self.__attrs_init__(type, description, dict(extra))

    def to_json(self) -> dict:
        """
        @return: the SetError object; C{description} is left out when it is
            C{None}, its default (RFC 8620 3.5).
        """
        body: dict = {"type": self.type}
        if self.description is not None:
            body["description"] = self.description
        body.update(self.extra)
        return body
