# -*- test-case-name: tests.jmap.test_pointer -*-
"""
JSON Pointer (RFC 6901) with the JMAP C{"*"} extension, and the result
references of RFC 8620 section 3.7 built on it.
"""

from __future__ import annotations

import copy
from typing import Sequence

from stalwart.jmap.errors import MethodError
from stalwart.jmap.request import Invocation

__all__ = ["PointerError", "parse_pointer", "evaluate", "resolve_references"]


class PointerError(ValueError):
    """
    A JSON Pointer is malformed, or names something the value lacks.
    """


def unescape_token(token: str) -> str:
    """
    Undo the RFC 6901 section 4 escapes of one reference token: C{"~1"} is
    C{"/"} and C{"~0"} is C{"~"}, decoded in that order so that C{"~01"}
    means C{"~1"}.

    @raise PointerError: on a C{"~"} not followed by C{"0"} or C{"1"}, which
        RFC 6901 section 3 does not allow.
    """
    if "~" not in token:
        return token
    pieces = token.split("~")
    for piece in pieces[1:]:
        if not piece or piece[0] not in "01":
            raise PointerError(f"bad escape in reference token {token!r}")
    return token.replace("~1", "/").replace("~0", "~")


def parse_pointer(pointer: str) -> list[str]:
    """
    Split a JSON Pointer into unescaped reference tokens.

    @return: the tokens; C{[]} for C{""}, the whole document.
    @raise PointerError: if the pointer is not a string, is neither empty nor
        starts with C{"/"}, or has a bad escape.
    """
    if not isinstance(pointer, str):
        raise PointerError(f"a pointer must be a string, not {type(pointer).__name__}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"pointer {pointer!r} does not start with '/'")
    return [unescape_token(token) for token in pointer[1:].split("/")]


def _array_index(token: str, array: list) -> int:
    """
    The array index a token names (RFC 6901 section 4): decimal digits
    without leading zeros, inside the array.  C{"-"} (past the end) and
    anything else are errors when evaluating.
    """
    if not token.isascii() or not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PointerError(f"{token!r} is not an array index")
    index = int(token)
    if index >= len(array):
        raise PointerError(f"index {index} is past the end of an array of {len(array)}")
    return index


def _evaluate_tokens(tokens: Sequence[str], value: object) -> object:
    for position, token in enumerate(tokens):
        if isinstance(value, dict):
            if token not in value:
                raise PointerError(f"no member {token!r}")
            value = value[token]
        elif isinstance(value, list):
            if token == "*":
                # RFC 8620 3.7: map the rest over every item, and splice in
                # the items' results that are themselves arrays.
                rest = tokens[position + 1 :]
                mapped: list = []
                for item in value:
                    result = _evaluate_tokens(rest, item)
                    if isinstance(result, list):
                        mapped.extend(result)
                    else:
                        mapped.append(result)
                return mapped
            value = value[_array_index(token, value)]
        else:
            raise PointerError(f"cannot look up {token!r} in a {type(value).__name__}")
    return value


def evaluate(pointer: str, value: object) -> object:
    """
    Evaluate a JSON Pointer against a JSON value (RFC 6901 section 4), where
    on an array the token C{"*"} maps the rest of the pointer over every item
    and flattens the results that are arrays (RFC 8620 3.7).

    @param pointer: e.g. C{"/list/*/threadId"}.
    @param value: a decoded JSON value (dicts, lists, scalars).
    @return: the referenced value.  It may share structure with C{value}.
    @raise PointerError: if the pointer is malformed or the path is missing.
    """
    return _evaluate_tokens(parse_pointer(pointer), value)


def _invalid_reference(key: str, why: str) -> MethodError:
    return MethodError("invalidResultReference", f"{key}: {why}")


def _resolve_one(key: str, reference: object, previous: Sequence[Invocation]) -> object:
    if not isinstance(reference, dict):
        raise _invalid_reference(key, "a ResultReference must be an object")
    for field in ("resultOf", "name", "path"):
        if not isinstance(reference.get(field), str):
            raise _invalid_reference(key, f"ResultReference property {field!r} must be a string")
    result_of, name, path = reference["resultOf"], reference["name"], reference["path"]
    responses = [r for r in previous if r.call_id == result_of]
    if not responses:
        raise _invalid_reference(key, f"no earlier response has method call id {result_of!r}")
    # RFC 8620 3.7 step 2 compares the name with the FIRST response of that
    # call id only.  A call may emit several responses (e.g. Foo/copy then an
    # implicit Foo/set), so we pick the first one with the wanted name: every
    # reference the RFC's rule resolves, this one resolves the same way.
    for response in responses:
        if response.name == name:
            break
    else:
        raise _invalid_reference(
            key, f"no response named {name!r} for method call id {result_of!r}"
        )
    try:
        return copy.deepcopy(evaluate(path, response.arguments))
    except PointerError as e:
        raise _invalid_reference(key, f"path {path!r}: {e}") from e


def resolve_references(arguments: dict, previous: Sequence[Invocation]) -> dict:
    """
    Replace every C{"#name"} argument holding a ResultReference with C{name}
    holding its value (RFC 8620 3.7).

    @param arguments: the arguments of a method call.
    @param previous: the method responses of the request so far, in order.
    @return: new arguments without C{"#"} keys; C{arguments} itself when it
        has none.  Resolved values are copies, so a method may change them
        without changing earlier responses.
    @raise MethodError: C{invalidArguments} if both C{"foo"} and C{"#foo"}
        are present; C{invalidResultReference} if a reference is malformed or
        fails to resolve.
    """
    references = [key for key in arguments if key.startswith("#")]
    if not references:
        return arguments
    for key in references:
        if key[1:] in arguments:
            raise MethodError(
                "invalidArguments",
                f"argument {key[1:]!r} is given both directly and as a result reference",
            )
    resolved = {key: value for key, value in arguments.items() if not key.startswith("#")}
    for key in references:
        resolved[key[1:]] = _resolve_one(key, arguments[key], previous)
    return resolved
