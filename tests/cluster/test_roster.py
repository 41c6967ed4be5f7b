"""Tests for L{stalwart.cluster.roster}: records, exchange documents, founding and the leader's changes."""

import json

import attrs
from twisted.trial.unittest import SynchronousTestCase

from stalwart.cluster.roster import (
    AddLearner, BadRoster, NodeRecord, Promote, Roster, decode_records, encode_records, next_change,
    parse_seed, should_found,
)


def record(node_id, **kw):
    return NodeRecord(node_id=node_id, rpc_address=("127.0.0.1", 7911), jmap_url=f"https://{node_id}:8080", **kw)


class RecordTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """Records survive the exchange document unchanged."""
        records = [record("a"), record("b", read_replica=True, cluster_id="a", fresh=False, version=7)]
        self.assertEqual(decode_records(encode_records(records)), records)

    def test_gossip_state_rides_along(self) -> None:
        """The gossip full state travels in the same document, and is checked."""
        from stalwart.cluster.roster import decode_exchange

        self.assertEqual(decode_exchange(encode_records([record("a")], swim=b"\x01\x02")), ([record("a")], b"\x01\x02"))
        self.assertEqual(decode_exchange(encode_records([record("a")])), ([record("a")], None))
        with self.assertRaises(BadRoster):
            decode_exchange(json.dumps({"v": 1, "records": [], "swim": "***"}).encode())
        with self.assertRaises(BadRoster):
            decode_exchange(json.dumps({"v": 1, "records": [], "swim": 5}).encode())

    def test_bad_documents(self) -> None:
        """Anything malformed is refused with BadRoster, never another exception."""
        good = record("a").to_json()
        bad = [
            b"not json", b"\xff\xfe", b"[]", b'{"v": 2, "records": []}', b'{"v": 1}',
            json.dumps({"v": 1, "records": [1]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "id": "../x"}]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "rpc": ["h", 70000]}]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "rpc": ["h"]}]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "version": -1}]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "version": True}]}).encode(),
            json.dumps({"v": 1, "records": [{**good, "fresh": "yes"}]}).encode(),
            json.dumps({"v": 1, "records": [{k: v for k, v in good.items() if k != "jmap"}]}).encode(),
            json.dumps({"v": 1, "records": [good] * 1025}).encode(),
        ]
        for data in bad:
            with self.assertRaises(BadRoster, msg=data[:80]):
                decode_records(data)

    def test_parse_seed(self) -> None:
        self.assertEqual(parse_seed("10.0.0.1", 7911), ("10.0.0.1", 7911))
        self.assertEqual(parse_seed(" 127.0.0.1:7912 ", 7911), ("127.0.0.1", 7912))
        self.assertEqual(parse_seed("[::1]:7913", 7911), ("::1", 7913))
        self.assertEqual(parse_seed("::1", 7911), ("::1", 7911))
        for bad in ("", ":7911", "h:0", "h:x", "h:70000"):
            with self.assertRaises(ValueError):
                parse_seed(bad, 7911)


class RosterTests(SynchronousTestCase):
    def test_newest_record_wins(self) -> None:
        roster = Roster(record("a"), now=0)
        self.assertEqual(roster.merge([record("b", version=2)], now=1), [record("b", version=2)])
        self.assertEqual(roster.merge([record("b", version=1, fresh=False)], now=2), [])
        self.assertEqual(roster.get("b"), record("b", version=2))
        self.assertEqual(roster.changed_at, 1)

    def test_own_record_only_changed_by_us(self) -> None:
        roster = Roster(record("a"), now=0)
        roster.merge([attrs.evolve(record("a", version=99), jmap_url="https://evil")], now=1)
        self.assertEqual(roster.own, record("a"))
        self.assertTrue(roster.update_own(now=5, fresh=False))
        self.assertGreater(roster.own.version, 0)
        self.assertFalse(roster.update_own(now=6, fresh=False))

    def test_update_of_known_node_does_not_reset_settling(self) -> None:
        roster = Roster(record("a"), now=0)
        roster.merge([record("b", version=1)], now=1)
        roster.merge([record("b", version=2, fresh=False)], now=9)
        self.assertEqual(roster.changed_at, 1)

    def test_addresses(self) -> None:
        roster = Roster(record("a"), now=0)
        roster.merge([attrs.evolve(record("b"), rpc_address=("h", 1))], now=0)
        self.assertEqual(roster.addresses(), {"a": ("127.0.0.1", 7911), "b": ("h", 1)})


