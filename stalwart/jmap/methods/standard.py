# -*- test-case-name: tests.jmap.test_standard -*-
"""
The standard methods of RFC 8620 section 5 for any L{ObjectType}:
/get (5.1), /changes (5.2), /set (5.3), /copy (5.4), /query (5.5) and
/queryChanges (5.6).

Reads run on a store reader thread.  Writes are checked here, then
proposed as one command; the C{apply_*} functions run when the entry is
applied, on every node, and must stay deterministic.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, Mapping, Optional, Tuple

from stalwart.jmap.arguments import check_arguments, id_list, is_id_or_reference, optional, required, unsigned
from stalwart.jmap.errors import MethodError, SetError
from stalwart.jmap.ids import check_creation_id
from stalwart.jmap.objecttype import COLLATIONS, ObjectType
from stalwart.jmap.patch import PatchError, apply_patch
from stalwart.store.apply import ApplyContext
from stalwart.store.changes import CREATED, DESTROYED, UPDATED, CannotCalculate, changes_since, record_change, state_of
from stalwart.store.objects import delete_object, load_object, load_objects, next_object_id, save_object

__all__ = ["StandardMethods", "standard_changes", "check_state", "create_each", "copy_responses",
           "query_window", "resolve_id"]


class _Call:
    """A bound method with the capability the dispatcher checks."""

    def __init__(self, capability: str, function) -> None:
        self.capability = capability
        self._function = function

    def __call__(self, arguments, context, created_ids):
        return self._function(arguments, context, created_ids)


def resolve_id(value: str, created_ids: Mapping[str, str]) -> str:
    """"#creationId" -> the id created for it earlier in the request (RFC 8620 5.3)."""
    if value.startswith("#"):
        return created_ids.get(value[1:], value)
    return value


class StandardMethods:
    def __init__(self, object_type: ObjectType) -> None:
        self.type = object_type
        self.name = object_type.name

    def methods(self) -> Dict[str, _Call]:
        cap = self.type.capability
        return {
            f"{self.name}/get": _Call(cap, self.get),
            f"{self.name}/changes": _Call(cap, self.changes),
            f"{self.name}/set": _Call(cap, self.set),
            f"{self.name}/copy": _Call(cap, self.copy),
            f"{self.name}/query": _Call(cap, self.query),
            f"{self.name}/queryChanges": _Call(cap, self.query_changes),
        }

    def writes(self) -> Dict[str, Any]:
        return {f"{self.name}/set": self.apply_set, f"{self.name}/copy": self.apply_copy}

    # -- /get ---------------------------------------------------------------

    def get(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ids", "properties"})
        account = context.account(arguments)
        ids = id_list(arguments, "ids")
        if ids is not None:
            ids = list(dict.fromkeys(resolve_id(i, created_ids) for i in ids))
            if len(ids) > context.limits.max_objects_in_get:
                raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_get} ids per /get")
        properties = optional(arguments, "properties", list)
        if properties is not None:
            known = self.type.property_map()
            unknown = [p for p in properties if not isinstance(p, str) or p not in known]
            if unknown:
                raise MethodError("invalidArguments", f"unknown property {unknown[0]!r}", arguments=["properties"])
            properties = set(properties) | {"id"}
        limit = context.limits.max_objects_in_get

        def read(conn):
            state = state_of(conn, account, self.name)
            found = load_objects(conn, account, self.name, ids)
            if ids is None and len(found) > limit:
                raise MethodError("requestTooLarge", f"more than {limit} objects; ask for ids")
            self.type.expand(conn, account, found)
            listed = []
            for object_id, obj in found.items():
                full = {"id": object_id, **obj}
                listed.append(full if properties is None else {k: v for k, v in full.items() if k in properties})
            not_found = [i for i in ids if i not in found] if ids is not None else []
            return [(f"{self.name}/get", {"accountId": account, "state": state, "list": listed, "notFound": not_found})]

        return context.reader.run(read)

    # -- /changes -----------------------------------------------------------

    def changes(self, arguments, context, created_ids):
        return standard_changes(self.name, arguments, context)

    # -- /set ---------------------------------------------------------------

    def set(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "ifInState", "create", "update", "destroy", *self.type.set_options})
        account = context.account(arguments)
        args = _set_arguments(arguments, created_ids)
        args["options"] = _options(arguments, self.type.set_options)
        count = len(args["create"]) + len(args["update"]) + len(args["destroy"])
        if count > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} objects per /set")
        return context.write(f"{self.name}/set", account, args, created_ids)

    def apply_set(self, ctx: ApplyContext, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        old_state = check_state(tx, account, self.name, args["ifInState"])
        response: Dict[str, Any] = {"accountId": account, "oldState": old_state}
        created, not_created = create_each(
            args["create"], lambda _, obj: self._create_one(tx, account, obj, created_ids), created_ids)
        updated, not_updated = {}, {}
        for object_id, patch in args["update"].items():
            object_id = resolve_id(object_id, created_ids)
            error = self._update_one(tx, account, object_id, patch)
            if error is None:
                updated[object_id] = None
            else:
                not_updated[object_id] = error.to_json()
        destroyed, not_destroyed = [], {}
        for object_id in args["destroy"]:
            object_id = resolve_id(object_id, created_ids)
            error = self._destroy_one(tx, account, object_id, args.get("options") or {})
            if error is None:
                destroyed.append(object_id)
            else:
                not_destroyed[object_id] = error.to_json()
        response["newState"] = state_of(tx, account, self.name)
        for key, value in (("created", created), ("updated", updated), ("destroyed", destroyed),
                           ("notCreated", not_created), ("notUpdated", not_updated), ("notDestroyed", not_destroyed)):
            response[key] = value or None
        return [(f"{self.name}/set", response)]

    def _create_one(self, tx, account: str, obj: Any, created_ids: Dict):
        if not isinstance(obj, dict):
            return SetError("invalidProperties", "a create value must be an object")
        error = self.type.validate(obj, creating=True)
        if error is not None:
            return error
        full = self.type.with_defaults(obj)
        error = self.type.validate(full, creating=True) or self.type.check_object(tx, account, full, None)
        if error is not None:
            return error
        object_id = next_object_id(tx, account, self.type.id_prefix)
        save_object(tx, account, self.name, object_id, full)
        record_change(tx, account, self.name, object_id, CREATED)
        # Report the id and every property the client did not give (RFC 8620 5.3).
        return {"id": object_id, **{k: v for k, v in full.items() if k not in obj}}

    def _update_one(self, tx, account: str, object_id: str, patch: Any) -> Optional[SetError]:
        old = load_object(tx, account, self.name, object_id)
        if old is None:
            return SetError("notFound", f"no {self.name} {object_id}")
        if not isinstance(patch, dict):
            return SetError("invalidPatch", "a patch must be an object")
        try:
            new = apply_patch(old, patch)
        except PatchError as e:
            return SetError("invalidPatch", str(e))
        # Stored objects do not hold their id: a patch may repeat it, but
        # not change it (RFC 8620 5.3), and it must not be stored.
        if "id" in new:
            if new.pop("id") != object_id:
                return SetError("invalidProperties", "id is server-set", properties=["id"])
        # A top-level property patched to null is reset to its default
        # (RFC 8620 5.3), not dropped: put the defaults back, then check.
        removed = [k for k, v in patch.items() if v is None and "/" not in k and k in old]
        if removed:
            defaults = self.type.with_defaults({})
            new.update((k, defaults[k]) for k in removed if k in defaults)
        error = self.type.validate(new, creating=False, old=old) or self.type.check_object(tx, account, new, old)
        if error is not None:
            return error
        if new != old:
            save_object(tx, account, self.name, object_id, new)
            record_change(tx, account, self.name, object_id, UPDATED)
        return None

    def _destroy_one(self, tx, account: str, object_id: str, options: Mapping[str, Any]) -> Optional[SetError]:
        old = load_object(tx, account, self.name, object_id)
        if old is None:
            return SetError("notFound", f"no {self.name} {object_id}")
        error = self.type.check_destroy(tx, account, object_id, old, options)
        if error is not None:
            return error
        delete_object(tx, account, self.name, object_id)
        record_change(tx, account, self.name, object_id, DESTROYED)
        return None

    # -- /copy --------------------------------------------------------------

    def copy(self, arguments, context, created_ids):
        check_arguments(arguments, {"fromAccountId", "ifFromInState", "accountId", "ifInState", "create",
                                    "onSuccessDestroyOriginal", "destroyFromIfInState"})
        if arguments.get("fromAccountId") == arguments.get("accountId"):
            raise MethodError("invalidArguments", "fromAccountId must differ from accountId", arguments=["fromAccountId"])
        source = context.account(arguments, "fromAccountId")
        account = context.account(arguments)
        create = required(arguments, "create", dict)
        for creation_id, obj in create.items():
            if not check_creation_id(creation_id) or not isinstance(obj, dict) or not is_id_or_reference(obj.get("id")):
                raise MethodError("invalidArguments", f"create[{creation_id!r}] needs a creation id and an object with the source id")
        if len(create) > context.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most {context.limits.max_objects_in_set} objects per /copy")
        args = {
            "fromAccountId": source,
            "ifFromInState": optional(arguments, "ifFromInState", str),
            "ifInState": optional(arguments, "ifInState", str),
            "create": {cid: {**obj, "id": resolve_id(obj["id"], created_ids)} for cid, obj in create.items()},
            "onSuccessDestroyOriginal": optional(arguments, "onSuccessDestroyOriginal", bool, default=False),
            "destroyFromIfInState": optional(arguments, "destroyFromIfInState", str),
        }
        return context.write(f"{self.name}/copy", account, args, created_ids)

    def apply_copy(self, ctx: ApplyContext, account: str, args: Dict, created_ids: Dict, now: str) -> List:
        tx = ctx.tx
        source = args["fromAccountId"]
        check_state(tx, source, self.name, args["ifFromInState"])
        old_state = check_state(tx, account, self.name, args["ifInState"])
        created, not_created = {}, {}
        for creation_id, spec in args["create"].items():
            original = load_object(tx, source, self.name, spec["id"])
            if original is None:
                not_created[creation_id] = SetError("notFound", f"no {self.name} {spec['id']}").to_json()
                continue
            obj = {**original, **{k: v for k, v in spec.items() if k != "id"}}
            outcome = self._create_one(tx, account, obj, created_ids)
            if isinstance(outcome, SetError):
                not_created[creation_id] = outcome.to_json()
            else:
                created_ids[creation_id] = outcome["id"]
                created[creation_id] = {"id": outcome["id"]}
        return copy_responses(self.name, self.apply_set, ctx, source, account, args, old_state,
                              created, not_created, created_ids, now)

    # -- /query and /queryChanges -------------------------------------------

    def query(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal", *self.type.query_options})
        account = context.account(arguments)
        options = _options(arguments, self.type.query_options)
        filter_ = _check_filter(arguments.get("filter"))
        sort = _check_sort(arguments.get("sort"))
        for comparator in sort:
            self.type.sort_value({}, comparator["property"])  # unsupportedSort now, not per object
        position = optional(arguments, "position", int, default=0)
        anchor = optional(arguments, "anchor", str)
        anchor_offset = optional(arguments, "anchorOffset", int, default=0)
        wanted = unsigned(arguments, "limit")
        cap = context.limits.query_max_results
        limit = cap if wanted is None else min(wanted, cap)
        total_wanted = optional(arguments, "calculateTotal", bool, default=False)
        if anchor is not None:
            anchor = resolve_id(anchor, created_ids)

        def read(conn):
            state, ids = self._results(conn, account, filter_, sort, options)
            start, page = query_window(ids, position, anchor, anchor_offset, limit)
            response = {
                "accountId": account, "queryState": state, "canCalculateChanges": True,
                "position": start, "ids": page,
            }
            if total_wanted:
                response["total"] = len(ids)
            if wanted is None or wanted > cap:
                # The server set a limit, or used another than asked (RFC 8620 5.5).
                response["limit"] = cap
            return [(f"{self.name}/query", response)]

        return context.reader.run(read)

    def query_changes(self, arguments, context, created_ids):
        check_arguments(arguments, {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal", *self.type.query_options})
        account = context.account(arguments)
        options = _options(arguments, self.type.query_options)
        filter_ = _check_filter(arguments.get("filter"))
        sort = _check_sort(arguments.get("sort"))
        since = required(arguments, "sinceQueryState", str)
        max_changes = unsigned(arguments, "maxChanges", positive=True)
        optional(arguments, "upToId", str)  # only an optimisation (RFC 8620 5.6); ignored
        total_wanted = optional(arguments, "calculateTotal", bool, default=False)

        def read(conn):
            try:
                c = changes_since(conn, account, self.name, since, 2**62)
            except CannotCalculate:
                raise MethodError("cannotCalculateChanges", f"query state {since!r} is unknown or too old") from None
            state, ids = self._results(conn, account, filter_, sort, options)
            # Every changed object may have moved: remove it, and add it
            # back where it now stands (RFC 8620 5.6 allows the extra ids).
            touched = set(c.created) | set(c.updated)
            removed = sorted(set(c.updated) | set(c.destroyed), key=lambda i: (len(i), i))
            added = [{"id": i, "index": n} for n, i in enumerate(ids) if i in touched]
            if max_changes is not None and len(removed) + len(added) > max_changes:
                raise MethodError("tooManyChanges", f"more than {max_changes} changes")
            response = {"accountId": account, "oldQueryState": since, "newQueryState": state,
                        "removed": removed, "added": added}
            if total_wanted:
                response["total"] = len(ids)
            return [(f"{self.name}/queryChanges", response)]

        return context.reader.run(read)

    def _results(self, conn: sqlite3.Connection, account: str, filter_, sort, options) -> Tuple[str, List[str]]:
        state = state_of(conn, account, self.name)
        objects = load_objects(conn, account, self.name)
        ordered = sorted(objects.items(), key=self.type.sort_key(sort))
        matching = [i for i, o in ordered if filter_ is None or _matches(self.type, {"id": i, **o}, filter_)]
        return state, self.type.arrange([i for i, _ in ordered], objects, matching, options)


def query_window(ids: List[str], position: int, anchor: Optional[str], anchor_offset: int, limit: int):
    """
    The page of a sorted result list (RFC 8620 5.5): (start, ids) from an
    anchor and its offset, or from a position (negative: from the end).
    """
    if anchor is not None:
        if anchor not in ids:
            raise MethodError("anchorNotFound", f"{anchor} is not in the results")
        start = max(0, ids.index(anchor) + anchor_offset)
    elif position < 0:
        start = max(0, len(ids) + position)
    else:
        start = min(position, len(ids))
    return start, ids[start:start + limit]


def copy_responses(type_name: str, apply_set, ctx, source: str, account: str, args: Dict, old_state: str,
                   created: Dict, not_created: Dict, created_ids: Dict, now: str) -> List:
    """
    Foo/copy's response, then, with onSuccessDestroyOriginal, the implicit
    Foo/set destroying the originals in the source account (RFC 8620 5.4).
    """
    responses = [(f"{type_name}/copy", {
        "fromAccountId": source, "accountId": account, "oldState": old_state,
        "newState": state_of(ctx.tx, account, type_name), "created": created or None,
        "notCreated": not_created or None,
    })]
    if args["onSuccessDestroyOriginal"] and created:
        originals = [args["create"][creation_id]["id"] for creation_id in created]
        destroy = {"ifInState": args["destroyFromIfInState"], "create": {}, "update": {}, "destroy": originals}
        try:
            responses += apply_set(ctx, source, destroy, created_ids, now)
        except MethodError as error:
            responses.append(("error", error.to_json()))
    return responses


def create_each(creates: Mapping[str, Any], create_one, created_ids: Dict[str, str]):
    """
    Run C{create_one(creation_id, value)} for each create in order (RFC 8620
    5.3): a SetError goes to notCreated, a created object to created and its
    id to C{created_ids}.  Returns (created, notCreated).
    """
    created, not_created = {}, {}
    for creation_id, value in creates.items():
        outcome = create_one(creation_id, value)
        if isinstance(outcome, SetError):
            not_created[creation_id] = outcome.to_json()
        else:
            created_ids[creation_id] = outcome["id"]
            created[creation_id] = outcome
    return created, not_created


def check_state(tx, account: str, type_name: str, expected: Optional[str]) -> str:
    """The current state; stateMismatch when the client expected another (RFC 8620 5.3 ifInState)."""
    current = state_of(tx, account, type_name)
    if expected is not None and expected != current:
        raise MethodError("stateMismatch", f"{type_name} state is {current}, not {expected}")
    return current


def standard_changes(type_name: str, arguments, context):
    """Foo/changes (RFC 8620 5.2) for any type recorded in the changes log."""
    check_arguments(arguments, {"accountId", "sinceState", "maxChanges"})
    account = context.account(arguments)
    since = required(arguments, "sinceState", str)
    wanted = unsigned(arguments, "maxChanges", positive=True)
    limit = min(wanted or context.limits.changes_max_results, context.limits.changes_max_results)

    def read(conn):
        try:
            c = changes_since(conn, account, type_name, since, limit)
        except CannotCalculate:
            raise MethodError("cannotCalculateChanges", f"state {since!r} is unknown or too old") from None
        return [(f"{type_name}/changes", {
            "accountId": account, "oldState": c.old_state, "newState": c.new_state,
            "hasMoreChanges": c.has_more, "created": c.created, "updated": c.updated, "destroyed": c.destroyed,
        })]

    return context.reader.run(read)


def _options(arguments: Mapping[str, Any], spec: Mapping[str, Tuple[type, ...]]) -> Dict[str, Any]:
    """A data type's extra arguments, type-checked (absent or null ones are left out)."""
    return {name: optional(arguments, name, *kinds) for name, kinds in spec.items() if arguments.get(name) is not None}


