# -*- test-case-name: tests.jmap.test_routing -*-
"""
Where a JMAP request is served in a cluster (DESIGN.md section 3, Reads
and Writes): here, on the leader through a redirect, or nowhere for now.

Pure functions of the request's kind and the node's view of the cluster,
so the HTTP resources and the cluster share one decision:

  - a write (a request with any write method, or an upload) is served by
    the leader; a non-leader answers with a redirect to the leader's
    jmap-url plus the same path and query;
  - a read is served by any node that is up to date with the leader's log;
    a node that is behind waits a little, and if it is still behind the
    read goes to the leader too;
  - with no leader known, a request that needs one gets 503 with
    Retry-After.

A single node is always its own leader, so there everything is served.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import attrs

__all__ = [
    "REDIRECT_STATUSES", "WRITE_SUFFIXES", "Redirect", "Serve", "Unavailable", "is_write_request", "route",
]

#: A method whose name ends with one of these changes state: every C{/set}
#: (Email/set, Mailbox/set, EmailSubmission/set, PushSubscription/set,
#: Identity/set, VacationResponse/set...), every C{/copy} (Email/copy,
#: Blob/copy) and every C{/import} (Email/import).  The rest (/get,
#: /changes, /query, /queryChanges, /parse, Core/echo, SearchSnippet/get,
#: Blob/get, Blob/lookup) only read.
WRITE_SUFFIXES = ("/set", "/copy", "/import")

#: The redirect statuses a write may be sent on with (redirect-status):
#: 302 (the default; clients resend a POST as a POST in practice) or the
#: method-preserving 307 and 308.
REDIRECT_STATUSES = (302, 307, 308)

#: Seconds a client is told to wait when no leader is known: about one
#: election timeout, after which a new leader is usually in place.
NO_LEADER_RETRY_AFTER = 1


def is_write_request(method_names: Sequence[str]) -> bool:
    """
    Whether a JMAP request with these method names needs the leader: true
    if any name ends with one of L{WRITE_SUFFIXES}.  The whole request
    goes to the leader, its reads too, so back-references between calls
    keep working.
    """
    return any(name.endswith(WRITE_SUFFIXES) for name in method_names)


@attrs.frozen
class Serve:
    """Serve the request on this node."""


@attrs.frozen
class Redirect:
    """
    Send the client to the leader.

    @ivar status: 302, 307 or 308.
    @ivar location: the leader's jmap-url plus the request's path and query.
    """

    status: int
    location: str


@attrs.frozen
class Unavailable:
    """No node can serve it now: 503 with C{Retry-After: retry_after_seconds}."""

    retry_after_seconds: int


Decision = Union[Serve, Redirect, Unavailable]

_SERVE = Serve()


def route(
    *, write: bool, is_leader: bool, leader_url: Optional[str], caught_up: bool, path_and_query: bytes,
    redirect_status: int = 302,
) -> Decision:
    """
    Decide where one request is served.

    @param write: the request writes (L{is_write_request}) or is an upload.
    @param is_leader: this node is the leader now.
    @param leader_url: the leader's jmap-url, or C{None} if no leader is known.
    @param caught_up: for a read on a non-leader: C{True} if this node is up
        to date with the leader's log.  A node that is behind waits briefly
        for its log to catch up, then calls again with C{False} ("still
        behind"), and the read is redirected like a write.
    @param path_and_query: the request's URI as received (path and query),
        appended to C{leader_url} in the redirect.
    @param redirect_status: 302, 307 or 308.
    """
    if redirect_status not in REDIRECT_STATUSES:
        raise ValueError(f"redirect status must be one of {REDIRECT_STATUSES}, not {redirect_status!r}")
    if is_leader or (not write and caught_up):
        return _SERVE
    if not leader_url:
        return Unavailable(NO_LEADER_RETRY_AFTER)
    # A URI arrives as bytes; latin-1 keeps every byte as it is.
    return Redirect(redirect_status, leader_url.rstrip("/") + path_and_query.decode("latin-1"))
