"""Shared pieces of the push tests: a node with an account that can log in."""

from __future__ import annotations

import json
from typing import List

import treq

from tests.jmap.harness import LiveNode, basic

__all__ = ["PushNode", "PASSWORD", "USER"]

PASSWORD = "correct horse battery"
USER = "alice@example.com"


class PushNode(LiveNode):
    """A L{LiveNode} with one account, alice, and helpers for streams."""

    def __init__(self, case, **config) -> None:
        super().__init__(case, **config)
        self.account = self.create_account(USER, PASSWORD)["id"]
        self.auth = basic(USER, PASSWORD)

    def write_note(self, title: str = "hello") -> dict:
        """Create a Note through the dispatcher (a log entry); the Note/set response."""
        name, args = self.call(self.account, "Note/set", {"create": {"n": {"title": title}}})
        assert name == "Note/set", args
        return args

    def open_stream(self, path: str, headers=None):
        """GET C{path} without waiting for the end; (response, list of body chunks)."""
        headers = {"Authorization": self.auth, **(headers or {})}
        from tests.jmap.harness import JMAP_URL

        d = self.http.request("GET", JMAP_URL + path, headers=headers)
        self.http.flush()
        response = self.case.successResultOf(d)
        chunks: List[bytes] = []
        done = treq.collect(response, chunks.append)
        self.http.flush()
        return response, chunks, done

    def pump(self, seconds: float = 0) -> None:
        self.clock.advance(seconds)
        self.http.flush()


def events(chunks: List[bytes]) -> List[tuple]:
    """The (event name, data) of every complete server-sent event so far."""
    found = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return found
