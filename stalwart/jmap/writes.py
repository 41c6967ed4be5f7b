# -*- test-case-name: tests.jmap.test_standard -*-
"""
The state machine's side of JMAP write methods: the handler for
C{"jmap"} commands, which runs the method's apply function inside the
entry's transaction.  A method error becomes a deterministic refusal, so
every node answers the same.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from stalwart.jmap.errors import MethodError
from stalwart.store.apply import ApplyContext
from stalwart.store.refusal import Refused

__all__ = ["WriteHandler", "ApplyFunction"]

#: apply(ctx, account_id, args, created_ids, now) -> list of [name, args]
ApplyFunction = Callable[[ApplyContext, str, Dict, Dict, str], List]


class WriteHandler:
    def __init__(self, writes: Mapping[str, ApplyFunction]) -> None:
        self._writes = dict(writes)

    def __call__(self, ctx: ApplyContext) -> Dict[str, Any]:
        args = ctx.command.args
        try:
            apply = self._writes.get(args["method"])
            if apply is None:
                raise MethodError("unknownMethod", f"{args['method']} is not a write method here")
            exists = ctx.tx.execute("SELECT 1 FROM accounts WHERE id = ?", (args["account"],)).fetchone()
            if exists is None:
                raise MethodError("accountNotFound", f"account {args['account']!r} does not exist")
            before = dict(args["createdIds"])
            created_ids = dict(before)
            responses = apply(ctx, args["account"], args["args"], created_ids, args["now"])
        except MethodError as error:
            raise Refused("methodError", str(error), payload=error.to_json()) from None
        return {
            "responses": [[name, body] for name, body in responses],
            "createdIds": {k: v for k, v in created_ids.items() if before.get(k) != v},
        }