class FoundTests(SynchronousTestCase):
    def roster(self, me="a", others=("b", "c"), **kw):
        roster = Roster(record(me), now=0)
        roster.merge([record(o, **kw) for o in others], now=0)
        return roster

    def test_smallest_fresh_node_founds_after_settling(self) -> None:
        self.assertFalse(should_found(self.roster(), now=1, settle_seconds=2))
        self.assertTrue(should_found(self.roster(), now=2, settle_seconds=2))
        self.assertFalse(should_found(self.roster(me="b", others=("a", "c")), now=5, settle_seconds=2))

    def test_alone_never_founds(self) -> None:
        """One node is not a cluster: a node that knows nobody waits for its seeds."""
        self.assertFalse(should_found(Roster(record("a"), now=0), now=100, settle_seconds=2))

    def test_existing_cluster_is_joined_not_founded(self) -> None:
        self.assertFalse(should_found(self.roster(others=("b",), cluster_id="b", fresh=False), now=9, settle_seconds=2))
        self.assertFalse(should_found(self.roster(others=("b",), fresh=False), now=9, settle_seconds=2))

    def test_read_replica_never_founds_nor_counts(self) -> None:
        roster = Roster(record("a", read_replica=True), now=0)
        roster.merge([record("b")], now=0)
        self.assertFalse(should_found(roster, now=9, settle_seconds=2))
        roster = Roster(record("b"), now=0)
        roster.merge([record("a", read_replica=True)], now=0)
        self.assertTrue(should_found(roster, now=9, settle_seconds=2))


class NextChangeTests(SynchronousTestCase):
    def roster(self, *records):
        roster = Roster(record("a", cluster_id="a", fresh=False), now=0)
        roster.merge(records, now=0)
        return roster

    def test_adds_fresh_nodes_as_learners_one_at_a_time(self) -> None:
        roster = self.roster(record("b"), record("c"))
        self.assertEqual(next_change(roster, "a", {"a"}, (), {}, 10, 100), AddLearner("b"))
        self.assertEqual(next_change(roster, "a", {"a"}, {"b"}, {"b": 0}, 10, 5), AddLearner("c"))

    def test_refuses_nodes_of_another_cluster(self) -> None:
        roster = self.roster(record("b", cluster_id="b", fresh=False), record("c", fresh=False))
        self.assertIsNone(next_change(roster, "a", {"a"}, (), {}, 10, 100))
        roster = self.roster(record("b", cluster_id="a", fresh=False))
        self.assertEqual(next_change(roster, "a", {"a"}, (), {}, 10, 100), AddLearner("b"))

    def test_promotes_caught_up_learners_but_not_replicas(self) -> None:
        roster = self.roster(record("b"), record("r", read_replica=True))
        self.assertIsNone(next_change(roster, "a", {"a"}, {"b", "r"}, {"b": 0, "r": 100}, 100, 10))
        self.assertEqual(next_change(roster, "a", {"a"}, {"b", "r"}, {"b": 95, "r": 100}, 100, 10), Promote("b"))

    def test_removed_nodes_stay_out(self) -> None:
        """A node an operator removed is not added back, though it still answers exchanges."""
        roster = self.roster(record("b", cluster_id="a", fresh=False), record("c"))
        self.assertEqual(next_change(roster, "a", {"a"}, (), {}, 10, 100, removed={"b"}), AddLearner("c"))
        self.assertIsNone(next_change(roster, "a", {"a"}, {"c"}, {"c": 0}, 10, 5, removed={"b"}))

    def test_never_removes(self) -> None:
        """A voter missing from the roster stays: removal is never automatic here."""
        roster = self.roster()
        self.assertIsNone(next_change(roster, "a", {"a", "gone"}, (), {}, 10, 100))
