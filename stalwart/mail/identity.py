# -*- test-case-name: tests.mail.test_identity -*-
"""
Identities (RFC 8621 section 6): the addresses a user may send from,
with the name, Reply-To, Bcc and signatures a client uses for them.

The C{email} of an Identity must be one of the account's addresses
(table C{addresses}); anything else is C{forbiddenFrom}.  Addresses are
stored lower-case (L{stalwart.store.accounts.normalise_address}), so
they are compared without case.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from stalwart.jmap.capabilities import SUBMISSION
from stalwart.jmap.errors import SetError
from stalwart.jmap.objecttype import ObjectType, Property, is_string, nullable
from stalwart.mail.mailbox import TypeMethods, fill_defaults

__all__ = ["Identity", "IdentityMethods", "is_email_addresses", "account_addresses"]


def is_email_addresses(value: Any) -> bool:
    """An C{EmailAddress[]} (RFC 8621 4.1.2.3): objects with name (String|null) and email."""
    return isinstance(value, list) and all(
        isinstance(a, dict) and set(a) <= {"name", "email"} and is_string(a.get("email"))
        and nullable(is_string)(a.get("name"))
        for a in value
    )


def account_addresses(conn, account_id: str) -> list:
    """The account's addresses, lower-case, sorted."""
    return [r[0] for r in conn.execute(
        "SELECT address FROM addresses WHERE account_id = ? ORDER BY address", (account_id,)
    )]


class Identity(ObjectType):
    name = "Identity"
    capability = SUBMISSION
    id_prefix = "I"
    properties = (
        Property("id", is_string, server_set=True),
        Property("name", is_string, default=""),
        Property("email", is_string, required=True, immutable=True),
        Property("replyTo", nullable(is_email_addresses)),
        Property("bcc", nullable(is_email_addresses)),
        Property("textSignature", is_string, default=""),
        Property("htmlSignature", is_string, default=""),
        Property("mayDelete", lambda value: isinstance(value, bool), server_set=True),
    )

    def check_object(self, tx, account_id: str, obj: Dict, old: Optional[Dict]) -> Optional[SetError]:
        if old is not None:
            # Immutable: a patch's null would remove it, which validate does not see.
            if obj.get("email") != old.get("email"):
                return SetError("invalidProperties", "email is immutable", properties=["email"])
            return None
        if obj["email"].lower() not in account_addresses(tx, account_id):
            return SetError("forbiddenFrom", f"{obj['email']} is not an address of this account")
        return None

    def expand(self, conn, account_id: str, objects: Dict[str, Dict]) -> None:
        # Every Identity may be deleted: the addresses stay with the
        # account, and a new Identity for one can be created at any time.
        fill_defaults(self, objects)
        for obj in objects.values():
            obj["mayDelete"] = True


class IdentityMethods(TypeMethods):
    """Identity/get, /changes and /set (RFC 8621 6.1-6.3)."""

    def __init__(self, object_type: Identity) -> None:
        super().__init__(object_type, ("get", "changes", "set"))
