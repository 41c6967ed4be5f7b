# -*- test-case-name: tests.jmap.test_standard -*-
"""
What the standard methods (RFC 8620 section 5) need to know about a data
type: its properties, which of them the server sets, which never change,
how to filter and sort, and the type's own rules for create, update and
destroy.  A data type subclasses L{ObjectType}; the methods live in
L{stalwart.jmap.methods.standard}.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from stalwart.jmap.errors import MethodError, SetError

__all__ = ["Property", "ObjectType", "is_string", "is_bool", "is_uint", "nullable", "collation_key"]


def is_string(value: Any) -> bool:
    return isinstance(value, str)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53 - 1


def nullable(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


@attrs.frozen
class Property:
    name: str
    check: Callable[[Any], bool] = attrs.field(eq=False)
    default: Any = None
    required: bool = False
    server_set: bool = False
    immutable: bool = False
    filterable: bool = False
    sortable: bool = False


COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")


def collation_key(value: Any, collation: str) -> Any:
    """Sort key of C{value} under an RFC 4790 collation (RFC 8620 5.5)."""
    if not isinstance(value, str):
        return value
    if collation == "i;ascii-casemap":
        return value.translate(_ASCII_LOWER)
    if collation == "i;ascii-numeric":
        digits = len(value) - len(value.lstrip("0123456789"))
        return int(value[:digits]) if digits else float("inf")
    return unicodedata.normalize("NFKD", value).casefold()


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


class ObjectType:
    """A JMAP data type stored with L{stalwart.store.objects}."""

    name: str = ""
    capability: str = ""
    id_prefix: str = "X"
    properties: Tuple[Property, ...] = ()

    def property_map(self) -> Mapping[str, Property]:
        return {p.name: p for p in self.properties}

    # -- rules of the type (override as needed) -----------------------------

    def check_object(self, tx: Any, account_id: str, obj: Dict, old: Optional[Dict]) -> Optional[SetError]:
        """Cross-property rules for a created (C{old} None) or updated object."""
        return None

    def check_destroy(self, tx: Any, account_id: str, object_id: str, obj: Dict, options: Mapping[str, Any]) -> Optional[SetError]:
        """
        Refuse a destroy, or do what it implies (inside the same
        transaction).  C{options} holds the type's extra /set arguments.
        """
        return None

    #: Extra arguments of Foo/set and Foo/query for this type, with their
    #: JSON types (e.g. Mailbox/set onDestroyRemoveEmails: (bool,)).
    set_options: Mapping[str, Tuple[type, ...]] = {}
    query_options: Mapping[str, Tuple[type, ...]] = {}

    def expand(self, conn: Any, account_id: str, objects: Dict[str, Dict]) -> None:
        """Add computed, server-set properties (counts, rights) to objects read for /get."""

    def arrange(self, ids: List[str], objects: Mapping[str, Dict], matching: List[str], options: Mapping[str, Any]) -> List[str]:
        """
        Final order of /query results: C{matching} is filtered and sorted;
        C{ids} is every object sorted the same way (for tree arrangements).
        """
        return matching

    def match(self, obj: Dict, condition: Mapping[str, Any]) -> bool:
        """
        Does C{obj} match a FilterCondition?  The default compares each
        filterable property for equality (strings: case-insensitive
        substring).
        """
        props = self.property_map()
        for key, wanted in condition.items():
            prop = props.get(key)
            if prop is None or not prop.filterable:
                raise MethodError("unsupportedFilter", f"cannot filter on {key!r}")
            value = obj.get(key)
            if isinstance(wanted, str) and isinstance(value, str):
                if collation_key(wanted, "i;unicode-casemap") not in collation_key(value, "i;unicode-casemap"):
                    return False
            elif value != wanted:
                return False
        return True

    def sort_value(self, obj: Dict, prop: str) -> Any:
        spec = self.property_map().get(prop)
        if spec is None or not spec.sortable:
            raise MethodError("unsupportedSort", f"cannot sort on {prop!r}")
        return obj.get(prop)

    # -- used by the standard methods --------------------------------------

    def validate(self, obj: Mapping[str, Any], creating: bool, old: Optional[Mapping[str, Any]] = None) -> Optional[SetError]:
        """Property-level checks of a whole object after create or patch."""
        props = self.property_map()
        bad = []
        for key, value in obj.items():
            prop = props.get(key)
            if prop is None or key == "id":
                if key != "id" or creating:
                    bad.append(key)
                continue
            if prop.server_set and (creating or old is None or old.get(key) != value):
                bad.append(key)
            elif prop.immutable and not creating and old is not None and old.get(key) != value:
                bad.append(key)
            elif not prop.check(value):
                bad.append(key)
        if creating:
            bad.extend(p.name for p in self.properties if p.required and p.name not in obj)
        if bad:
            return SetError("invalidProperties", f"invalid properties: {', '.join(sorted(set(bad)))}", properties=sorted(set(bad)))
        return None

    def with_defaults(self, obj: Mapping[str, Any]) -> Dict[str, Any]:
        full = {p.name: p.default for p in self.properties if not p.server_set and p.name != "id"}
        full.update(obj)
        return full

    def sort_key(self, comparators: Sequence[Mapping[str, Any]]) -> Callable[[Tuple[str, Dict]], Any]:
        def key(item):
            object_id, obj = item
            parts = []
            for comparator in comparators:
                value = collation_key(self.sort_value(obj, comparator["property"]), comparator["collation"])
                parts.append(_Ordered(value, comparator["isAscending"]))
            # Ids of equal length sort like their counters: creation order.
            parts.append(_Ordered((len(object_id), object_id), True))
            return parts

        return key


@attrs.frozen(eq=False)
class _Ordered:
    """A sort key part that sorts None first and can be reversed."""

    value: Any
    ascending: bool

    def _cmp(self, other: "_Ordered") -> int:
        a, b = self.value, other.value
        if a == b:
            return 0
        if a is None or b is None:
            result = -1 if a is None else 1
        else:
            try:
                result = -1 if a < b else 1
            except TypeError:
                result = -1 if str(type(a)) < str(type(b)) else 1
        return result if self.ascending else -result

    def __lt__(self, other: "_Ordered") -> bool:
        return self._cmp(other) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and self._cmp(other) == 0