def _set_arguments(arguments: Mapping[str, Any], created_ids: Mapping[str, str]) -> Dict[str, Any]:
    create = optional(arguments, "create", dict, default={})
    update = optional(arguments, "update", dict, default={})
    destroy = id_list(arguments, "destroy") or []
    for creation_id in create:
        if not check_creation_id(creation_id):
            raise MethodError("invalidArguments", f"bad creation id {creation_id!r}", arguments=["create"])
    for object_id in list(update) + destroy:
        if not is_id_or_reference(object_id):
            raise MethodError("invalidArguments", f"bad id {object_id!r}", arguments=["update", "destroy"])
    return {
        "ifInState": optional(arguments, "ifInState", str),
        "create": create,
        "update": {resolve_id(k, created_ids): v for k, v in update.items()},
        "destroy": [resolve_id(i, created_ids) for i in destroy],
    }


def _check_filter(filter_: Any, depth: int = 0) -> Any:
    if filter_ is None:
        return None
    if depth > 16:
        raise MethodError("unsupportedFilter", "filter nested too deeply")
    if not isinstance(filter_, dict):
        raise MethodError("invalidArguments", "filter must be an object", arguments=["filter"])
    if "operator" in filter_:
        if filter_.get("operator") not in ("AND", "OR", "NOT") or not isinstance(filter_.get("conditions"), list) or set(filter_) != {"operator", "conditions"}:
            raise MethodError("invalidArguments", "a FilterOperator needs operator AND/OR/NOT and conditions", arguments=["filter"])
        for condition in filter_["conditions"]:
            _check_filter(condition, depth + 1)
    return filter_


def _matches(object_type: ObjectType, obj: Dict, filter_: Dict) -> bool:
    if "operator" in filter_:
        results = (_matches(object_type, obj, c) for c in filter_["conditions"])
        if filter_["operator"] == "AND":
            return all(results)
        if filter_["operator"] == "OR":
            return any(results)
        return not any(results)
    return object_type.match(obj, filter_)


def _check_sort(sort: Any) -> List[Dict[str, Any]]:
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "sort must be an array of Comparators", arguments=["sort"])
    checked = []
    for comparator in sort:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise MethodError("invalidArguments", "a Comparator needs a property", arguments=["sort"])
        ascending = comparator.get("isAscending", True)
        collation = comparator.get("collation", "i;unicode-casemap")
        if not isinstance(ascending, bool) or not isinstance(collation, str):
            raise MethodError("invalidArguments", "bad Comparator", arguments=["sort"])
        if collation not in COLLATIONS:
            raise MethodError("unsupportedSort", f"unknown collation {collation!r}")
        checked.append({"property": comparator["property"], "isAscending": ascending, "collation": collation})
    return checked
