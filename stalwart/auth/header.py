# -*- test-case-name: tests.auth.test_header -*-
"""
Parse the HTTP C{Authorization} header: C{Basic} (RFC 7617) and C{Bearer}
(RFC 6750 section 2.1).

Pure functions on bytes. Malformed input raises L{BadAuthorization} with a
message safe to return to the client; it never contains the credentials.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Optional, Union

import attrs

__all__ = ["Basic", "Bearer", "BadAuthorization", "parse_authorization"]

HEADER_BYTES_MAX = 8192
"""Longest header value accepted; longer ones are refused before decoding."""

_TOKEN68 = re.compile(rb"^[A-Za-z0-9\-._~+/]+=*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadAuthorization(Exception):
    """
    The C{Authorization} header is malformed; the message says how.
    """


@attrs.frozen
class Basic:
    """
    Credentials of the C{Basic} scheme.
    """

    username: str
    password: str = attrs.field(repr=False)


@attrs.frozen
class Bearer:
    """
    A token of the C{Bearer} scheme.
    """

    token: str = attrs.field(repr=False)


def parse_authorization(value: Optional[bytes]) -> Union[Basic, Bearer, None]:
    """
    Parse an C{Authorization} header value.

    @param value: The raw header value, or C{None} if the header is absent.
    @return: L{Basic} or L{Bearer}, or C{None} when there is no header.
    @raise BadAuthorization: For an empty or over-long value, an unknown
        scheme, bad base64, Basic credentials without a colon or not UTF-8,
        or a Bearer token that is not token68.
    """
    if value is None:
        return None
    if len(value) > HEADER_BYTES_MAX:
        raise BadAuthorization("Authorization header too long")
    scheme, _, credentials = value.strip().partition(b" ")
    credentials = credentials.strip()
    if not scheme:
        raise BadAuthorization("empty Authorization header")
    if not credentials:
        raise BadAuthorization("Authorization header has no credentials")
    if not _TOKEN68.match(credentials):
        raise BadAuthorization("credentials are not base64 or token68")
    scheme_name = scheme.lower()
    if scheme_name == b"basic":
        return _basic(credentials)
    if scheme_name == b"bearer":
        return Bearer(credentials.decode("ascii"))
    raise BadAuthorization("unsupported authorization scheme; use Basic or Bearer")


def _basic(credentials: bytes) -> Basic:
    try:
        decoded = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        raise BadAuthorization("Basic credentials are not valid base64") from None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadAuthorization("Basic credentials are not UTF-8") from None
    username, colon, password = text.partition(":")
    if not colon:
        raise BadAuthorization("Basic credentials have no ':' between user and password")
    if not username or _CONTROL.search(username):
        raise BadAuthorization("Basic user name is empty or has control characters")
    return Basic(username, password)
