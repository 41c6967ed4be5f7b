"""Tests for the per-account concurrency limits and write-path errors of L{stalwart.jmap.resource}."""

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.raft.core import NotLeader
from stalwart.cluster.raft.driver import StorageFailed
from stalwart.jmap.errors import RequestError
from stalwart.jmap.http import HttpError
from stalwart.jmap.resource import _InFlight, _unavailable


class InFlightTests(SynchronousTestCase):
    def test_limit_per_account(self) -> None:
        """Past the limit an account gets the RFC 8620 3.6.1 limit error naming it; others are unaffected; leaving frees a slot."""
        in_flight = _InFlight("maxConcurrentUpload", 2)
        in_flight.enter("A1")
        in_flight.enter("A1")
        with self.assertRaises(RequestError) as caught:
            in_flight.enter("A1")
        self.assertEqual((caught.exception.limit, caught.exception.status), ("maxConcurrentUpload", 400))
        in_flight.enter("A2")
        in_flight.leave("A1")
        in_flight.enter("A1")


class UnavailableTests(SynchronousTestCase):
    def test_write_path_errors_are_503(self) -> None:
        """No leader or a failed disk answers 503 with Retry-After, so clients retry."""
        for error in (NotLeader(None), StorageFailed("disk")):
            with self.assertRaises(HttpError) as caught:
                _unavailable(Failure(error))
            self.assertEqual(caught.exception.status, 503)
            self.assertIn(b"retry-after", caught.exception.extra["headers"])

    def test_other_errors_pass(self) -> None:
        """Anything else is not hidden behind a 503."""
        failure = Failure(KeyError("x"))
        self.assertRaises(Exception, _unavailable, failure)
        with self.assertRaises(KeyError):
            _unavailable(failure)
