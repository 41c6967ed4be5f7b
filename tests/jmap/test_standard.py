# -*- test-case-name: tests.jmap.test_standard -*-
"""
Tests for L{stalwart.jmap.methods.standard}: the standard methods of RFC
8620 section 5 over the test-only C{Note} type, on a whole node run
in-process (L{tests.jmap.harness}): every write goes through the Raft log
and the state machine, every read through the store reader.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.methods.standard import StandardMethods
from tests.jmap.harness import LiveNode
from tests.jmap.notes import Note


class _NoteTestCase(SynchronousTestCase):
    config: dict = {}

    def setUp(self) -> None:
        self.live = LiveNode(self, **self.config)
        self.account = self.live.quick_account("alice")

    def call(self, name: str, arguments: dict, account: str = None):
        return self.live.call(account or self.account, name, arguments)

    def create(self, *titles: str, **extra) -> list:
        """Create one note per title; their ids, in order."""
        create = {f"k{n}": {"title": title, **extra} for n, title in enumerate(titles)}
        name, response = self.call("Note/set", {"create": create})
        self.assertEqual(name, "Note/set", response)
        return [response["created"][f"k{n}"]["id"] for n in range(len(titles))]

    def state(self) -> str:
        return self.call("Note/get", {"ids": []})[1]["state"]

    def assertError(self, response, error_type: str) -> dict:
        name, arguments = response
        self.assertEqual((name, arguments.get("type")), ("error", error_type), arguments)
        return arguments


class SetTests(_NoteTestCase):
    """Note/set (RFC 8620 5.3)."""

    def test_create_update_destroy_in_one_call(self):
        """
        One /set creates, updates and destroys; the response has oldState,
        newState, created (with the id and every defaulted property),
        updated (id -> null) and destroyed, and null for the not* maps
        (RFC 8620 5.3).
        """
        first, second = self.create("first", "second")
        old = self.state()
        name, response = self.call("Note/set", {
            "ifInState": old,
            "create": {"n1": {"title": "new", "pinned": True}},
            "update": {first: {"body": "changed"}},
            "destroy": [second],
        })
        self.assertEqual(name, "Note/set")
        self.assertEqual(response["oldState"], old)
        self.assertNotEqual(response["newState"], old)
        created = response["created"]["n1"]
        self.assertEqual(created, {"id": created["id"], "body": "", "createdBy": None})
        self.assertEqual(response["updated"], {first: None})
        self.assertEqual(response["destroyed"], [second])
        for key in ("notCreated", "notUpdated", "notDestroyed"):
            self.assertIsNone(response[key])
        self.assertEqual(response["newState"], self.state())
        listed = self.call("Note/get", {"ids": None})[1]["list"]
        self.assertEqual(
            sorted((o["id"], o["title"], o["body"], o["pinned"]) for o in listed),
            sorted([(first, "first", "changed", False), (created["id"], "new", "", True)]),
        )

    def test_if_in_state_mismatch(self):
        """
        ifInState that is not the current state: stateMismatch, and
        nothing changes (RFC 8620 5.3).
        """
        self.create("one")
        old = self.state()
        self.assertError(self.call("Note/set", {"ifInState": "0", "create": {"n": {"title": "x"}}}), "stateMismatch")
        self.assertEqual(self.state(), old)

    def test_invalid_properties(self):
        """
        A create with an unknown property, a value of the wrong type, the
        server-set id or without a required property is refused with
        invalidProperties naming the properties (RFC 8620 5.3).
        """
        name, response = self.call("Note/set", {"create": {
            "unknown": {"title": "a", "colour": "red"},
            "wrongType": {"title": "a", "pinned": "yes"},
            "serverSet": {"title": "a", "id": "N99"},
            "missing": {"body": "no title"},
        }})
        self.assertIsNone(response["created"])
        errors = response["notCreated"]
        self.assertEqual({k: (v["type"], v["properties"]) for k, v in errors.items()}, {
            "unknown": ("invalidProperties", ["colour"]),
            "wrongType": ("invalidProperties", ["pinned"]),
            "serverSet": ("invalidProperties", ["id"]),
            "missing": ("invalidProperties", ["title"]),
        })
        self.assertEqual(self.state(), "0")

    def test_update_immutable_and_server_set(self):
        """
        An update may repeat the id and an immutable property unchanged,
        but changing either is invalidProperties (RFC 8620 5.3: "it is not
        an error to include a server-set property in an update as long as
        the value is identical").
        """
        (note,) = self.create("x", createdBy="me")
        (other,) = self.create("y")
        name, response = self.call("Note/set", {"update": {note: {"id": note, "createdBy": "me", "title": "z"}}})
        self.assertEqual(response["updated"], {note: None})
        name, response = self.call("Note/set", {"update": {note: {"createdBy": "you"}}})
        self.assertEqual(response["notUpdated"][note]["properties"], ["createdBy"])
        name, response = self.call("Note/set", {"update": {note: {"id": other}}})
        self.assertEqual(response["notUpdated"][note]["type"], "invalidProperties")
        self.assertEqual(response["notUpdated"][note]["properties"], ["id"])
        listed = self.call("Note/get", {"ids": [note, other]})[1]["list"]
        self.assertEqual([(o["id"], o["title"]) for o in listed], [(note, "z"), (other, "y")])

    def test_invalid_patch(self):
        """
        A patch that is not an object, or whose path goes through a
        non-object, is invalidPatch (RFC 8620 5.3).
        """
        (note,) = self.create("x")
        name, response = self.call("Note/set", {"update": {note: {"title/deeper": "y"}}})
        self.assertEqual(response["notUpdated"][note]["type"], "invalidPatch")
        name, response = self.call("Note/set", {"update": {note: ["not", "a", "patch"]}})
        self.assertEqual(response["notUpdated"][note]["type"], "invalidPatch")

    def test_not_found(self):
        """Updating or destroying an id that does not exist: notFound (RFC 8620 5.3)."""
        name, response = self.call("Note/set", {"update": {"N404": {"title": "a"}}, "destroy": ["N405"]})
        self.assertEqual(response["notUpdated"]["N404"]["type"], "notFound")
        self.assertEqual(response["notDestroyed"]["N405"]["type"], "notFound")
        self.assertEqual(response["oldState"], response["newState"])

    def test_creation_reference_within_one_call(self):
        """
        "#n1" in update and destroy of the same /set names the object
        created as n1 in it: creates happen first (RFC 8620 5.3).
        """
        name, response = self.call("Note/set", {
            "create": {"n1": {"title": "a"}, "n2": {"title": "b"}},
            "update": {"#n1": {"title": "a2"}},
            "destroy": ["#n2"],
        })
        n1, n2 = response["created"]["n1"]["id"], response["created"]["n2"]["id"]
        self.assertEqual(response["updated"], {n1: None})
        self.assertEqual(response["destroyed"], [n2])

    def test_creation_reference_across_calls(self):
        """
        A creation id made by one call can be referenced by later calls of
        the same request; createdIds is in the response when the request
        sent it, with the request's own entries kept (RFC 8620 3.3, 3.4, 5.3).
        """
        response = self.live.process(self.account, [
            ["Note/set", {"accountId": self.account, "create": {"n1": {"title": "a"}}}, "0"],
            ["Note/set", {"accountId": self.account, "update": {"#n1": {"body": "b"}}}, "1"],
            ["Note/get", {"accountId": self.account, "ids": ["#n1", "#old"]}, "2"],
        ], createdIds={"old": "N77"})
        new_id = response["methodResponses"][0][1]["created"]["n1"]["id"]
        self.assertEqual(response["createdIds"], {"old": "N77", "n1": new_id})
        self.assertEqual(response["methodResponses"][1][1]["updated"], {new_id: None})
        get = response["methodResponses"][2][1]
        self.assertEqual([(o["id"], o["body"]) for o in get["list"]], [(new_id, "b")])
        self.assertEqual(get["notFound"], ["N77"])
        without = self.live.process(self.account, [["Core/echo", {}, "0"]])
        self.assertNotIn("createdIds", without)

    def test_too_many_objects(self):
        """More creates, updates and destroys than maxObjectsInSet: requestTooLarge (RFC 8620 5.3)."""
        create = {f"c{i}": {"title": "x"} for i in range(self.live.config.max_objects_in_set + 1)}
        self.assertError(self.call("Note/set", {"create": create}), "requestTooLarge")

    def test_other_account(self):
        """An accountId the user does not own: accountNotFound (RFC 8620 3.6.2)."""
        bob = self.live.quick_account("bob")
        for name, args in [("Note/get", {"ids": None}), ("Note/set", {"create": {}}),
                           ("Note/changes", {"sinceState": "0"}), ("Note/query", {})]:
            response = self.live.call(self.account, name, {**args, "accountId": bob})
            self.assertError(response, "accountNotFound")


class GetTests(_NoteTestCase):
    """Note/get (RFC 8620 5.1)."""

    config = {"max_objects_in_get": 3}

    def test_all_and_properties(self):
        """
        ids null returns every object; properties limits the properties
        returned, and the id is always included (RFC 8620 5.1).
        """
        ids = self.create("a", "b")
        name, response = self.call("Note/get", {"ids": None, "properties": ["title"]})
        self.assertEqual(name, "Note/get")
        self.assertEqual(response["list"], [{"id": ids[0], "title": "a"}, {"id": ids[1], "title": "b"}])
        self.assertEqual(response["notFound"], [])
        self.assertEqual(response["state"], self.state())

    def test_not_found(self):
        """Ids that do not exist are listed in notFound, once each (RFC 8620 5.1)."""
        (a,) = self.create("a")
        response = self.call("Note/get", {"ids": [a, "N999", "N999"]})[1]
        self.assertEqual([o["id"] for o in response["list"]], [a])
        self.assertEqual(response["notFound"], ["N999"])

    def test_unknown_property(self):
        """An unknown property in properties is invalidArguments (RFC 8620 5.1)."""
        self.assertError(self.call("Note/get", {"ids": None, "properties": ["nope"]}), "invalidArguments")

    def test_request_too_large(self):
        """
        More ids than maxObjectsInGet, or ids null when there are more
        objects than that, is requestTooLarge (RFC 8620 5.1).
        """
        self.assertError(self.call("Note/get", {"ids": ["N1", "N2", "N3", "N4"]}), "requestTooLarge")
        self.create("a", "b", "c")
        self.assertEqual(len(self.call("Note/get", {"ids": None})[1]["list"]), 3)
        self.create("d")
        self.assertError(self.call("Note/get", {"ids": None}), "requestTooLarge")


class ChangesTests(_NoteTestCase):
    """Note/changes (RFC 8620 5.2)."""

    def test_created_updated_destroyed(self):
        """
        Since a state: objects created since are in created, changed ones
        in updated, gone ones in destroyed; one created and destroyed since
        appears nowhere (RFC 8620 5.2).
        """
        keep, change, drop = self.create("keep", "change", "drop")
        since = self.state()
        (fresh,) = self.create("fresh")
        (ephemeral,) = self.create("ephemeral")
        self.call("Note/set", {"update": {change: {"title": "changed"}}, "destroy": [drop, ephemeral]})
        name, response = self.call("Note/changes", {"sinceState": since})
        self.assertEqual(name, "Note/changes")
        self.assertEqual(response["oldState"], since)
        self.assertEqual(response["newState"], self.state())
        self.assertFalse(response["hasMoreChanges"])
        self.assertEqual(
            (response["created"], response["updated"], response["destroyed"]), ([fresh], [change], [drop])
        )

    def test_no_changes(self):
        """From the current state: nothing changed and newState is oldState (RFC 8620 5.2)."""
        self.create("a")
        state = self.state()
        response = self.call("Note/changes", {"sinceState": state})[1]
        self.assertEqual((response["newState"], response["created"], response["hasMoreChanges"]), (state, [], False))

    def test_paging(self):
        """
        With maxChanges, each answer has at most that many ids and
        hasMoreChanges until the chain of newStates reaches the current
        state; together the pages list every change once (RFC 8620 5.2).
        """
        ids = self.create(*"abcde")
        self.call("Note/set", {"update": {ids[0]: {"title": "A"}}})
        since, seen, pages = "0", [], 0
        while True:
            response = self.call("Note/changes", {"sinceState": since, "maxChanges": 2})[1]
            pages += 1
            batch = response["created"] + response["updated"] + response["destroyed"]
            self.assertLessEqual(len(batch), 2)
            self.assertEqual(response["oldState"], since)
            seen += batch
            since = response["newState"]
            if not response["hasMoreChanges"]:
                break
            self.assertLess(pages, 10)
        self.assertEqual(since, self.state())
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(pages, 3)

    def test_cannot_calculate(self):
        """An unknown, malformed or future state: cannotCalculateChanges (RFC 8620 5.2)."""
        self.create("a")
        for bogus in ("bogus", "-1", "999", ""):
            self.assertError(self.call("Note/changes", {"sinceState": bogus}), "cannotCalculateChanges")

    def test_max_changes_must_be_positive(self):
        """maxChanges 0 is invalidArguments: it must be a positive Int (RFC 8620 5.2)."""
        self.assertError(self.call("Note/changes", {"sinceState": "0", "maxChanges": 0}), "invalidArguments")


class QueryTests(_NoteTestCase):
    """Note/query (RFC 8620 5.5)."""

    config = {"query_max_results": 4}

    def setUp(self) -> None:
        super().setUp()
        self.ids = dict(zip(["banana", "Apple", "cherry", "apricot", "10", "9"],
                            self.create("banana", "Apple", "cherry", "apricot", "10", "9")))
        self.call("Note/set", {"update": {self.ids["banana"]: {"pinned": True}, self.ids["10"]: {"pinned": True}}})

    def query(self, **arguments):
        name, response = self.call("Note/query", arguments)
        self.assertEqual(name, "Note/query", response)
        return response

    def titles(self, ids):
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[i] for i in ids]

    def test_filter_operators(self):
        """
        FilterConditions match (strings: substring, case-insensitive) and
        combine with AND, OR and NOT (RFC 8620 5.5).
        """
        def titles(filter_):
            return sorted(self.titles(self.query(filter=filter_, limit=4)["ids"]))

        self.assertEqual(titles({"title": "ap"}), ["Apple", "apricot"])
        self.assertEqual(titles({"operator": "AND", "conditions": [{"pinned": True}, {"title": "an"}]}), ["banana"])
        self.assertEqual(titles({"operator": "OR", "conditions": [{"title": "cherry"}, {"title": "9"}]}), ["9", "cherry"])
        self.assertEqual(
            titles({"operator": "NOT", "conditions": [{"pinned": False}, {"title": "a"}]}), ["10"]
        )

    def test_unsupported_filter(self):
        """A condition on a property that cannot be filtered: unsupportedFilter (RFC 8620 5.5)."""
        self.assertError(self.call("Note/query", {"filter": {"body": "x"}}), "unsupportedFilter")

    def test_sort_and_collations(self):
        """
        Comparators sort ascending or descending, under the collation asked
        for: i;ascii-casemap ignores ASCII case, i;ascii-numeric compares
        leading digits as numbers and puts strings without digits last
        (RFC 8620 5.5, RFC 4790 9.2, 9.3).
        """
        filter_ = {"operator": "NOT", "conditions": [{"title": "9"}, {"title": "10"}]}
        ascending = self.query(filter=filter_, sort=[{"property": "title", "collation": "i;ascii-casemap"}])
        self.assertEqual(self.titles(ascending["ids"]), ["Apple", "apricot", "banana", "cherry"])
        descending = self.query(filter=filter_, sort=[{"property": "title", "isAscending": False, "collation": "i;unicode-casemap"}])
        self.assertEqual(self.titles(descending["ids"]), ["cherry", "banana", "apricot", "Apple"])
        numeric = self.query(filter={"operator": "OR", "conditions": [{"title": "9"}, {"title": "10"}, {"title": "cherry"}]},
                             sort=[{"property": "title", "collation": "i;ascii-numeric"}])
        self.assertEqual(self.titles(numeric["ids"]), ["9", "10", "cherry"])
        pinned_first = self.query(sort=[{"property": "pinned", "isAscending": False}, {"property": "title"}], limit=3)
        self.assertEqual(self.titles(pinned_first["ids"]), ["10", "banana", "9"])

    def test_unsupported_sort(self):
        """
        Sorting on a property that is not sortable, or under an unknown
        collation, is unsupportedSort (RFC 8620 5.5).
        """
        self.assertError(self.call("Note/query", {"sort": [{"property": "body"}]}), "unsupportedSort")
        self.assertError(self.call("Note/query", {"sort": [{"property": "title", "collation": "i;klingon"}]}), "unsupportedSort")

    def test_position(self):
        """
        position skips results; a negative position counts from the end
        and is clamped to 0; past the end the ids are empty (RFC 8620 5.5).
        """
        sort = [{"property": "title", "collation": "i;ascii-casemap"}]
        every = self.titles(self.query(sort=sort, limit=4)["ids"] + self.query(sort=sort, position=4)["ids"])
        self.assertEqual(every, ["10", "9", "Apple", "apricot", "banana", "cherry"])
        response = self.query(sort=sort, position=2, limit=2)
        self.assertEqual((response["position"], self.titles(response["ids"])), (2, ["Apple", "apricot"]))
        response = self.query(sort=sort, position=-2)
        self.assertEqual((response["position"], self.titles(response["ids"])), (4, ["banana", "cherry"]))
        response = self.query(sort=sort, position=-100, limit=1)
        self.assertEqual((response["position"], self.titles(response["ids"])), (0, ["10"]))
        response = self.query(sort=sort, position=100)
        self.assertEqual(response["ids"], [])

    def test_anchor(self):
        """
        anchor plus anchorOffset picks the start (clamped to 0), position
        is ignored; an anchor not in the results is anchorNotFound (RFC 8620 5.5).
        """
        sort = [{"property": "title", "collation": "i;ascii-casemap"}]
        response = self.query(sort=sort, anchor=self.ids["apricot"], anchorOffset=-1, position=5, limit=2)
        self.assertEqual((response["position"], self.titles(response["ids"])), (2, ["Apple", "apricot"]))
        response = self.query(sort=sort, anchor=self.ids["9"], anchorOffset=-5, limit=1)
        self.assertEqual((response["position"], self.titles(response["ids"])), (0, ["10"]))
        self.assertError(
            self.call("Note/query", {"filter": {"title": "cherry"}, "anchor": self.ids["apricot"]}), "anchorNotFound"
        )

    def test_limit_and_total(self):
        """
        The server caps limit at its maximum and then returns the limit it
        used; calculateTotal adds the number of results; without it total
        is omitted (RFC 8620 5.5).
        """
        response = self.query(limit=2, calculateTotal=True)
        self.assertEqual((len(response["ids"]), response["total"]), (2, 6))
        self.assertNotIn("limit", response)
        response = self.query(limit=100)
        self.assertEqual((len(response["ids"]), response["limit"]), (4, 4))
        self.assertNotIn("total", response)
        response = self.query()
        self.assertEqual((len(response["ids"]), response["limit"]), (4, 4))
        self.assertTrue(response["canCalculateChanges"])
        self.assertEqual(response["queryState"], self.state())

    def test_result_reference(self):
        """
        "#ids" with a ResultReference to the /query response feeds its ids
        to /get in the same request (RFC 8620 3.7).
        """
        account = self.account
        response = self.live.process(account, [
            ["Note/query", {"accountId": account, "filter": {"pinned": True},
                            "sort": [{"property": "title", "collation": "i;ascii-numeric"}]}, "q"],
            ["Note/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Note/query", "path": "/ids"},
                          "properties": ["title"]}, "g"],
        ])
        (query, get) = response["methodResponses"]
        self.assertEqual(get[0], "Note/get")
        self.assertEqual([o["title"] for o in get[1]["list"]], ["10", "banana"])
        self.assertEqual([o["id"] for o in get[1]["list"]], query[1]["ids"])


class QueryChangesTests(_NoteTestCase):
    """Note/queryChanges (RFC 8620 5.6)."""

    def test_replay_gives_new_results(self):
        """
        Removing every id in removed from the old results and inserting
        added at their indexes gives the new results (RFC 8620 5.6).
        """
        sort = [{"property": "title"}]
        a, b, c, d = self.create("a", "b", "c", "d")
        old = self.call("Note/query", {"sort": sort})[1]
        self.call("Note/set", {"update": {a: {"title": "z"}}, "destroy": [b]})
        self.create("bb")
        new = self.call("Note/query", {"sort": sort})[1]
        name, changes = self.call("Note/queryChanges", {"sort": sort, "sinceQueryState": old["queryState"], "calculateTotal": True})
        self.assertEqual(name, "Note/queryChanges")
        self.assertEqual(changes["oldQueryState"], old["queryState"])
        self.assertEqual(changes["newQueryState"], new["queryState"])
        self.assertEqual(changes["total"], 4)
        self.assertTrue({a, b} <= set(changes["removed"]))
        ids = [i for i in old["ids"] if i not in changes["removed"]]
        for added in sorted(changes["added"], key=lambda x: x["index"]):
            ids.insert(added["index"], added["id"])
        self.assertEqual(ids, new["ids"])

    def test_too_many_changes(self):
        """More changes than maxChanges: tooManyChanges (RFC 8620 5.6)."""
        state = self.call("Note/query", {})[1]["queryState"]
        self.create("a", "b", "c")
        self.assertError(self.call("Note/queryChanges", {"sinceQueryState": state, "maxChanges": 2}), "tooManyChanges")
        self.assertEqual(len(self.call("Note/queryChanges", {"sinceQueryState": state, "maxChanges": 3})[1]["added"]), 3)

    def test_unknown_state(self):
        """An unknown query state: cannotCalculateChanges (RFC 8620 5.6)."""
        self.assertError(self.call("Note/queryChanges", {"sinceQueryState": "nope"}), "cannotCalculateChanges")


class CopyTests(_NoteTestCase):
    """Note/copy (RFC 8620 5.4)."""

    def test_refused_for_a_single_account_user(self):
        """
        A user who owns one account cannot copy from another account:
        fromAccountNotFound; copying within one account is
        invalidArguments (RFC 8620 5.4).
        """
        bob = self.live.quick_account("bob")
        self.assertError(self.call("Note/copy", {"fromAccountId": bob, "create": {"c": {"id": "N1"}}}), "fromAccountNotFound")
        self.assertError(
            self.call("Note/copy", {"fromAccountId": self.account, "create": {"c": {"id": "N1"}}}), "invalidArguments"
        )

    def copy(self, target: str, arguments: dict, created_ids: dict = None) -> list:
        """Run apply_copy through the log for C{target}, as a multi-account user would."""
        context = self.successResultOf(self.live.node.request_context(_principal(target)))
        return self.successResultOf(context.write("Note/copy", target, arguments, created_ids if created_ids is not None else {}))

    def test_apply_copy(self):
        """
        Copying creates new objects in the target account, with properties
        overridden as asked and new ids, and reports notFound for a missing
        source (RFC 8620 5.4).
        """
        first, second = self.create("first", "second")
        bob = self.live.quick_account("bob")
        created_ids = {}
        responses = self.copy(bob, {
            "fromAccountId": self.account, "ifFromInState": None, "ifInState": None,
            "create": {"c1": {"id": first}, "c2": {"id": second, "title": "renamed"}, "c3": {"id": "N404"}},
            "onSuccessDestroyOriginal": False, "destroyFromIfInState": None,
        }, created_ids)
        ((name, response),) = responses
        self.assertEqual(name, "Note/copy")
        self.assertEqual((response["fromAccountId"], response["accountId"]), (self.account, bob))
        self.assertEqual(response["notCreated"], {"c3": {"type": "notFound", "description": "no Note N404"}})
        self.assertEqual(set(response["created"]), {"c1", "c2"})
        self.assertEqual(created_ids, {k: v["id"] for k, v in response["created"].items()})
        copied = self.live.call(bob, "Note/get", {"ids": None})[1]["list"]
        self.assertEqual(sorted(o["title"] for o in copied), ["first", "renamed"])
        self.assertEqual(len(self.call("Note/get", {"ids": None})[1]["list"]), 2)

    def test_apply_copy_destroying_originals(self):
        """
        With onSuccessDestroyOriginal, the originals that were copied are
        destroyed by an implicit /set in the source account, whose response
        follows the /copy response (RFC 8620 5.4).
        """
        first, second = self.create("first", "second")
        bob = self.live.quick_account("bob")
        responses = self.copy(bob, {
            "fromAccountId": self.account, "ifFromInState": None, "ifInState": None,
            "create": {"c1": {"id": first}}, "onSuccessDestroyOriginal": True, "destroyFromIfInState": None,
        })
        self.assertEqual([name for name, _ in responses], ["Note/copy", "Note/set"])
        self.assertEqual(responses[1][1]["accountId"], self.account)
        self.assertEqual(responses[1][1]["destroyed"], [first])
        remaining = self.call("Note/get", {"ids": None})[1]["list"]
        self.assertEqual([o["id"] for o in remaining], [second])

    def test_apply_copy_state_mismatch(self):
        """ifFromInState that is not the source's state: stateMismatch, nothing copied (RFC 8620 5.4)."""
        (first,) = self.create("first")
        bob = self.live.quick_account("bob")
        failure = self.failureResultOf(
            self.successResultOf(self.live.node.request_context(_principal(bob))).write("Note/copy", bob, {
                "fromAccountId": self.account, "ifFromInState": "0", "ifInState": None,
                "create": {"c1": {"id": first}}, "onSuccessDestroyOriginal": False, "destroyFromIfInState": None,
            }, {})
        )
        self.assertEqual(failure.value.to_json()["type"], "stateMismatch")
        self.assertEqual(self.live.call(bob, "Note/get", {"ids": None})[1]["list"], [])


class MethodTableTests(SynchronousTestCase):
    def test_names(self):
        """StandardMethods offers the six methods of RFC 8620 section 5 and two writes."""
        methods = StandardMethods(Note())
        self.assertEqual(sorted(methods.methods()), [
            "Note/changes", "Note/copy", "Note/get", "Note/query", "Note/queryChanges", "Note/set"])
        self.assertEqual(sorted(methods.writes()), ["Note/copy", "Note/set"])


def _principal(account_id: str):
    from stalwart.auth.authenticate import Principal

    return Principal(account_id=account_id, name=account_id)


class PatchNullTests(SynchronousTestCase):
    def test_null_resets_to_default(self) -> None:
        """A patch setting a property to null resets it to its default (RFC 8620 5.3); a required one without default is refused."""
        from tests.jmap.harness import LiveNode

        live = LiveNode(self)
        account = live.quick_account("patch-null")
        _, created = live.call(account, "Note/set", {"create": {"n": {"title": "t", "body": "text", "pinned": True}}})
        note_id = created["created"]["n"]["id"]
        _, result = live.call(account, "Note/set", {"update": {note_id: {"body": None, "pinned": None}}})
        self.assertEqual(result["updated"], {note_id: None})
        _, got = live.call(account, "Note/get", {"ids": [note_id]})
        self.assertEqual((got["list"][0]["body"], got["list"][0]["pinned"]), ("", False))
        _, result = live.call(account, "Note/set", {"update": {note_id: {"title": None}}})
        self.assertEqual(result["notUpdated"][note_id]["type"], "invalidProperties")
