# -*- test-case-name: tests.service.test_worker -*-
"""
One dedicated thread that runs calls in order and reports each result on
the reactor: the log writer and the state machine each have one.

Lighter than a Twisted ThreadPool of one thread (no team coordinator on
the way in), which matters on the write path, where every proposal
crosses to these threads and back.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["ThreadWorker"]

_STOP = object()


class ThreadWorker:
    def __init__(self, name: str, call_from_thread: Callable[..., None]) -> None:
        """
        @param call_from_thread: C{reactor.callFromThread}: how results
            reach the reactor thread.
        """
        self.name = name
        self._call_from_thread = call_from_thread
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread = None

    def start(self) -> None:
        # A daemon thread: should stop() never be called (an embedding
        # application that crashes), it cannot keep the process alive.
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the calls already queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred:
        """Run C{f(*args)} on the thread; the Deferred fires on the reactor thread."""
        d = Deferred()
        self._queue.put((f, args, d))
        return d

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            f, args, d = job
            try:
                result = f(*args)
            except BaseException:
                self._call_from_thread(d.errback, Failure())
            else:
                self._call_from_thread(d.callback, result)
