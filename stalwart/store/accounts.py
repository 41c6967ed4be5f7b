# -*- test-case-name: tests.store.test_accounts -*-
"""
Accounts (principals): name, email addresses, password hash, quota, and
the bearer tokens issued for them.  Changed only by applying commands;
read by the HTTP layer for authentication and administration.

Passwords arrive already hashed (scrypt, at the proposing node, off the
reactor): applying stays cheap and deterministic.  Tokens are stored as
SHA-256 digests so that the state never holds a usable secret.
"""

from __future__ import annotations

import sqlite3
from typing import Dict, List, Optional

from stalwart.jmap.ids import encode_counter
from stalwart.store.refusal import Refused

__all__ = [
    "create_account",
    "delete_account",
    "set_password",
    "add_address",
    "remove_address",
    "create_token",
    "list_accounts",
    "find_login",
    "find_by_token",
    "account_json",
    "normalise_address",
]


def normalise_address(address: object) -> str:
    """
    Lower-case an address after checking it looks like local@domain.  Local
    parts are compared without case too: that is what every mail system
    users meet does, and two accounts differing only by case would be a trap.
    """
    if not isinstance(address, str) or len(address) > 320:
        raise Refused("invalidAddress", f"not an email address: {address!r}")
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address.strip()) or "." not in domain:
        raise Refused("invalidAddress", f"not an email address: {address!r}")
    return f"{local}@{domain}".lower()


def _account_id(tx: sqlite3.Connection, name: str) -> str:
    row = tx.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise Refused("notFound", f"no account named {name!r}")
    return row[0]


def account_json(conn: sqlite3.Connection, account_id: str) -> Dict:
    name, quota, used = conn.execute(
        "SELECT name, quota, used_bytes FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    emails = [
        r[0]
        for r in conn.execute(
            "SELECT address FROM addresses WHERE account_id = ? ORDER BY address", (account_id,)
        )
    ]
    return {"id": account_id, "name": name, "emails": emails, "quota": quota, "usedBytes": used}


def create_account(tx: sqlite3.Connection, args: Dict) -> Dict:
    name = args["name"]
    if not isinstance(name, str) or not name or len(name) > 255 or any(c.isspace() or ord(c) < 32 for c in name) or ":" in name:
        raise Refused("invalidName", f"unusable account name: {name!r}")
    if tx.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
        raise Refused("exists", f"account {name!r} already exists")
    emails = [normalise_address(e) for e in args.get("emails", [])]
    if "@" in name and normalise_address(name) not in emails:
        emails.insert(0, normalise_address(name))
    for address in emails:
        if tx.execute("SELECT 1 FROM addresses WHERE address = ?", (address,)).fetchone():
            raise Refused("addressTaken", f"address {address} belongs to another account")
    quota = args.get("quota")
    if quota is not None and (not isinstance(quota, int) or isinstance(quota, bool) or quota < 0):
        raise Refused("invalidQuota", "quota must be a non-negative number of bytes")
    (counter,) = tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'next_account' RETURNING value - 1"
    ).fetchone()
    account_id = encode_counter("A", counter)
    tx.execute(
        "INSERT INTO accounts (id, name, password, quota, created) VALUES (?, ?, ?, ?, ?)",
        (account_id, name, args["password"], quota, args["now"]),
    )
    tx.executemany(
        "INSERT INTO addresses (address, account_id) VALUES (?, ?)",
        [(a, account_id) for a in dict.fromkeys(emails)],
    )
    return account_json(tx, account_id)


def delete_account(tx: sqlite3.Connection, args: Dict) -> None:
    account_id = _account_id(tx, args["name"])
    tx.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


def set_password(tx: sqlite3.Connection, args: Dict) -> None:
    account_id = _account_id(tx, args["name"])
    tx.execute("UPDATE accounts SET password = ? WHERE id = ?", (args["password"], account_id))
    # A new password ends every session that the old one opened.
    tx.execute("DELETE FROM tokens WHERE account_id = ?", (account_id,))


def add_address(tx: sqlite3.Connection, args: Dict) -> Dict:
    account_id = _account_id(tx, args["name"])
    address = normalise_address(args["email"])
    owner = tx.execute("SELECT account_id FROM addresses WHERE address = ?", (address,)).fetchone()
    if owner is not None and owner[0] != account_id:
        raise Refused("addressTaken", f"address {address} belongs to another account")
    tx.execute("INSERT OR IGNORE INTO addresses VALUES (?, ?)", (address, account_id))
    return account_json(tx, account_id)


def remove_address(tx: sqlite3.Connection, args: Dict) -> Dict:
    account_id = _account_id(tx, args["name"])
    address = normalise_address(args["email"])
    deleted = tx.execute(
        "DELETE FROM addresses WHERE address = ? AND account_id = ?", (address, account_id)
    ).rowcount
    if not deleted:
        raise Refused("notFound", f"account {args['name']!r} has no address {address}")
    return account_json(tx, account_id)


def create_token(tx: sqlite3.Connection, args: Dict) -> None:
    account_id = _account_id(tx, args["name"])
    tx.execute(
        "INSERT OR REPLACE INTO tokens (hash, account_id, created) VALUES (?, ?, ?)",
        (args["hash"], account_id, args["now"]),
    )


# -- reads -----------------------------------------------------------------


def list_accounts(conn: sqlite3.Connection) -> List[Dict]:
    ids = [r[0] for r in conn.execute("SELECT id FROM accounts ORDER BY name")]
    return [account_json(conn, i) for i in ids]


def find_login(conn: sqlite3.Connection, login: str) -> Optional[tuple]:
    """(account id, name, password hash) for a login: the account name or one of its addresses."""
    row = conn.execute("SELECT id, name, password FROM accounts WHERE name = ?", (login,)).fetchone()
    if row is None and "@" in login:
        try:
            address = normalise_address(login)
        except Refused:
            return None
        row = conn.execute(
            "SELECT a.id, a.name, a.password FROM addresses d JOIN accounts a ON a.id = d.account_id"
            " WHERE d.address = ?",
            (address,),
        ).fetchone()
    return row


def find_by_token(conn: sqlite3.Connection, token_hash: str) -> Optional[tuple]:
    """(account id, name) for a bearer token's digest."""
    return conn.execute(
        "SELECT a.id, a.name FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?",
        (token_hash,),
    ).fetchone()
