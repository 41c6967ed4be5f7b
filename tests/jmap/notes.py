# -*- test-case-name: tests.jmap.test_standard -*-
"""
C{Note}: a test-only JMAP data type for the standard methods (RFC 8620
section 5), until the mail data types exist.

    id         Id, server-set
    title      String, required, filterable, sortable
    body       String, default ""
    pinned     Boolean, default false, filterable, sortable
    createdBy  String or null, immutable once created
"""

from __future__ import annotations

from stalwart.jmap.objecttype import ObjectType, Property, is_bool, is_string, nullable

__all__ = ["Note", "NOTES"]

#: The capability the Note methods belong to (not a registered URI).
NOTES = "urn:stalwart:test:notes"


class Note(ObjectType):
    name = "Note"
    capability = NOTES
    id_prefix = "N"
    properties = (
        Property("id", is_string, server_set=True),
        Property("title", is_string, required=True, filterable=True, sortable=True),
        Property("body", is_string, default=""),
        Property("pinned", is_bool, default=False, filterable=True, sortable=True),
        Property("createdBy", nullable(is_string), immutable=True),
    )
