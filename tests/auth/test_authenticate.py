"""Tests for L{stalwart.auth.authenticate}."""

import base64

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.auth.authenticate import Authenticator, Principal, TooManyFailures, Unauthorized, token_digest
from stalwart.auth.ratelimit import FailureLimiter
from stalwart.store.accounts import find_login


class FakeReader:
    """Answers find_login / find_by_token from dicts, counting reads; can hold answers back."""

    def __init__(self):
        self.logins = {"alice": ("A1", "alice", "hash:s3cret")}
        self.tokens = {token_digest("tok"): ("A1", "alice")}
        self.reads = 0
        self.held = None

    def run(self, fn, arg):
        self.reads += 1
        answer = self.logins.get(arg) if fn is find_login else self.tokens.get(arg)
        if self.held is not None:
            d = self.held = Deferred()
            d.answer = answer
            return d
        return maybeDeferred(lambda: answer)


def verify(function, password, stored):
    return maybeDeferred(lambda: stored == "hash:" + password)


def basic(user, password):
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class AuthenticatorTests(SynchronousTestCase):
    def setUp(self):
        self.reader = FakeReader()
        self.clock = Clock()
        self.auth = Authenticator(self.reader, verify, self.clock, secret=b"k" * 32,
                                  limiter=FailureLimiter(failures_max=3, window_seconds=60))

    def login(self, header, client="10.0.0.1"):
        return self.auth.authenticate(header, client)

    def test_basic_and_cache(self):
        """Right credentials give the principal; repeating them reads nothing (RFC 7617)."""
        self.assertEqual(self.successResultOf(self.login(basic("alice", "s3cret"))), Principal("A1", "alice"))
        self.successResultOf(self.login(basic("alice", "s3cret")))
        self.assertEqual(self.reader.reads, 1)

    def test_wrong_password_never_cached(self):
        """A wrong password fails every time, checked each time."""
        self.successResultOf(self.login(basic("alice", "s3cret")))
        self.failureResultOf(self.login(basic("alice", "nope")), Unauthorized)
        self.assertEqual(self.reader.reads, 2)

    def test_change_forgets(self):
        """After an account change, credentials are checked against the store again."""
        self.successResultOf(self.login(basic("alice", "s3cret")))
        self.reader.logins["alice"] = ("A1", "alice", "hash:new")
        self.auth.accounts_changed()
        self.failureResultOf(self.login(basic("alice", "s3cret")), Unauthorized)
        self.successResultOf(self.login(basic("alice", "new")))

    def test_check_racing_a_change_not_remembered(self):
        """A check that read the store before a change is answered but not remembered."""
        self.reader.held = True
        d = self.login(basic("alice", "s3cret"))
        held = self.reader.held
        self.auth.accounts_changed()
        self.reader.held = None
        held.callback(held.answer)
        self.successResultOf(d)
        self.reader.logins["alice"] = ("A1", "alice", "hash:new")
        self.failureResultOf(self.login(basic("alice", "s3cret")), Unauthorized)

    def test_bearer(self):
        """A known bearer token authenticates (RFC 6750); an unknown one does not."""
        self.assertEqual(self.successResultOf(self.login(b"Bearer tok")), Principal("A1", "alice"))
        self.failureResultOf(self.login(b"Bearer other"), Unauthorized)

    def test_rate_limit(self):
        """After repeated failures from one address even the right password waits, then works again."""
        for _ in range(3):
            self.failureResultOf(self.login(basic("alice", "x")), Unauthorized)
        failure = self.failureResultOf(self.login(basic("alice", "s3cret")), TooManyFailures)
        self.assertGreater(failure.value.retry_after, 0)
        self.successResultOf(self.login(basic("alice", "s3cret"), client="10.0.0.2"))
        self.clock.advance(61)
        self.successResultOf(self.login(basic("alice", "s3cret")))

    def test_missing_and_malformed(self):
        """No header asks for credentials; a malformed one is a counted failure."""
        self.failureResultOf(self.login(None), Unauthorized)
        self.failureResultOf(self.login(b"Basic !!!"), Unauthorized)
