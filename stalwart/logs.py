"""
The log level of stalwart's own messages (the C{log-level} key).

Every stalwart module logs through L{observer}, which drops events below
the configured level before they reach the global log publisher; events
of Twisted itself are left as they are.
"""

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

__all__ = ["observer", "set_level", "LEVELS"]

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
observer = FilteringLogObserver(lambda event: globalLogPublisher(event), [_predicate])


def set_level(name: str) -> None:
    _predicate.setLogLevelForNamespace(None, LEVELS[name])
