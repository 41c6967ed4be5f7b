# -*- test-case-name: tests.jmap.test_session -*-
"""
The JMAP Session object (RFC 8620 section 2) and the core capability
object (RFC 8620 section 2, C{urn:ietf:params:jmap:core}).

Everything here is pure: the HTTP shell gathers the accounts, URLs and
limits, and serves what L{session_object} builds.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping, Sequence

import attrs

from stalwart.jmap.ids import is_valid_id

__all__ = [
    "CORE_CAPABILITY",
    "AccountInfo",
    "core_capability",
    "session_object",
    "session_state",
]

CORE_CAPABILITY = "urn:ietf:params:jmap:core"

DEFAULT_COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")

_TEMPLATE_VARIABLES = {
    "downloadUrl": ("accountId", "blobId", "type", "name"),
    "uploadUrl": ("accountId",),
    "eventSourceUrl": ("types", "closeafter", "ping"),
}

STATE_HEX_DIGITS = 12
"""Length of a session state string: 48 bits of SHA-256, short as RFC 8620
2 prefers, and far more than enough to tell one user's sessions apart."""


@attrs.frozen
class AccountInfo:
    """
    One account the user can access, as listed in the Session object.

    @ivar id: the account id (an Id, RFC 8620 1.2).
    @ivar name: a user-friendly name, e.g. the owner's email address.
    @ivar is_personal: whether the account belongs to the authenticated user.
    @ivar is_read_only: whether the whole account is read-only.
    @ivar account_capabilities: capability URI to this account's limits for
        it; only capabilities whose methods the user may use here.
    """

    id: str
    name: str
    is_personal: bool
    is_read_only: bool
    account_capabilities: Mapping[str, dict]

    def to_json(self) -> dict:
        """
        @return: the Account object (RFC 8620 2), without its id (the key).
        """
        return {
            "name": self.name,
            "isPersonal": self.is_personal,
            "isReadOnly": self.is_read_only,
            "accountCapabilities": {uri: dict(v) for uri, v in self.account_capabilities.items()},
        }


def _unsigned(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**53 - 1:
        raise ValueError(f"{name} must be an UnsignedInt, not {value!r}")
    return value


def core_capability(
    *,
    max_size_upload: int,
    max_concurrent_upload: int,
    max_size_request: int,
    max_concurrent_requests: int,
    max_calls_in_request: int,
    max_objects_in_get: int,
    max_objects_in_set: int,
    collation_algorithms: Sequence[str] = DEFAULT_COLLATIONS,
) -> dict:
    """
    Build the C{urn:ietf:params:jmap:core} capability object (RFC 8620 2).

    @param max_size_upload: largest upload accepted, in octets.
    @param max_concurrent_upload: concurrent requests to the upload endpoint.
    @param max_size_request: largest API request body, in octets.
    @param max_concurrent_requests: concurrent requests to the API endpoint.
    @param max_calls_in_request: method calls in one request.
    @param max_objects_in_get: ids in one C{/get}.
    @param max_objects_in_set: creates, updates and destroys in one C{/set}.
    @param collation_algorithms: RFC 4790 collation names for sorting.
    @raise ValueError: if a limit is not an UnsignedInt (RFC 8620 1.3).
    """
    return {
        "maxSizeUpload": _unsigned("maxSizeUpload", max_size_upload),
        "maxConcurrentUpload": _unsigned("maxConcurrentUpload", max_concurrent_upload),
        "maxSizeRequest": _unsigned("maxSizeRequest", max_size_request),
        "maxConcurrentRequests": _unsigned("maxConcurrentRequests", max_concurrent_requests),
        "maxCallsInRequest": _unsigned("maxCallsInRequest", max_calls_in_request),
        "maxObjectsInGet": _unsigned("maxObjectsInGet", max_objects_in_get),
        "maxObjectsInSet": _unsigned("maxObjectsInSet", max_objects_in_set),
        "collationAlgorithms": list(collation_algorithms),
    }


def session_state(session: Mapping[str, object]) -> str:
    """
    A short state string derived from a Session object's content
    (RFC 8620 2): it changes whenever any other property changes, and is
    the same on every node of a cluster for the same content.  The URLs
    are left out: each node gives its own, and a client sent from one node
    to the leader must not see the session change with every redirect
    (it would fetch the session again each time).

    @param session: a Session object; its own C{state}, if any, is ignored.
    @return: the first L{STATE_HEX_DIGITS} hex digits of the SHA-256 of
        the canonical JSON (sorted keys, no spaces) of the rest.
    """
    content = {key: value for key, value in session.items() if key != "state" and not key.endswith("Url")}
    capabilities = content.get("capabilities")
    if isinstance(capabilities, dict):
        content["capabilities"] = {
            uri: ({k: v for k, v in value.items() if k != "url"} if isinstance(value, dict) else value)
            for uri, value in capabilities.items()
        }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:STATE_HEX_DIGITS]


