# -*- test-case-name: tests.auth.test_ratelimit -*-
"""
Limit failed authentication attempts per key (a user name or a client
address), to slow down password guessing.

A pure core: time is a parameter (C{now}, from C{clock.seconds()}), and
memory is bounded by C{keys_max}. A key that fails C{failures_max} times
within C{window_seconds} of its first failure is blocked until that window
ends. Because C{now} may come from a wall clock that jumps backwards, a
negative interval is clamped: the window restarts at the earlier time, so a
block never lasts longer than one window.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import attrs

__all__ = ["FailureLimiter"]


@attrs.define
class _Window:
    start: float
    failures: int


class FailureLimiter:
    """
    Count authentication failures per key in fixed windows.

    @ivar failures_max: Failures allowed in one window; the next attempt is
        refused until the window ends. 10 lets a user mistype a few times.
    @ivar window_seconds: Length of the window, in seconds, starting at a
        key's first failure.
    @ivar keys_max: Keys remembered at most; past it the key least recently
        failed is forgotten. Bounds memory when many addresses fail.
    """

    def __init__(
        self, failures_max: int = 10, window_seconds: float = 60.0, keys_max: int = 10000
    ) -> None:
        if failures_max < 1:
            raise ValueError("failures_max must be >= 1")
        if not window_seconds > 0:
            raise ValueError("window_seconds must be > 0")
        if keys_max < 1:
            raise ValueError("keys_max must be >= 1")
        self.failures_max = failures_max
        self.window_seconds = window_seconds
        self.keys_max = keys_max
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        """
        The number of keys remembered.
        """
        return len(self._windows)

    def _current(self, key: str, now: float) -> Optional[_Window]:
        """
        The key's window if it is still open at C{now}, else C{None} (and the
        key is forgotten). A window starting after C{now} is moved to C{now}.
        """
        window = self._windows.get(key)
        if window is None:
            return None
        if now < window.start:
            window.start = now
        if now - window.start >= self.window_seconds:
            del self._windows[key]
            return None
        return window

    def record_failure(self, key: str, now: float) -> None:
        """
        Count one failed attempt for C{key} at time C{now} (seconds).
        """
        window = self._current(key, now)
        if window is None:
            self._windows[key] = _Window(start=now, failures=1)
        else:
            window.failures += 1
            self._windows.move_to_end(key)
        while len(self._windows) > self.keys_max:
            self._windows.popitem(last=False)

    def retry_after(self, key: str, now: float) -> Optional[float]:
        """
        Seconds until C{key} may try again, or C{None} if it is not blocked.
        """
        window = self._current(key, now)
        if window is None or window.failures < self.failures_max:
            return None
        return window.start + self.window_seconds - now

    def record_success(self, key: str, now: float) -> None:
        """
        Forget C{key}'s failures after a successful attempt.
        """
        self._windows.pop(key, None)
