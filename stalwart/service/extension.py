# -*- test-case-name: tests.service.test_maker -*-
"""
What a group of data types adds to a node (the mail types are one):
methods, the state machine's command handlers and apply functions, its
tables, the capabilities it announces, and what a new account gets.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import attrs

from stalwart.jmap.objecttype import ObjectType

__all__ = ["Extension"]


@attrs.frozen
class Extension:
    #: Served with the standard methods (RFC 8620 section 5).
    object_types: Sequence[ObjectType] = ()
    #: Other methods, by name: callables with a C{capability} attribute.
    methods: Mapping[str, Any] = attrs.field(factory=dict)
    #: Apply functions of write methods: apply(ctx, account, args, created_ids, now).
    writes: Mapping[str, Callable] = attrs.field(factory=dict)
    #: State machine handlers of other commands, by command kind.
    handlers: Mapping[str, Callable] = attrs.field(factory=dict)
    #: Capability URI -> the server's capability object in the session.
    capabilities: Mapping[str, dict] = attrs.field(factory=dict)
    #: Capability URI -> the object in each account's accountCapabilities.
    account_capabilities: Mapping[str, dict] = attrs.field(factory=dict)
    #: SQL run at start (CREATE ... IF NOT EXISTS).
    schema: str = ""
    #: Called in the transaction that creates an account: hook(tx, account_id, now).
    account_created: Sequence[Callable] = ()
