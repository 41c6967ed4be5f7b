# -*- test-case-name: tests.service.test_store -*-
"""Tests for L{stalwart.service.store}: one process per data directory."""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from stalwart.service.errors import ConfigError
from stalwart.service.store import StoreService, lock_data_dir


class DataDirLockTests(SynchronousTestCase):
    def test_second_opener_refused_until_first_stops(self) -> None:
        """A second store on the same data-dir is refused with one clear line; once the first stops, it may start."""
        data_dir = self.mktemp()
        first = StoreService(data_dir, {}, MemoryReactorClock(), threads=False)
        first.startService()
        second = StoreService(data_dir, {}, MemoryReactorClock(), threads=False)
        error = self.assertRaises(ConfigError, second.startService)
        self.assertEqual(str(error), f"{os.path.abspath(data_dir)}: in use by another stalwart-jmap process "
                                     "(each node needs its own data-dir)")
        first.stopService()
        second.startService()
        second.stopService()

    def test_lock_is_exclusive(self) -> None:
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        fd = lock_data_dir(data_dir)
        self.assertRaises(ConfigError, lock_data_dir, data_dir)
        os.close(fd)
        os.close(lock_data_dir(data_dir))
