# -*- test-case-name: tests.mail.test_parse -*-
"""
Blob ids of the MIME parts inside a stored message (RFC 8621 4.1.4: every
leaf EmailBodyPart has a C{blobId} for its decoded content).

A part's blob is not stored on its own: its id names the message blob and
the part, and a download parses the message and decodes the part
(L{stalwart.mail.parse.part_content}).  The id is::

    <message blob id> "_" <part id, "." replaced by "-">

e.g. C{G3a7f...e1_2-1} for part C{2.1}.  Both halves use only characters
of the Id type (RFC 8620 1.2), and the message blob id may itself be a
part blob id (a part of an attached message/rfc822, fetched with
Email/parse): the part id is always after the LAST underscore.
"""

from __future__ import annotations

import re

__all__ = ["part_blob_id", "split_part_blob_id"]

_PART_ID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_ENCODED_PART_ID = re.compile(r"[0-9]+(?:-[0-9]+)*")
_BLOB_ID = re.compile(r"[A-Za-z0-9_-]+")


def part_blob_id(message_blob_id: str, part_id: str) -> str:
    """
    @param message_blob_id: the blob id of the raw message.
    @param part_id: a part id as L{stalwart.mail.parse} assigns them
        (C{"1"}, C{"2.1"}, ...).
    @return: the blob id of that part's decoded content.
    """
    assert _BLOB_ID.fullmatch(message_blob_id), message_blob_id
    assert _PART_ID.fullmatch(part_id), part_id
    return "%s_%s" % (message_blob_id, part_id.replace(".", "-"))


def split_part_blob_id(blob_id: str) -> tuple[str, str] | None:
    """
    The inverse of L{part_blob_id}.

    @return: (message blob id, part id), or L{None} if C{blob_id} is not
        the id of a part.
    """
    if not isinstance(blob_id, str):
        return None
    message, sep, part = blob_id.rpartition("_")
    if not sep or not message or not _BLOB_ID.fullmatch(message) \
            or not _ENCODED_PART_ID.fullmatch(part):
        return None
    return message, part.replace("-", ".")
