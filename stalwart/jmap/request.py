# -*- test-case-name: tests.jmap.test_request -*-
"""
Parsing the JMAP Request object (RFC 8620 sections 3.2 and 3.3) and the
request-level errors it can raise (RFC 8620 3.6.1).

The body must be I-JSON (RFC 7493): UTF-8, no duplicate member names, no
lone surrogates, and (our reading of "parse as JSON") no C{NaN}, C{Infinity}
or numbers that overflow a double.  Anything else is C{notJSON}.  A JSON
value that is not of the Request type signature is C{notRequest}, with a
detail saying exactly what is wrong and where.

Checks run in this order, so the first problem found is reported: JSON,
then the type signature, then C{using} against the server's capabilities,
then the C{maxCallsInRequest} limit.
"""

from __future__ import annotations

import json
import math
from typing import Collection

import attrs

from stalwart.jmap.errors import RequestError
from stalwart.jmap.ids import is_valid_id

__all__ = ["Invocation", "Request", "parse_request"]


@attrs.frozen
class Invocation:
    """
    A method call or a method response (RFC 8620 3.2).

    @ivar name: the method name, or the response name (C{"error"} for a
        method-level error).
    @ivar arguments: the named arguments.
    @ivar call_id: the method call id, echoed on every response of the call.
    """

    name: str
    arguments: dict
    call_id: str

    def to_json(self) -> list:
        """
        @return: the C{[name, arguments, callId]} triple.
        """
        return [self.name, self.arguments, self.call_id]


@attrs.frozen
class Request:
    """
    A parsed Request object (RFC 8620 3.3).

    @ivar using: the capabilities the client opts into.
    @ivar method_calls: the calls, to run in order.
    @ivar created_ids: the client's initial creation id map, or C{None} if
        the request had no C{createdIds} (then the response has none either).
    """

    using: tuple[str, ...]
    method_calls: tuple[Invocation, ...]
    created_ids: dict | None


_INT_DIGITS_MAX = 400
"""Longest integer literal accepted, in characters: far above any JMAP Int."""


class _NotIJSON(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotIJSON(f"duplicate member name {key!r}")
            seen.add(key)
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotIJSON(f"number {text[:40]} is too large")
    return value


def _bounded_int(text: str) -> int:
    # Python refuses to convert very long digit strings (and says so in a
    # message meant for programmers); no JMAP number needs more than 16.
    if len(text) > _INT_DIGITS_MAX:
        raise _NotIJSON(f"integer of {len(text)} digits is too large")
    return int(text)


def _no_constant(name: str) -> object:
    raise _NotIJSON(f"{name} is not JSON")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_strings(value: object) -> None:
    """
    Reject strings that hold an unpaired surrogate escape (C{"\\ud800"}):
    I-JSON forbids them (RFC 7493 2.1) and they cannot be encoded back.
    Iterative, so deep nesting cannot exhaust the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                raise _NotIJSON("string with an unpaired surrogate")
        elif isinstance(item, dict):
            for key, member in item.items():
                if _has_lone_surrogate(key):
                    raise _NotIJSON("member name with an unpaired surrogate")
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)


def decode_json(body: bytes) -> object:
    """
    Decode an I-JSON body.

    @raise RequestError: C{notJSON} if C{body} is not UTF-8 or not I-JSON.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError.notJSON(f"the request is not UTF-8: {e.reason} at byte {e.start}")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
        )
        _check_strings(value)
    except RecursionError:
        raise RequestError.notJSON("the request is nested too deeply")
    except ValueError as e:  # JSONDecodeError or _NotIJSON
        raise RequestError.notJSON(f"the request is not valid I-JSON: {e}")
    return value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _parse_using(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RequestError.notRequest(f"'using' must be an array of strings, not {_type_name(value)}")
    for index, capability in enumerate(value):
        if not isinstance(capability, str):
            raise RequestError.notRequest(
                f"'using'[{index}] must be a string, not {_type_name(capability)}"
            )
    return tuple(value)


def _parse_invocation(index: int, value: object) -> Invocation:
    where = f"'methodCalls'[{index}]"
    if not isinstance(value, list) or len(value) != 3:
        shape = f"{len(value)} elements" if isinstance(value, list) else _type_name(value)
        raise RequestError.notRequest(
            f"{where} must be an Invocation array [name, arguments, methodCallId], not {shape}"
        )
    name, arguments, call_id = value
    if not isinstance(name, str):
        raise RequestError.notRequest(f"{where}: the method name must be a string, not {_type_name(name)}")
    if not isinstance(arguments, dict):
        raise RequestError.notRequest(f"{where}: the arguments must be an object, not {_type_name(arguments)}")
    if not isinstance(call_id, str):
        raise RequestError.notRequest(
            f"{where}: the method call id must be a string, not {_type_name(call_id)}"
        )
    return Invocation(name, arguments, call_id)


def _parse_created_ids(value: object) -> dict:
    if not isinstance(value, dict):
        raise RequestError.notRequest(f"'createdIds' must be an object, not {_type_name(value)}")
    for creation_id, record_id in value.items():
        if not is_valid_id(creation_id):
            raise RequestError.notRequest(f"'createdIds' key {creation_id!r} is not a valid Id")
        if not is_valid_id(record_id):
            raise RequestError.notRequest(
                f"'createdIds'[{creation_id!r}] must be an Id, not {record_id!r}"
            )
    return dict(value)


def parse_request(
    body: bytes, known_capabilities: Collection[str], max_calls_in_request: int
) -> Request:
    """
    Parse and check a JMAP API request body (RFC 8620 3.3).

    Properties of the Request object other than C{using}, C{methodCalls} and
    C{createdIds} are ignored, as RFC 8620 3.3 requires.

    @param body: the raw HTTP request body.
    @param known_capabilities: the capability URIs of the Session object.
    @param max_calls_in_request: the C{maxCallsInRequest} limit.
    @raise RequestError: C{notJSON}, C{notRequest}, C{unknownCapability} or
        C{limit} (with C{limit="maxCallsInRequest"}).
    """
    value = decode_json(body)
    if not isinstance(value, dict):
        raise RequestError.notRequest(f"the request must be a JSON object, not {_type_name(value)}")
    for required in ("using", "methodCalls"):
        if required not in value:
            raise RequestError.notRequest(f"the request has no {required!r} property")
    using = _parse_using(value["using"])
    calls = value["methodCalls"]
    if not isinstance(calls, list):
        raise RequestError.notRequest(
            f"'methodCalls' must be an array of Invocations, not {_type_name(calls)}"
        )
    method_calls = tuple(_parse_invocation(i, call) for i, call in enumerate(calls))
    created_ids = _parse_created_ids(value["createdIds"]) if "createdIds" in value else None
    for capability in using:
        if capability not in known_capabilities:
            raise RequestError.unknownCapability(
                f"The Request object used capability {capability!r}, "
                "which is not supported by this server."
            )
    if len(method_calls) > max_calls_in_request:
        raise RequestError.limit(
            "maxCallsInRequest",
            f"The request has {len(method_calls)} method calls; "
            f"this server accepts at most {max_calls_in_request}.",
        )
    return Request(using, method_calls, created_ids)
