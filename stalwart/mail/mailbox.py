# -*- test-case-name: tests.mail.test_mailbox -*-
"""
Mailboxes (RFC 8621 section 2): named sets of Emails arranged as a forest
by C{parentId}, with at most one Mailbox per role in an account.

Mailboxes are generic JSON objects (L{stalwart.store.objects}); their
counts (C{totalEmails}, C{unreadEmails}, C{totalThreads},
C{unreadThreads}) are kept in the C{mailbox_counts} table by the writes
of L{stalwart.mail.emails}, which also record a Mailbox change for every
Mailbox whose counts they change (RFC 8621 2: the Mailbox state covers
the counts).  Which Mailbox is the trash decides unreadThreads, so a
Mailbox/set that changes it rebuilds the account's counts from the email
tables (L{mailbox_counts}, which is also the reference the tests compare
the kept counts with).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

from twisted.internet.defer import maybeDeferred

from stalwart.jmap.capabilities import MAIL
from stalwart.jmap.errors import MethodError, SetError
from stalwart.jmap.methods.standard import StandardMethods, resolve_id
from stalwart.jmap.objecttype import ObjectType, Property, is_bool, is_string, is_uint, nullable
from stalwart.mail import emails
from stalwart.store.changes import UPDATED, record_change
from stalwart.store.objects import load_object

__all__ = ["Mailbox", "MailboxMethods", "TypeMethods", "fill_defaults", "ROLES", "mailbox_counts", "rebuild_counts",
           "OWNER_RIGHTS"]

#: Roles a Mailbox may have: the IANA IMAP Mailbox Name Attributes that
#: name a purpose (RFC 8457), lower-cased, and "inbox" (RFC 8621 2).
ROLES = frozenset(("inbox", "archive", "drafts", "flagged", "important", "junk", "sent", "subscribed", "trash", "all"))

#: The owner of an account may do everything with its Mailboxes (RFC 8621 2, myRights).
OWNER_RIGHTS = {
    "mayReadItems": True, "mayAddItems": True, "mayRemoveItems": True, "maySetSeen": True,
    "maySetKeywords": True, "mayCreateChild": True, "mayRename": True, "mayDelete": True, "maySubmit": True,
}

COUNTS = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")

_FILTERS = {
    "parentId": (str, type(None)),
    "name": (str,),
    "role": (str, type(None)),
    "hasAnyRole": (bool,),
    "isSubscribed": (bool,),
}


def _is_sort_order(value: Any) -> bool:
    return is_uint(value) and value < 2**31


class Mailbox(ObjectType):
    """
    The Mailbox data type.  Its limits are announced in the mail
    capability of each account (RFC 8621 1.3.1).

    @ivar name_bytes_max: longest name, in UTF-8 octets (maxSizeMailboxName;
        the RFC asks for at least 100; 255 fits any IMAP client's folder name).
    @ivar depth_max: most levels of the hierarchy (maxMailboxDepth): one
        more than the most ancestors a Mailbox may have.  Deep trees make
        every ancestor walk longer and no client shows more than a few.
    @ivar mailboxes_max: most Mailboxes in one account; queries and counts
        run over all of them, so this bounds their cost.
    """

    name = "Mailbox"
    capability = MAIL
    id_prefix = "M"
    properties = (
        Property("id", is_string, server_set=True),
        Property("name", is_string, required=True, filterable=True, sortable=True),
        Property("parentId", nullable(is_string), filterable=True),
        Property("role", nullable(is_string), filterable=True),
        Property("sortOrder", _is_sort_order, default=0, sortable=True),
        *(Property(count, is_uint, server_set=True) for count in COUNTS),
        Property("myRights", lambda value: isinstance(value, dict), server_set=True),
        Property("isSubscribed", is_bool, default=True, filterable=True),
    )
    set_options = {"onDestroyRemoveEmails": (bool,)}
    query_options = {"sortAsTree": (bool,), "filterAsTree": (bool,)}

    def __init__(self, name_bytes_max: int = 255, depth_max: int = 10, mailboxes_max: int = 1000) -> None:
        assert name_bytes_max >= 100 and depth_max >= 1 and mailboxes_max >= 1
        self.name_bytes_max = name_bytes_max
        self.depth_max = depth_max
        self.mailboxes_max = mailboxes_max

    # -- create and update ----------------------------------------------

    def check_object(self, tx, account_id: str, obj: Dict, old: Optional[Dict]) -> Optional[SetError]:
        mailboxes = _tree(tx, account_id)
        if old is None and len(mailboxes) >= self.mailboxes_max:
            return SetError("overQuota", f"at most {self.mailboxes_max} Mailboxes per account")
        obj = self.with_defaults(obj)  # a patch's null removed the property: its default
        name, parent, role = obj["name"], obj["parentId"], obj["role"]
        if not isinstance(name, str) or not name or len(name.encode("utf-8")) > self.name_bytes_max or any(_is_control(c) for c in name):
            return _invalid("name", f"a name is 1 to {self.name_bytes_max} octets without control characters")
        if role is not None and role not in ROLES:
            return _invalid("role", f"unknown role {role!r}")
        if role is not None and (old is None or old.get("role") != role):
            if any(m.get("role") == role for m in mailboxes.values()):
                return _invalid("role", f"another Mailbox has the role {role!r}")
        if parent is not None and parent not in mailboxes:
            return _invalid("parentId", f"no Mailbox {parent}")
        if old is None or (old.get("name"), old.get("parentId")) != (name, parent):
            # Two siblings may not share a name (RFC 8621 2): compared
            # exactly, as the RFC says "the same name".  The Mailbox being
            # updated is not among the siblings it would clash with here,
            # since its stored name or parent differs from the new one.
            if any(m.get("parentId") == parent and m.get("name") == name for m in mailboxes.values()):
                return _invalid("name", f"a sibling is already named {name!r}")
        if 1 + len(_ancestors(mailboxes, parent)) > self.depth_max:
            return _invalid("parentId", f"Mailboxes nest at most {self.depth_max} deep")
        return None

    def check_move(self, tx, account_id: str, object_id: str, parent: Optional[str]) -> Optional[SetError]:
        """
        Rules of a new C{parentId} for an existing Mailbox that need its
        id: no loop (RFC 8621 2), and its whole subtree within the depth
        limit.  C{None} also when the Mailbox does not exist (notFound
        comes later).
        """
        mailboxes = _tree(tx, account_id)
        if object_id not in mailboxes or parent is None:
            return None
        if parent == object_id or object_id in _ancestors(mailboxes, parent):
            return _invalid("parentId", "a Mailbox cannot be inside itself")
        if len(_ancestors(mailboxes, parent)) + 1 + _height(mailboxes, object_id) > self.depth_max:
            return _invalid("parentId", f"Mailboxes nest at most {self.depth_max} deep")
        return None

    # -- destroy --------------------------------------------------------

    def check_destroy(self, tx, account_id: str, object_id: str, obj: Dict, options: Mapping[str, Any]) -> Optional[SetError]:
        if any(m["parentId"] == object_id for m in _tree(tx, account_id).values()):
            return SetError("mailboxHasChild", "destroy or move its child Mailboxes first")
        has_email = tx.execute(
            "SELECT 1 FROM email_mailboxes WHERE account_id = ? AND mailbox_id = ? LIMIT 1", (account_id, object_id)
        ).fetchone()
        if has_email:
            if not options.get("onDestroyRemoveEmails"):
                return SetError("mailboxHasEmail", "the Mailbox holds Emails (see onDestroyRemoveEmails)")
            remove_emails(tx, account_id, object_id)
        return None

    # -- get ------------------------------------------------------------

    def expand(self, conn, account_id: str, objects: Dict[str, Dict]) -> None:
        fill_defaults(self, objects)
        counts = emails.stored_counts(conn, account_id)
        for object_id, obj in objects.items():
            obj.update(zip(COUNTS, counts.get(object_id, (0, 0, 0, 0))))
            obj["myRights"] = dict(OWNER_RIGHTS)

    # -- query ----------------------------------------------------------

    def sort_value(self, obj: Dict, prop: str) -> Any:
        return super().sort_value(self.with_defaults(obj), prop)

    def match(self, obj: Dict, condition: Mapping[str, Any]) -> bool:
        obj = self.with_defaults(obj)
        for key, wanted in condition.items():
            kinds = _FILTERS.get(key)
            if kinds is None:
                raise MethodError("unsupportedFilter", f"cannot filter Mailboxes on {key!r}")
            if not isinstance(wanted, kinds):
                raise MethodError("invalidArguments", f"bad value for the {key} filter", arguments=["filter"])
            if key == "name":
                if wanted.casefold() not in obj.get("name", "").casefold():
                    return False
            elif key == "hasAnyRole":
                if (obj.get("role") is not None) != wanted:
                    return False
            elif obj.get(key) != wanted:
                return False
        return True

    def arrange(self, ids: List[str], objects: Mapping[str, Dict], matching: List[str], options: Mapping[str, Any]) -> List[str]:
        """filterAsTree, then sortAsTree (RFC 8621 2.3)."""
        result = matching
        if options.get("filterAsTree"):
            included = set(matching)
            result = [i for i in result if all(a in included for a in _ancestors(objects, objects[i].get("parentId")))]
        if options.get("sortAsTree"):
            position = {object_id: n for n, object_id in enumerate(_tree_order(ids, objects))}
            result = sorted(result, key=lambda i: position.get(i, len(position)))
        return result


def fill_defaults(object_type: ObjectType, objects: Mapping[str, Dict]) -> None:
    """
    Show the default of a property a patch set to null: the standard /set
    removes it from the stored object (RFC 8620 5.3: null resets a
    property to its default).
    """
    for obj in objects.values():
        for prop in object_type.properties:
            if not prop.server_set and prop.name not in obj:
                obj[prop.name] = prop.default


def _invalid(prop: str, description: str) -> SetError:
    return SetError("invalidProperties", description, properties=[prop])


def _is_control(c: str) -> bool:
    return ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0


def _tree(tx, account_id: str) -> Dict[str, Dict]:
    """
    Every Mailbox of the account as C{{"parentId", "name", "role"}}: what
    the rules of names, roles and nesting look at.  SQLite extracts the
    three from the JSON: decoding whole objects in Python cost a
    Mailbox/set about a millisecond per hundred Mailboxes, on every node.
    """
    rows = tx.execute(
        "SELECT id, json_extract(data, '$.parentId'), json_extract(data, '$.name'), json_extract(data, '$.role')"
        " FROM objects WHERE account_id = ? AND type = ?", (account_id, emails.MAILBOX))
    return {i: {"parentId": p, "name": n, "role": r} for i, p, n, r in rows}


def _ancestors(mailboxes: Mapping[str, Dict], parent: Optional[str]) -> List[str]:
    """C{parent} and its ancestors that exist, nearest first (stops at a loop)."""
    chain: List[str] = []
    while parent is not None and parent in mailboxes and parent not in chain:
        chain.append(parent)
        parent = mailboxes[parent].get("parentId")
    return chain


def _height(mailboxes: Mapping[str, Dict], root: str) -> int:
    """Levels of the subtree under C{root}, itself included (a leaf: 1)."""
    children: Dict[Optional[str], List[str]] = {}
    for object_id, obj in mailboxes.items():
        children.setdefault(obj.get("parentId"), []).append(object_id)
    height, level, seen = 0, [root], {root}
    while level:
        height += 1
        level = [c for p in level for c in children.get(p, ()) if c not in seen]
        seen.update(level)
    return height


def _tree_order(ids: Sequence[str], objects: Mapping[str, Dict]) -> List[str]:
    """
    C{ids} (already sorted by the comparators) depth-first: each Mailbox
    right after its parent, siblings in their sorted order.  Hence A before
    B whenever A is an ancestor of B, or the nearest ancestors of A and B
    that are siblings sort that way (RFC 8621 2.3, sortAsTree).
    """
    children: Dict[Optional[str], List[str]] = {}
    for object_id in ids:
        parent = objects[object_id].get("parentId")
        children.setdefault(parent if parent in objects else None, []).append(object_id)
    order: List[str] = []
    stack = list(reversed(children.get(None, [])))
    seen: Set[str] = set()
    while stack:
        object_id = stack.pop()
        if object_id in seen:
            continue
        seen.add(object_id)
        order.append(object_id)
        stack.extend(reversed(children.get(object_id, [])))
    return order


# -- counts ------------------------------------------------------------------

_UNREAD = """
    SELECT e.id, e.thread_id FROM emails e WHERE e.account_id = :account AND NOT EXISTS (
        SELECT 1 FROM email_keywords k WHERE k.account_id = e.account_id AND k.email_id = e.id
        AND k.keyword IN ('$seen', '$draft'))
"""

_COUNTS = f"""
WITH unread AS ({_UNREAD}),
unread_outside AS (
    SELECT DISTINCT u.thread_id FROM unread u JOIN email_mailboxes m
    ON m.account_id = :account AND m.email_id = u.id AND m.mailbox_id != :trash),
unread_trash AS (
    SELECT DISTINCT u.thread_id FROM unread u JOIN email_mailboxes m
    ON m.account_id = :account AND m.email_id = u.id AND m.mailbox_id = :trash)
SELECT m.mailbox_id,
    COUNT(*),
    SUM(e.id IN (SELECT id FROM unread)),
    COUNT(DISTINCT e.thread_id),
    COUNT(DISTINCT CASE WHEN (m.mailbox_id = :trash AND e.thread_id IN (SELECT thread_id FROM unread_trash))
                          OR (m.mailbox_id != :trash AND e.thread_id IN (SELECT thread_id FROM unread_outside))
                        THEN e.thread_id END)
FROM email_mailboxes m JOIN emails e ON e.account_id = m.account_id AND e.id = m.email_id
WHERE m.account_id = :account
GROUP BY m.mailbox_id
"""


def mailbox_counts(conn, account_id: str) -> Dict[str, Dict[str, int]]:
    """
    The four counts of every Mailbox that holds an Email (RFC 8621 2),
    computed from the email tables: it reads every Email of the account.

    An Email is unread when it has neither C{$seen} nor C{$draft}.
    C{unreadThreads} follows the RFC's "quality implementation": the
    Threads with an Email in this Mailbox and an unread Email anywhere,
    where Emails only in the trash do not count for other Mailboxes and
    Emails outside the trash do not count for the trash.
    """
    trash = conn.execute(
        "SELECT id FROM objects WHERE account_id = ? AND type = 'Mailbox' AND json_extract(data, '$.role') = 'trash'",
        (account_id,),
    ).fetchone()
    rows = conn.execute(_COUNTS, {"account": account_id, "trash": trash[0] if trash else ""})
    return {row[0]: dict(zip(COUNTS, (row[1], row[2] or 0, row[3], row[4]))) for row in rows}


def rebuild_counts(tx, account_id: str) -> None:
    """Recompute the kept counts of every Mailbox of an account (after the trash changed)."""
    tx.execute("DELETE FROM mailbox_counts WHERE account_id = ?", (account_id,))
    tx.executemany(
        "INSERT INTO mailbox_counts (account_id, mailbox_id, total_emails, unread_emails, total_threads,"
        " unread_threads) VALUES (?, ?, ?, ?, ?, ?)",
        [(account_id, mailbox_id, *(c[k] for k in COUNTS))
         for mailbox_id, c in sorted(mailbox_counts(tx, account_id).items())],
    )


def remove_emails(tx, account_id: str, mailbox_id: str) -> None:
    """
    Take every Email out of a Mailbox being destroyed, destroying those in
    no other Mailbox (RFC 8621 2.5, onDestroyRemoveEmails), with the Email,
    Thread and Mailbox changes that follow (L{stalwart.mail.emails}).
    """
    email_ids = [r[0] for r in tx.execute(
        "SELECT email_id FROM email_mailboxes WHERE account_id = ? AND mailbox_id = ? ORDER BY email_id",
        (account_id, mailbox_id),
    )]
    # Destroying an unread Email can change the unread Threads of any
    # Mailbox holding another Email of its Thread (see mailbox_counts).
    touched = [r[0] for r in tx.execute(
        f"SELECT DISTINCT m.mailbox_id FROM email_mailboxes m JOIN emails e"
        f" ON e.account_id = m.account_id AND e.id = m.email_id"
        f" WHERE m.account_id = ? AND m.mailbox_id != ? AND e.thread_id IN"
        f" (SELECT thread_id FROM emails WHERE account_id = ? AND id IN ({_marks(email_ids)}))"
        f" ORDER BY m.mailbox_id",
        (account_id, mailbox_id, account_id, *email_ids),
    )]
    for email_id in email_ids:
        others = [m for m in emails.mailbox_ids_of(tx, account_id, email_id) if m != mailbox_id]
        if others:
            emails.set_mailboxes(tx, account_id, email_id, others)
            record_change(tx, account_id, emails.EMAIL, email_id, UPDATED)
        else:
            emails.destroy_email(tx, account_id, email_id)
    for other in touched:
        record_change(tx, account_id, emails.MAILBOX, other, UPDATED)


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# -- methods -----------------------------------------------------------------


class TypeMethods(StandardMethods):
    """
    The standard methods a mail data type has (RFC 8621 names them per
    type), reporting computed server-set properties of created objects
    (RFC 8620 5.3: C{created} holds every server-set property).
    """

    def __init__(self, object_type: ObjectType, names: Sequence[str]) -> None:
        super().__init__(object_type)
        self.names = tuple(names)

    def methods(self):
        return {k: v for k, v in super().methods().items() if k.split("/", 1)[1] in self.names}

    def writes(self):
        return {k: v for k, v in super().writes().items() if k.split("/", 1)[1] in self.names}

    def _create_one(self, tx, account: str, obj: Any, created_ids: Dict):
        outcome = super()._create_one(tx, account, obj, created_ids)
        if isinstance(outcome, dict):
            computed = {outcome["id"]: load_object(tx, account, self.name, outcome["id"])}
            self.type.expand(tx, account, computed)
            server_set = {p.name for p in self.type.properties if p.server_set}
            outcome.update({k: v for k, v in computed[outcome["id"]].items() if k in server_set})
        return outcome


class MailboxMethods(TypeMethods):
    """
    Mailbox/get, /changes, /query, /queryChanges and /set (RFC 8621 2.1-2.5).

    Within one /set, creates are ordered so that a parent created in the
    same call (C{"parentId": "#creationId"}) comes first, and destroys so
    that children go before their parents (RFC 8620 5.3 asks the server
    to order them).
    """

    def __init__(self, object_type: Mailbox) -> None:
        super().__init__(object_type, ("get", "changes", "set", "query", "queryChanges"))
        # The creation ids of the /set being applied: applies run one at a
        # time, on the state machine's thread.
        self._created_ids: Dict[str, str] = {}

    def changes(self, arguments, context, created_ids):
        """
        Mailbox/changes with C{updatedProperties}: always null, since count
        changes are not tracked apart from others (RFC 8621 2.2 allows it).
        """

        def add(responses):
            return [(name, {**body, "updatedProperties": None}) for name, body in responses]

        return maybeDeferred(super().changes, arguments, context, created_ids).addCallback(add)

    def apply_set(self, ctx, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        mailboxes = _tree(ctx.tx, account) if args["destroy"] else {}
        args = {
            **args,
            "create": {k: args["create"][k] for k in _parents_first(args["create"])},
            "destroy": sorted(args["destroy"], key=lambda i: -len(_ancestors(mailboxes, i))),
        }
        self._created_ids = created_ids
        trash = emails.trash_id(ctx.tx, account)
        try:
            responses = super().apply_set(ctx, account, args, created_ids, now)
        finally:
            self._created_ids = {}
        if emails.trash_id(ctx.tx, account) != trash:
            # unreadThreads depends on which Mailbox is the trash.
            rebuild_counts(ctx.tx, account)
            for mailbox_id in sorted(emails.stored_counts(ctx.tx, account)):
                record_change(ctx.tx, account, emails.MAILBOX, mailbox_id, UPDATED)
        return responses

    def _create_one(self, tx, account: str, obj: Any, created_ids: Dict):
        if isinstance(obj, dict) and isinstance(obj.get("parentId"), str):
            obj = {**obj, "parentId": resolve_id(obj["parentId"], created_ids)}
        return super()._create_one(tx, account, obj, created_ids)

    def _update_one(self, tx, account: str, object_id: str, patch: Any) -> Optional[SetError]:
        if isinstance(patch, dict) and isinstance(patch.get("parentId"), str):
            patch = {**patch, "parentId": resolve_id(patch["parentId"], self._created_ids)}
            error = self.type.check_move(tx, account, object_id, patch["parentId"])
            if error is not None:
                return error
        return super()._update_one(tx, account, object_id, patch)


def _parents_first(create: Mapping[str, Any]) -> List[str]:
    """Creation ids, each after the one its parentId refers to ("#id")."""
    ordered: List[str] = []
    placed: Set[str] = set()
    for start in create:
        chain, creation_id = [], start
        while creation_id in create and creation_id not in placed and creation_id not in chain:
            chain.append(creation_id)
            obj = create[creation_id]
            parent = obj.get("parentId") if isinstance(obj, dict) else None
            creation_id = parent[1:] if isinstance(parent, str) and parent.startswith("#") else None
        for creation_id in reversed(chain):
            placed.add(creation_id)
            ordered.append(creation_id)
    return ordered
