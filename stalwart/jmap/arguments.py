# -*- test-case-name: tests.jmap.test_standard -*-
"""
Checking method arguments (RFC 8620 3.6.2: invalidArguments names what is wrong).
"""

from __future__ import annotations

from typing import Any, Mapping

from stalwart.jmap.errors import MethodError
from stalwart.jmap.ids import is_valid_id

__all__ = ["check_arguments", "optional", "required", "unsigned", "id_list"]

_MISSING = object()


def check_arguments(arguments: Mapping[str, Any], allowed: set) -> None:
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise MethodError("invalidArguments", f"unknown argument {unknown[0]!r}", arguments=unknown)


def _type_name(kinds) -> str:
    names = {str: "a String", bool: "a Boolean", int: "an Int", dict: "an object", list: "an array"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def optional(arguments: Mapping[str, Any], name: str, *kinds: type, default: Any = None) -> Any:
    value = arguments.get(name, _MISSING)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) and bool not in kinds:
        raise MethodError("invalidArguments", f"{name} must be {_type_name(kinds)}", arguments=[name])
    if not isinstance(value, kinds):
        raise MethodError("invalidArguments", f"{name} must be {_type_name(kinds)}", arguments=[name])
    return value


def required(arguments: Mapping[str, Any], name: str, *kinds: type) -> Any:
    if arguments.get(name) is None:
        raise MethodError("invalidArguments", f"{name} is required", arguments=[name])
    return optional(arguments, name, *kinds)


def unsigned(arguments: Mapping[str, Any], name: str, default: Any = None, positive: bool = False) -> Any:
    value = optional(arguments, name, int, default=default)
    if value is not None and (value < (1 if positive else 0) or value > 2**53 - 1):
        raise MethodError(
            "invalidArguments", f"{name} must be a {'positive' if positive else 'non-negative'} Int", arguments=[name]
        )
    return value


def id_list(arguments: Mapping[str, Any], name: str, allow_null: bool = True) -> Any:
    value = arguments.get(name)
    if value is None:
        if allow_null:
            return None
        raise MethodError("invalidArguments", f"{name} is required", arguments=[name])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MethodError("invalidArguments", f"{name} must be an array of Ids", arguments=[name])
    return value


def is_id_or_reference(value: object) -> bool:
    """An Id, or "#creationId" standing for one created earlier in the request."""
    return isinstance(value, str) and (is_valid_id(value) or (value[:1] == "#" and is_valid_id(value[1:])))
