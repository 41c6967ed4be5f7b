# -*- test-case-name: tests.service.test_maker -*-
"""
Build the stalwart-jmap service tree: the entry point twistd's plugin names.
"""

from stalwart.service.options import Options

__all__ = ["Options", "makeService"]


def makeService(options):
    raise NotImplementedError("being written")
