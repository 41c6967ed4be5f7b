# -*- test-case-name: tests.jmap.test_methods -*-
"""Core/echo (RFC 8620 section 4)."""

from __future__ import annotations

from stalwart.jmap.capabilities import CORE

__all__ = ["Echo"]


class Echo:
    capability = CORE

    def __call__(self, arguments, context, created_ids):
        return [("Core/echo", arguments)]
