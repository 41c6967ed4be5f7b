# -*- test-case-name: tests.store.test_apply -*-
"""
An expected, deterministic refusal of a command (account exists, over
quota...).  It is the command's result, not a failure of the node: every
node refuses the same command the same way.
"""

from __future__ import annotations

__all__ = ["Refused"]


class Refused(Exception):
    """
    @ivar code: a short machine-readable reason.
    @ivar detail: one line for a person.
    @ivar payload: JSON-able data for the proposer (a JMAP method error).
    """

    def __init__(self, code: str, detail: str, payload: object = None) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refused) and (self.code, self.detail) == (other.code, other.detail)

    def __hash__(self) -> int:
        return hash((self.code, self.detail))

    def __repr__(self) -> str:
        return f"Refused({self.code!r}, {self.detail!r})"
