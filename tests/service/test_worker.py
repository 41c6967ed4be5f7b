"""Tests for L{stalwart.service.worker}."""

import threading

from twisted.trial.unittest import SynchronousTestCase

from stalwart.service.worker import ThreadWorker


class ThreadWorkerTests(SynchronousTestCase):
    def setUp(self):
        self.delivered = []
        self.worker = ThreadWorker("test-worker", lambda f, *a: self.delivered.append((f, a)))
        self.worker.start()
        self.addCleanup(self.worker.stop)

    def deliver(self):
        self.worker.stop()
        for f, args in self.delivered:
            f(*args)

    def test_runs_in_order_on_its_thread(self):
        """Calls run one after another on the worker's own thread, in submission order."""
        seen = []
        ds = [self.worker(lambda i=i: seen.append((i, threading.current_thread().name)) or i) for i in range(5)]
        self.deliver()
        self.assertEqual([self.successResultOf(d) for d in ds], list(range(5)))
        self.assertEqual(seen, [(i, "test-worker") for i in range(5)])

    def test_results_delivered_through_reactor(self):
        """Results are handed to call_from_thread, not fired on the worker thread."""
        d = self.worker(lambda: 42)
        self.worker.stop()
        self.assertNoResult(d)
        self.delivered[0][0](*self.delivered[0][1])
        self.assertEqual(self.successResultOf(d), 42)

    def test_errors(self):
        """An exception becomes the Deferred's failure and the thread keeps going."""
        bad = self.worker(lambda: 1 / 0)
        good = self.worker(lambda: "ok")
        self.deliver()
        self.failureResultOf(bad, ZeroDivisionError)
        self.assertEqual(self.successResultOf(good), "ok")
