# -*- test-case-name: tests.auth.test_authenticate -*-
"""
Who is making an HTTP request: HTTP Basic (RFC 7617) against the account
password, or a Bearer token (RFC 6750) issued through the admin API.

scrypt is deliberately slow, so verification runs on a thread, and a
successful check is remembered (keyed by a digest of the password under a
per-process secret, never the password itself) together with the account
it proved, as are checked bearer tokens.  The memory is dropped whenever an
account or token changes (L{Authenticator.accounts_changed}), so a request
with known credentials costs no database read.  Failures are counted per client address; past the limit the
client must wait (HTTP 429 with Retry-After) even with the right password,
which is what stops guessing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Dict, Optional, Tuple

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks, returnValue

from stalwart.auth.header import BadAuthorization, Basic, parse_authorization
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
        self._limiter = limiter if limiter is not None else FailureLimiter()  # (an empty limiter is falsy)
        self._cache: Dict[Tuple[str, bytes], Principal] = {}
        self._cache_max = cache_max
        self._generation = 0

    def accounts_changed(self) -> None:
        """An account, password or token changed: forget what was checked."""
        self._cache.clear()
        self._generation += 1

    def _remember(self, key, principal: Principal, generation: int) -> None:
        if generation != self._generation:
            return  # checked against data that has changed since
        if len(self._cache) >= self._cache_max:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = principal

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
        if isinstance(credentials, Basic):
            key = (credentials.username, self._digest(credentials.password))
        else:
            key = ("", token_digest(credentials.token).encode())
        principal = self._cache.get(key)
        if principal is None:
            generation = self._generation
            if isinstance(credentials, Basic):
                principal = yield self._check_password(credentials.username, credentials.password)
            else:
                row = yield self._reader.run(find_by_token, key[1].decode())
                if row is not None:
                    principal = Principal(account_id=row[0], name=row[1])
            if principal is not None:
                self._remember(key, principal, generation)
        if principal is None:
            self._limiter.record_failure(client, self._clock.seconds())
            raise Unauthorized("wrong credentials")
        self._limiter.record_success(client, self._clock.seconds())
        returnValue(principal)

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest()

    @inlineCallbacks
    def _check_password(self, login: str, password: str):
        row = yield self._reader.run(find_login, login)
        if row is None:
            returnValue(None)
        account_id, name, stored = row
        ok = yield self._verify(verify_password, password, stored)
        returnValue(Principal(account_id=account_id, name=name) if ok else None)
