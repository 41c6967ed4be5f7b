# -*- test-case-name: tests.mail.test_recipients -*-
"""
Which account an envelope recipient (LMTP C{RCPT TO}, RFC 2033 4.2) names.

Resolution runs on the read side, once per C{RCPT}, against the
C{addresses} table (address -> account, lower case), in this order:

  1. the exact address, C{user+tag@example.com};
  2. with subaddressing (RFC 5233), the address without its detail:
     C{user+tag@example.com} -> C{user@example.com}; the detail is the
     part after the first C{+} of the local part;
  3. the domain's catch-all, C{*@example.com}.

Catch-all addresses are stored as ordinary rows of the C{addresses} table
whose local part is C{*}: C{*@example.com}.  That form passes
L{stalwart.store.accounts.normalise_address}, so the existing admin
commands (C{account.address.add}, C{account.create}'s C{emails}) add and
remove catch-alls without a table or command of their own, and the
address's primary key keeps one catch-all per domain.  The cost: a
mailbox whose local part really is C{*} (legal in RFC 5321, never seen in
practice) cannot be told apart from the catch-all, which then receives
it.  A bare C{@example.com} could not be stored: it is not an address.

A resolved recipient's C{mailbox} is C{None}: mail goes to the account's
Inbox.  It is the place where a later rule (Sieve, or a detail-to-folder
mapping) would name another Mailbox by id.
"""

from __future__ import annotations

import sqlite3
from typing import Optional, Tuple

import attrs

__all__ = ["Recipient", "split_address", "candidates", "resolve_recipient", "CATCH_ALL_LOCAL"]

#: The local part of a domain's catch-all address in the addresses table.
CATCH_ALL_LOCAL = "*"

#: The subaddress separator (RFC 5233 2.1 leaves the choice to the server).
DETAIL_SEPARATOR = "+"

#: Longest address looked up (RFC 5321 4.5.3.1: 64 + 1 + 255).
ADDRESS_CHARS_MAX = 320


@attrs.frozen
class Recipient:
    """
    An accepted recipient.

    @ivar address: the address as given in C{RCPT TO}, lower case.
    @ivar account_id: the account that receives the mail.
    @ivar matched: the stored address that matched (exact, without the
        detail, or the catch-all).
    @ivar mailbox: a Mailbox id to deliver to, or C{None} for the Inbox.
    """

    address: str
    account_id: str
    matched: str
    mailbox: Optional[str] = None

    def spec(self) -> dict:
        """The recipient as the C{mail.deliver} command carries it."""
        spec = {"rcpt": self.address, "account": self.account_id}
        if self.mailbox is not None:
            spec["mailbox"] = self.mailbox
        return spec


def split_address(address: str) -> Optional[Tuple[str, str, str]]:
    """
    C{(user, detail, domain)} of a lower-cased address; C{detail} is C{""}
    without a separator.  C{None} if it is not C{local@domain}.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > ADDRESS_CHARS_MAX:
        return None
    if any(c.isspace() or ord(c) < 32 for c in address):
        return None
    user, separator, detail = local.partition(DETAIL_SEPARATOR)
    if not separator or not user:
        # "+tag@example.com" has no user part: only the exact address can match.
        return local, "", domain
    return user, detail, domain


def candidates(address: str) -> Tuple[str, ...]:
    """
    The stored addresses that would accept C{address}, most specific first
    (a pure function: L{resolve_recipient} looks them up in this order).
    """
    address = address.strip().lower()
    parts = split_address(address)
    if parts is None:
        return ()
    user, detail, domain = parts
    found = [address]
    if detail or address != f"{user}@{domain}":
        found.append(f"{user}@{domain}")
    found.append(f"{CATCH_ALL_LOCAL}@{domain}")
    return tuple(dict.fromkeys(found))


def resolve_recipient(conn: sqlite3.Connection, address: str) -> Optional[Recipient]:
    """
    The account that receives mail for C{address}, or C{None} (unknown
    recipient: LMTP 550 5.1.1).  Runs in a read transaction.
    """
    normal = address.strip().lower()
    for candidate in candidates(normal):
        row = conn.execute("SELECT account_id FROM addresses WHERE address = ?", (candidate,)).fetchone()
        if row is not None:
            return Recipient(address=normal, account_id=row[0], matched=candidate)
    return None
