# -*- test-case-name: tests.jmap.test_ids -*-
"""
The JMAP C{Id} data type (RFC 8620 section 1.2).

An Id is 1 to 255 octets from the base64url alphabet without padding
(C{A-Za-z0-9-_}).  Server-assigned ids come from counters kept in the
replicated state (DESIGN.md section 1), encoded by L{encode_counter} so that
they also follow the defensive advice of RFC 8620 1.2: they start with a
letter, are never all digits, never contain C{"NIL"}, and two ids with the
same prefix never differ only by case.
"""

from __future__ import annotations

import re

__all__ = ["ID_OCTETS_MAX", "is_valid_id", "encode_counter", "check_creation_id"]

ID_OCTETS_MAX = 255
"""The longest Id, in octets (RFC 8620 1.2)."""

_ID = re.compile(r"[A-Za-z0-9_-]{1,%d}" % (ID_OCTETS_MAX,))

# Crockford's base32 digits, lower case: ascending in ASCII (so ids of equal
# length sort like their counters) and without i, l, o and u, so that no id
# can contain "nil" in any case and none reads like another.
_DIGITS = "0123456789abcdefghjkmnpqrstvwxyz"


def is_valid_id(value: object) -> bool:
    """
    @return: whether C{value} is a C{str} that is a valid JMAP Id
        (RFC 8620 1.2).  Every allowed character is ASCII, so its length in
        characters is its length in octets.
    """
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_creation_id(value: object) -> bool:
    """
    @return: whether C{value} is a valid creation id: the keys of C{create}
        are of type C{Id} (RFC 8620 5.3), and a C{"#"} followed by one refers
        to the record created under it.  C{value} excludes the C{"#"}.
    """
    return is_valid_id(value)


def encode_counter(prefix: str, n: int) -> str:
    """
    Encode a counter as a compact, deterministic Id.

    @param prefix: one ASCII letter naming the kind of record (e.g. C{"M"}
        for mailboxes), so that the id never starts with a digit or a dash.
    @param n: the counter, C{>= 0}.
    @return: C{prefix} followed by C{n} in lower-case Crockford base32.
    @raise ValueError: if C{prefix} is not one ASCII letter or C{n} is
        negative or too large for a 255-octet Id.  Both come from the
        caller's code, never from a client.
    """
    if len(prefix) != 1 or not ("a" <= prefix.lower() <= "z"):
        raise ValueError(f"id prefix must be one ASCII letter, not {prefix!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"id counter must be a non-negative int, not {n!r}")
    digits = []
    while True:
        n, digit = divmod(n, 32)
        digits.append(_DIGITS[digit])
        if n == 0:
            break
    if len(digits) >= ID_OCTETS_MAX:
        raise ValueError("id counter too large")
    return prefix + "".join(reversed(digits))