def _check_template(property: str, url: str) -> None:
    for variable in _TEMPLATE_VARIABLES[property]:
        if "{" + variable + "}" not in url:
            raise ValueError(f"{property} {url!r} lacks the variable {{{variable}}}")


def _primary_accounts(capabilities: Mapping[str, dict], accounts: Sequence[AccountInfo]) -> dict:
    """
    Map each capability (other than core) to the first personal account
    that has it in its C{accountCapabilities}; a capability no personal
    account offers (like C{https://example.com/apis/foobar} in the RFC's
    example) gets no entry.
    """
    primary = {}
    for uri in capabilities:
        if uri == CORE_CAPABILITY:
            continue
        for account in accounts:
            if account.is_personal and uri in account.account_capabilities:
                primary[uri] = account.id
                break
    return primary


def session_object(
    *,
    username: str,
    accounts: Sequence[AccountInfo],
    capabilities: Mapping[str, dict],
    api_url: str,
    download_url: str,
    upload_url: str,
    event_source_url: str,
    state: str | None = None,
) -> dict:
    """
    Build the Session object (RFC 8620 2).

    @param username: the authenticated username, or C{""}.
    @param accounts: the accounts the user may access, personal first.
    @param capabilities: every capability of the server, by URI; it must
        include L{CORE_CAPABILITY} and every account's capabilities.
    @param download_url: URI template with C{{accountId}}, C{{blobId}},
        C{{type}} and C{{name}} (RFC 8620 6.2).
    @param upload_url: URI template with C{{accountId}} (RFC 8620 6.1).
    @param event_source_url: URI template with C{{types}}, C{{closeafter}}
        and C{{ping}} (RFC 8620 7.3).
    @param state: the state string; by default L{session_state} of the rest.
    @raise ValueError: if the inputs break a MUST of RFC 8620 2; these come
        from configuration and code, never from a client.
    """
    if CORE_CAPABILITY not in capabilities:
        raise ValueError(f"capabilities must include {CORE_CAPABILITY}")
    ids = [account.id for account in accounts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate account ids in {ids!r}")
    for account in accounts:
        if not is_valid_id(account.id):
            raise ValueError(f"account id {account.id!r} is not a valid Id")
        unknown = set(account.account_capabilities) - set(capabilities)
        if unknown:
            raise ValueError(f"account {account.id} has capabilities the server lacks: {sorted(unknown)}")
    _check_template("downloadUrl", download_url)
    _check_template("uploadUrl", upload_url)
    _check_template("eventSourceUrl", event_source_url)
    session: dict = {
        "capabilities": {uri: dict(value) for uri, value in capabilities.items()},
        "accounts": {account.id: account.to_json() for account in accounts},
        "primaryAccounts": _primary_accounts(capabilities, accounts),
        "username": username,
        "apiUrl": api_url,
        "downloadUrl": download_url,
        "uploadUrl": upload_url,
        "eventSourceUrl": event_source_url,
    }
    session["state"] = session_state(session) if state is None else state
    return session
