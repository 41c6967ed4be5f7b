# -*- test-case-name: tests.service.test_options -*-
"""
Errors raised while configuring or starting a stalwart-jmap node.

Configuration mistakes are expected outcomes, not bugs: they are reported to
the operator as one line naming the key at fault, and the process exits
without a traceback.
"""

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """
    A configuration value cannot be used: an invalid combination of keys found
    when a L{stalwart.service.config.ServerConfig} is built, or a problem only
    visible at start time (a port already in use, a data directory that cannot
    be created).

    The message is one line that names the key, for example
    C{jmap-port: 8080 is already in use}.
    """
