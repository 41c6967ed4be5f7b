# -*- test-case-name: tests.jmap.test_patch -*-
"""
Applying a JMAP PatchObject (RFC 8620 section 5.3, the C{update} argument
of C{/set}).

A PatchObject maps JSON Pointers, written without their leading C{"/"}, to
values: C{null} removes the property (a no-op if it is absent), anything
else sets it.  A patch is invalid (C{invalidPatch}) when a pointer
  - reaches into an array (arrays are replaced whole),
  - has a part before the last that does not exist on the object, or
  - is a prefix of another pointer in the same patch.
Because no pointer may be a prefix of another, the patches are independent
and their order does not matter.

Setting a property to its default instead of removing it on C{null} is the
method's business: it knows the defaults, this module does not.
"""

from __future__ import annotations

import copy

from stalwart.jmap.pointer import PointerError, unescape_token

__all__ = ["PatchError", "apply_patch"]


class PatchError(ValueError):
    """
    A PatchObject is invalid; the method answers with an C{invalidPatch}
    SetError.

    @ivar property: the offending key of the patch, as the client wrote it,
        or C{None} if the patch as a whole is not an object.
    @ivar reason: what is wrong with it, for the SetError's description.
    """

    def __init__(self, property: str | None, reason: str) -> None:
        super().__init__(property, reason)
        self.property = property
        self.reason = reason

    def __str__(self) -> str:
        if self.property is None:
            return self.reason
        return f"{self.property!r}: {self.reason}"


def _parse_key(key: str) -> tuple[str, ...]:
    try:
        return tuple(unescape_token(token) for token in key.split("/"))
    except PointerError as e:
        raise PatchError(key, str(e)) from e


def _check_prefixes(paths: dict[str, tuple[str, ...]]) -> None:
    """
    Raise L{PatchError} if one path is a proper prefix of another.  Sorting
    the token tuples puts every prefix right before some path it prefixes,
    so checking neighbours is enough.
    """
    ordered = sorted(paths.items(), key=lambda item: item[1])
    for (short_key, short), (long_key, long) in zip(ordered, ordered[1:]):
        if long[: len(short)] == short:
            raise PatchError(long_key, f"conflicts with {short_key!r} in the same patch")


def _parent(result: dict, original: dict, key: str, path: tuple[str, ...]) -> dict:
    """
    Walk C{result} down to the object holding the last token of C{path},
    copying each object on the way so that C{original} is left alone.
    """
    node = result
    source: object = original
    for depth, token in enumerate(path[:-1]):
        child = source.get(token) if isinstance(source, dict) else None
        if isinstance(child, list):
            raise PatchError(key, "a patch may not reach inside an array")
        if not isinstance(child, dict):
            where = "/".join(path[: depth + 1])
            raise PatchError(key, f"{where!r} is not an object on the patched record")
        if node[token] is child:  # not yet copied by an earlier patch
            node[token] = dict(child)
        node = node[token]
        source = child
    return node


def apply_patch(obj: dict, patch: dict) -> dict:
    """
    Apply a PatchObject (RFC 8620 5.3).

    @param obj: the record as a JSON object.  It is not modified.
    @param patch: the PatchObject from the client.
    @return: a new object; every object on a patched path is a copy, the
        values set are deep copies of the patch's, and the rest is shared
        with C{obj}.
    @raise PatchError: if the patch is invalid.  Every key is checked before
        anything is applied.
    """
    if not isinstance(patch, dict):
        raise PatchError(None, "a PatchObject must be an object")
    paths = {key: _parse_key(key) for key in patch}
    _check_prefixes(paths)
    result = dict(obj)
    for key, path in paths.items():
        parent = _parent(result, obj, key, path)
        value = patch[key]
        if value is None:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return result
