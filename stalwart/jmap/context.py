# -*- test-case-name: tests.jmap.test_standard -*-
"""
What a method call may use: the caller's account, the store reader, the
write path (a proposal through the Raft log) and the configured limits.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

import attrs
from twisted.internet.defer import Deferred

from stalwart.jmap.errors import MethodError
from stalwart.store.commands import Command
from stalwart.store.refusal import Refused

__all__ = ["Limits", "RequestContext", "WRITE_COMMAND"]

#: The command kind that carries a JMAP write method through the log.
WRITE_COMMAND = "jmap"


@attrs.frozen
class Limits:
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500
    query_max_results: int = 5000
    changes_max_results: int = 5000


@attrs.define
class RequestContext:
    account_id: str
    username: str
    reader: Any
    propose: Callable[[Command], Deferred]
    now: Callable[[], str]
    limits: Limits = Limits()
    state: str = ""
    #: The blob store (content-addressed files), for methods that read messages.
    blobs: Any = None

    def session_state(self) -> str:
        return self.state

    def account(self, arguments: Mapping[str, Any], name: str = "accountId") -> str:
        """The account an argument names, if this caller may use it (RFC 8620 3.6.2)."""
        value = arguments.get(name)
        if not isinstance(value, str):
            raise MethodError("invalidArguments", f"{name} must be an Id", arguments=[name])
        if value != self.account_id:
            error = "fromAccountNotFound" if name == "fromAccountId" else "accountNotFound"
            raise MethodError(error, f"no account {value!r} for this user")
        return value

    def write(self, method: str, account_id: str, args: Dict, created_ids: Dict, body: bytes = b"") -> Deferred:
        """
        Propose a write method and fire with its responses once applied;
        ids it created are added to C{created_ids}.
        """
        command = Command(
            kind=WRITE_COMMAND,
            args={"method": method, "account": account_id, "args": args, "createdIds": dict(created_ids), "now": self.now()},
            body=body,
        )
        d = self.propose(command)
        d.addCallbacks(lambda result: _unpack(result, created_ids), _unavailable)
        return d


def _unpack(result: Any, created_ids: Dict) -> List[Tuple[str, Dict]]:
    if isinstance(result, Refused):
        if result.code == "methodError" and isinstance(result.payload, dict):
            payload = dict(result.payload)
            raise MethodError(payload.pop("type"), payload.pop("description", None), **payload)
        raise MethodError("serverFail", result.detail)
    created_ids.update(result["createdIds"])
    return [(name, args) for name, args in result["responses"]]


def _unavailable(failure):
    if failure.check(MethodError):
        return failure
    # Lost leadership, shutting down, or a failed disk: the write did not
    # happen and the client may retry (RFC 8620 3.6.2 serverUnavailable).
    raise MethodError("serverUnavailable", str(failure.value) or failure.type.__name__)
