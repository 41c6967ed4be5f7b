# -*- test-case-name: tests.service.test_maker -*-
"""
One node's working parts, as the HTTP resources see them: the store
reader, the write path, authentication, the dispatcher, the limits.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from twisted.internet.defer import Deferred, succeed

from stalwart.auth.authenticate import Principal
from stalwart.jmap.capabilities import CORE
from stalwart.jmap.context import Limits, RequestContext
from stalwart.jmap.session import AccountInfo, core_capability, session_object
from stalwart.store.commands import Command, encode_command

__all__ = ["Node", "utc_date"]

SESSIONS_CACHED_MAX = 10000
#: Seconds a follower that is behind the leader waits to catch up before
#: it sends a read to the leader: a healthy follower is a heartbeat
#: (100 ms) or less behind.
READ_WAIT_SECONDS = 0.5
#: Capabilities of the server, never of an account (RFC 8887 4.1: WebSocket).
SESSION_ONLY_CAPABILITIES = (CORE, "urn:ietf:params:jmap:websocket")


def utc_date(seconds: float) -> str:
    """RFC 8620 1.4 UTCDate, to the second."""
    moment = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Node:
    def __init__(self, config, clock, store, raft, authenticator, dispatcher, cpu_worker: Callable[..., Deferred], urandom: Callable[[int], bytes], capabilities: Mapping[str, dict] = {}, account_capabilities: Mapping[str, dict] = {}) -> None:
        """
        @param capabilities: server capability objects of the data types served, besides core.
        @param account_capabilities: their objects in each account's accountCapabilities.
        """
        self.config = config
        self.clock = clock
        self.store = store
        self.raft = raft
        self.authenticator = authenticator
        self.dispatcher = dispatcher
        self.cpu_worker = cpu_worker
        self.urandom = urandom
        self.limits = Limits(
            max_objects_in_get=config.max_objects_in_get,
            max_objects_in_set=config.max_objects_in_set,
            query_max_results=config.query_max_results,
            changes_max_results=config.changes_max_results,
        )
        self.capabilities: Dict[str, dict] = {
            CORE: core_capability(
                max_size_upload=config.max_size_upload,
                max_concurrent_upload=config.max_concurrent_requests,
                max_size_request=config.max_size_request,
                max_concurrent_requests=config.max_concurrent_requests,
                max_calls_in_request=config.max_calls_in_request,
                max_objects_in_get=config.max_objects_in_get,
                max_objects_in_set=config.max_objects_in_set,
            )
        }
        for uri, value in capabilities.items():
            self.capabilities.setdefault(uri, dict(value))
        self._account_capabilities = dict(account_capabilities)
        self._now = (None, "")
        #: Session objects by principal: they depend only on it and the
        #: configuration, and building one costs a JSON dump and a hash.
        self._sessions: Dict[Principal, Dict[str, Any]] = {}
        #: The status writes on a non-leader are redirected with (302, 307 or
        #: 308, L{stalwart.jmap.routing}); configured as redirect-status.
        self.redirect_status: int = config.redirect_status
        #: The L{stalwart.service.cluster.ClusterService} of a cluster node:
        #: where the leader is, and how a follower's writes reach it.
        self.cluster = None

    @property
    def reader(self):
        return self.store.reader

    @property
    def blobs(self):
        return self.store.blobs

    def now(self) -> str:
        second = int(self.clock.seconds())
        if second != self._now[0]:
            self._now = (second, utc_date(second))
        return self._now[1]

    def propose(self, command: Command) -> Deferred:
        return self.propose_bytes(encode_command(command))

    def propose_bytes(self, payload: bytes) -> Deferred:
        """Fires with the state machine's result; in a cluster, a follower's proposal runs on the leader."""
        if self.cluster is not None:
            return self.cluster.propose(payload)
        return self.raft.driver.propose(payload)

    def routing_state(self) -> Tuple[bool, Optional[str]]:
        """
        C{(is_leader, leader_url)}, for L{stalwart.jmap.routing.route}: a
        single node is its own leader at its own jmap-url; in a cluster the
        leader's URL comes from the roster.  Tests may replace this per
        instance.
        """
        if self.cluster is not None:
            return self.cluster.routing_state()
        return self.raft.driver.is_leader, self.config.jmap_url

    def catch_up(self) -> Deferred:
        """
        Fires with whether local state is up to date with the leader's log
        (DESIGN.md section 3, Reads), waiting up to L{READ_WAIT_SECONDS}
        for it to catch up; C{False} also when no leader was heard lately.
        """
        d = self.raft.driver.read_barrier()
        d.addTimeout(READ_WAIT_SECONDS, self.clock)
        return d.addCallbacks(lambda _: True, lambda _: False)

    def capability_uris(self):
        return self.capabilities.keys()

    def session_for(self, principal: Principal) -> Deferred:
        session = self._sessions.get(principal)
        if session is None:
            if len(self._sessions) >= SESSIONS_CACHED_MAX:
                self._sessions.pop(next(iter(self._sessions)))
            session = self._sessions[principal] = self._build_session(principal)
        return succeed(session)

    def _build_session(self, principal: Principal) -> Dict[str, Any]:
        base = self.config.jmap_url.rstrip("/")
        account = AccountInfo(
            id=principal.account_id, name=principal.name, is_personal=True, is_read_only=False,
            account_capabilities={
                uri: dict(self._account_capabilities.get(uri, {}))
                for uri in self.capabilities if uri not in SESSION_ONLY_CAPABILITIES
            },
        )
        return session_object(
            username=principal.name,
            accounts=[account],
            capabilities=self.capabilities,
            api_url=f"{base}/jmap/api",
            download_url=f"{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}",
            upload_url=f"{base}/jmap/upload/{{accountId}}/",
            event_source_url=f"{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
        )

    def request_context(self, principal: Principal) -> Deferred:
        def build(session: Dict[str, Any]) -> RequestContext:
            return RequestContext(
                account_id=principal.account_id,
                username=principal.name,
                reader=self.reader,
                propose=self.propose,
                now=self.now,
                limits=self.limits,
                state=session["state"],
                blobs=self.blobs,
            )

        d = self.raft.driver.read_barrier()
        d.addCallback(lambda _: self.session_for(principal))
        return d.addCallback(build)
