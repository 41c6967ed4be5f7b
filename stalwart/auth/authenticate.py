# -*- test-case-name: tests.auth.test_authenticate -*-
"""
Who is making an HTTP request: HTTP Basic (RFC 7617) against the account
password, or a Bearer token (RFC 6750) issued through the admin API.

scrypt is deliberately slow, so verification runs on a thread, and a
successful check is remembered (keyed by a digest of the password under a
per-process secret, never the password itself) until the stored hash
changes.  Failures are counted per client address; past the limit the
client must wait (HTTP 429 with Retry-After) even with the right password,
which is what stops guessing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Dict, Optional, Tuple

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks, returnValue

from stalwart.auth.header import BadAuthorization, Basic, Bearer, parse_authorization
from stalwart.auth.passwords import verify_password
from stalwart.auth.ratelimit import FailureLimiter
from stalwart.store.accounts import find_by_token, find_login

__all__ = ["Principal", "Authenticator", "Unauthorized", "TooManyFailures", "token_digest"]


@attrs.frozen
class Principal:
    account_id: str
    name: str


class Unauthorized(Exception):
    """No or wrong credentials: answer 401 with WWW-Authenticate."""


class TooManyFailures(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Authenticator:
    def __init__(
        self,
        reader,
        verify_worker: Callable[..., Deferred],
        clock,
        secret: bytes,
        limiter: Optional[FailureLimiter] = None,
        cache_max: int = 10000,
    ) -> None:
        """
        @param reader: a L{stalwart.store.reader.Reader}.
        @param verify_worker: runs C{verify_password} off the reactor.
        @param secret: random bytes keying the cache of checked passwords.
        """
        self._reader = reader
        self._verify = verify_worker
        self._clock = clock
        self._secret = secret
        self._limiter = limiter or FailureLimiter()
        self._cache: Dict[Tuple[str, bytes], str] = {}
        self._cache_max = cache_max

    @inlineCallbacks
    def authenticate(self, authorization: Optional[bytes], client: str):
        """Fires with a L{Principal}, or fails with L{Unauthorized} / L{TooManyFailures}."""
        now = self._clock.seconds()
        wait = self._limiter.retry_after(client, now)
        if wait is not None:
            raise TooManyFailures(wait)
        try:
            credentials = parse_authorization(authorization)
        except BadAuthorization as e:
            self._limiter.record_failure(client, now)
            raise Unauthorized(str(e))
        if credentials is None:
            raise Unauthorized("authentication required")
        principal = None
        if isinstance(credentials, Basic):
            principal = yield self._check_password(credentials.username, credentials.password)
        elif isinstance(credentials, Bearer):
            row = yield self._reader.run(find_by_token, token_digest(credentials.token))
            if row is not None:
                principal = Principal(account_id=row[0], name=row[1])
        if principal is None:
            self._limiter.record_failure(client, self._clock.seconds())
            raise Unauthorized("wrong credentials")
        self._limiter.record_success(client, self._clock.seconds())
        returnValue(principal)

    @inlineCallbacks
    def _check_password(self, login: str, password: str):
        row = yield self._reader.run(find_login, login)
        if row is None:
            returnValue(None)
        account_id, name, stored = row
        key = (name, hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest())
        if self._cache.get(key) != stored:
            ok = yield self._verify(verify_password, password, stored)
            if not ok:
                returnValue(None)
            if len(self._cache) >= self._cache_max:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = stored
        returnValue(Principal(account_id=account_id, name=name))
