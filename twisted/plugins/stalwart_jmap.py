# -*- test-case-name: tests.service.test_options -*-
"""
The twistd plugin: C{twistd -n stalwart-jmap [options]} runs a node.

This directory has no C{__init__.py} on purpose: C{twisted.plugins} is a
namespace shared with Twisted and other projects, and the plugin system
finds this module by scanning it.
"""

from twisted.application.service import ServiceMaker

serviceMaker = ServiceMaker(
    "stalwart-jmap",
    "stalwart.service.maker",
    "JMAP mail server with LMTP delivery and Raft clustering",
    "stalwart-jmap",
)
