# -*- test-case-name: tests.mail.test_part_blobs -*-
"""
Reading the blobs an account may use by id: uploaded blobs, and the body
parts of messages (RFC 8621 4.1.4: every leaf EmailBodyPart has a
C{blobId} for its decoded content).

A part's content is not stored on its own: its id names the message blob
and the part (L{stalwart.mail.blobids}), and reading it parses the message
and undoes the part's transfer encoding.  A part of an attached message
(found with Email/parse on the attachment's blob id) names the
attachment's part blob id as its message, so reading it goes down one
level per underscore, at most L{NESTING_MAX} levels.

An account may read a part blob when it owns the message blob at the
bottom of the chain: the part ids only locate bytes inside it.

These functions parse on the calling thread: call them from a reader
thread or in the state machine's apply, never on the reactor.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

from stalwart.mail.blobids import split_part_blob_id
from stalwart.mail.parse import find_part, parse_message, part_content
from stalwart.store.blobs import is_blob_id

__all__ = ["NESTING_MAX", "owns_blob", "stored_blob_id", "read_blob"]

#: Levels of attached messages a part blob id may go down.  Each level
#: parses a whole message; real mail nests two or three deep.
NESTING_MAX = 8


def owns_blob(conn, account: str, blob_id: object) -> bool:
    """Whether C{account} has the uploaded (or stored) blob C{blob_id}."""
    return is_blob_id(blob_id) and conn.execute(
        "SELECT 1 FROM blobs WHERE account_id = ? AND blob_id = ?", (account, blob_id)
    ).fetchone() is not None


def stored_blob_id(blob_id: object) -> Optional[str]:
    """
    The stored blob under C{blob_id}: itself for a whole blob, the message
    blob at the bottom of the chain for a part; L{None} for anything else
    (malformed, or nested deeper than L{NESTING_MAX}).
    """
    for _ in range(NESTING_MAX + 1):
        if is_blob_id(blob_id):
            return blob_id
        split = split_part_blob_id(blob_id)
        if split is None:
            return None
        blob_id = split[0]
    return None


def read_blob(conn, read: Callable[[str], Optional[bytes]], account: str,
              blob_id: object) -> Optional[Tuple[bytes, Optional[str]]]:
    """
    The octets of a blob C{account} may read, with the part's media type
    for a part blob (L{None} for a whole blob: its type is the upload's).

    @param conn: a connection to state.db (a reader's, or the apply's).
    @param read: reads a stored blob by id (L{stalwart.store.blobs.BlobStore.read}).
    @return: C{(data, type)}, or L{None} when the account does not own the
        blob, the message has no such part, or the id is malformed.
    """
    root = stored_blob_id(blob_id)
    if root is None or not owns_blob(conn, account, root):
        return None
    return _content(read, blob_id)


def _content(read: Callable[[str], Optional[bytes]], blob_id: str) -> Optional[Tuple[bytes, Optional[str]]]:
    if is_blob_id(blob_id):
        data = read(blob_id)
        return None if data is None else (data, None)
    message_blob_id, part_id = split_part_blob_id(blob_id)  # stored_blob_id checked the chain
    outer = _content(read, message_blob_id)
    if outer is None:
        return None
    raw = outer[0]
    part = find_part(parse_message(raw), part_id)
    if part is None:
        return None
    return part_content(raw, part), part.type
