# -*- test-case-name: tests.jmap.test_session -*-
"""
Tests for L{stalwart.jmap.session}: the Session object of RFC 8620 2.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from stalwart.jmap.session import (
    CORE_CAPABILITY,
    AccountInfo,
    core_capability,
    session_object,
    session_state,
)

MAIL = "urn:ietf:params:jmap:mail"
CONTACTS = "urn:ietf:params:jmap:contacts"
FOOBAR = "https://example.com/apis/foobar"

# The example Session object of RFC 8620 2.1, with the "..." elided
# account capability properties left out and the URLs joined.
RFC_EXAMPLE = {
    "capabilities": {
        "urn:ietf:params:jmap:core": {
            "maxSizeUpload": 50000000,
            "maxConcurrentUpload": 8,
            "maxSizeRequest": 10000000,
            "maxConcurrentRequests": 8,
            "maxCallsInRequest": 32,
            "maxObjectsInGet": 256,
            "maxObjectsInSet": 128,
            "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
        },
        "urn:ietf:params:jmap:mail": {},
        "urn:ietf:params:jmap:contacts": {},
        "https://example.com/apis/foobar": {"maxFoosFinangled": 42},
    },
    "accounts": {
        "A13824": {
            "name": "john@example.com",
            "isPersonal": True,
            "isReadOnly": False,
            "accountCapabilities": {
                "urn:ietf:params:jmap:mail": {"maxMailboxesPerEmail": None, "maxMailboxDepth": 10},
                "urn:ietf:params:jmap:contacts": {},
            },
        },
        "A97813": {
            "name": "jane@example.com",
            "isPersonal": False,
            "isReadOnly": True,
            "accountCapabilities": {
                "urn:ietf:params:jmap:mail": {"maxMailboxesPerEmail": 1, "maxMailboxDepth": 10}
            },
        },
    },
    "primaryAccounts": {
        "urn:ietf:params:jmap:mail": "A13824",
        "urn:ietf:params:jmap:contacts": "A13824",
    },
    "username": "john@example.com",
    "apiUrl": "https://jmap.example.com/api/",
    "downloadUrl": "https://jmap.example.com/download/{accountId}/{blobId}/{name}?accept={type}",
    "uploadUrl": "https://jmap.example.com/upload/{accountId}/",
    "eventSourceUrl": "https://jmap.example.com/eventsource/?types={types}&closeafter={closeafter}&ping={ping}",
    "state": "75128aab4b1b",
}


def _example_core() -> dict:
    return core_capability(
        max_size_upload=50000000,
        max_concurrent_upload=8,
        max_size_request=10000000,
        max_concurrent_requests=8,
        max_calls_in_request=32,
        max_objects_in_get=256,
        max_objects_in_set=128,
    )


def _example_accounts() -> list[AccountInfo]:
    return [
        AccountInfo(
            id="A13824",
            name="john@example.com",
            is_personal=True,
            is_read_only=False,
            account_capabilities={
                MAIL: {"maxMailboxesPerEmail": None, "maxMailboxDepth": 10},
                CONTACTS: {},
            },
        ),
        AccountInfo(
            id="A97813",
            name="jane@example.com",
            is_personal=False,
            is_read_only=True,
            account_capabilities={MAIL: {"maxMailboxesPerEmail": 1, "maxMailboxDepth": 10}},
        ),
    ]


def _example(**overrides: Any) -> dict:
    arguments: dict[str, Any] = dict(
        username="john@example.com",
        accounts=_example_accounts(),
        capabilities={
            CORE_CAPABILITY: _example_core(),
            MAIL: {},
            CONTACTS: {},
            FOOBAR: {"maxFoosFinangled": 42},
        },
        api_url=RFC_EXAMPLE["apiUrl"],
        download_url=RFC_EXAMPLE["downloadUrl"],
        upload_url=RFC_EXAMPLE["uploadUrl"],
        event_source_url=RFC_EXAMPLE["eventSourceUrl"],
    )
    arguments.update(overrides)
    return session_object(**arguments)


class CoreCapabilityTests(SynchronousTestCase):
    """
    The C{urn:ietf:params:jmap:core} capability object (RFC 8620 2).
    """

    def test_example(self) -> None:
        """
        The limits of the RFC 8620 2.1 example give its core object, with
        the default collation algorithms.
        """
        self.assertEqual(_example_core(), RFC_EXAMPLE["capabilities"][CORE_CAPABILITY])

    def test_collations(self) -> None:
        """
        The collation algorithms can be chosen.
        """
        core = core_capability(
            max_size_upload=1,
            max_concurrent_upload=1,
            max_size_request=1,
            max_concurrent_requests=1,
            max_calls_in_request=1,
            max_objects_in_get=1,
            max_objects_in_set=1,
            collation_algorithms=("i;octet",),
        )
        self.assertEqual(core["collationAlgorithms"], ["i;octet"])

    def test_unsignedInts(self) -> None:
        """
        Every limit must be an UnsignedInt (RFC 8620 1.3): negative numbers,
        values above 2^53-1, booleans and floats are refused.
        """
        for bad in [-1, 2**53, True, 1.5, "5", None]:
            self.assertRaises(
                ValueError,
                core_capability,
                max_size_upload=1,
                max_concurrent_upload=1,
                max_size_request=1,
                max_concurrent_requests=1,
                max_calls_in_request=bad,
                max_objects_in_get=1,
                max_objects_in_set=1,
            )


class SessionObjectTests(SynchronousTestCase):
    """
    The Session object (RFC 8620 2).
    """

    def test_rfcExample(self) -> None:
        """
        The accounts and capabilities of the RFC 8620 2.1 example give that
        example's Session object, with the given state.  primaryAccounts
        maps mail and contacts to the personal account, and leaves out core
        and the vendor capability no account offers, as the example does.
        """
        self.assertEqual(_example(state="75128aab4b1b"), RFC_EXAMPLE)

    def test_isJSON(self) -> None:
        """
        The Session object round-trips through JSON unchanged.
        """
        session = _example()
        self.assertEqual(json.loads(json.dumps(session)), session)

    def test_defaultState(self) -> None:
        """
        Without an explicit state, the state is L{session_state} of the
        object: short hexadecimal, and the same for the same content.
        """
        session = _example()
        self.assertEqual(session["state"], session_state(session))
        self.assertEqual(session["state"], _example()["state"])
        self.assertEqual(len(session["state"]), 12)
        int(session["state"], 16)

    def test_stateChanges(self) -> None:
        """
        RFC 8620 2: the state changes whenever another property changes:
        an account added or renamed, a capability added, the username.
        """
        base = _example()["state"]
        extra = AccountInfo("A5", "shared@example.com", False, True, {MAIL: {}})
        renamed = _example_accounts()
        renamed[1] = AccountInfo("A97813", "janet@example.com", False, True, {MAIL: {}})
        others = [
            _example(accounts=_example_accounts() + [extra]),
            _example(accounts=renamed),
            _example(accounts=_example_accounts()[:1]),
            _example(username="jane@example.com"),
            _example(capabilities={CORE_CAPABILITY: _example_core(), MAIL: {}, CONTACTS: {}}),
        ]
        states = {base} | {session["state"] for session in others}
        self.assertEqual(len(states), len(others) + 1)

    def test_stateIgnoresOrderAndOwnState(self) -> None:
        """
        The state depends on content only: not on the order of keys, nor on
        a C{state} already present.
        """
        session = _example()
        reordered = dict(reversed(list(session.items())))
        reordered["state"] = "something else"
        self.assertEqual(session_state(reordered), session["state"])

    def test_stateSameOnEveryNode(self) -> None:
        """
        Nodes of a cluster give their own URLs (API, download, upload,
        EventSource, WebSocket) but the same state for the same content;
        any other change still changes it.
        """
        session = _example()
        elsewhere = dict(session, apiUrl="https://node2.example.com/jmap/api",
                         eventSourceUrl="https://node2.example.com/es?types={types}&closeafter={closeafter}&ping={ping}")
        elsewhere["capabilities"] = dict(session["capabilities"])
        elsewhere["capabilities"]["urn:ietf:params:jmap:websocket"] = {"url": "wss://node2/ws", "supportsPush": True}
        session["capabilities"] = dict(session["capabilities"])
        session["capabilities"]["urn:ietf:params:jmap:websocket"] = {"url": "wss://node1/ws", "supportsPush": True}
        self.assertEqual(session_state(elsewhere), session_state(session))
        self.assertNotEqual(session_state(dict(session, username="other")), session_state(session))

    def test_noPersonalAccount(self) -> None:
        """
        With no personal account, primaryAccounts is empty (RFC 8620 2:
        there MAY be no entry).
        """
        session = _example(accounts=_example_accounts()[1:])
        self.assertEqual(session["primaryAccounts"], {})

    def test_firstPersonalAccount(self) -> None:
        """
        Each capability maps to the first personal account that offers it.
        """
        accounts = [
            AccountInfo("A1", "a", True, False, {CONTACTS: {}}),
            AccountInfo("A2", "b", True, False, {MAIL: {}, CONTACTS: {}}),
        ]
        self.assertEqual(
            _example(accounts=accounts)["primaryAccounts"], {MAIL: "A2", CONTACTS: "A1"}
        )

    def test_noAccounts(self) -> None:
        """
        A user with no accounts gets an empty accounts map.
        """
        session = _example(accounts=[], username="")
        self.assertEqual((session["accounts"], session["primaryAccounts"]), ({}, {}))
        self.assertEqual(session["username"], "")

    def test_inputsNotShared(self) -> None:
        """
        Changing the returned object does not change the inputs.
        """
        capabilities = {CORE_CAPABILITY: _example_core(), MAIL: {}}
        accounts = [AccountInfo("A1", "a", True, False, {MAIL: {"x": 1}})]
        session = _example(capabilities=capabilities, accounts=accounts)
        session["capabilities"][MAIL]["y"] = 2
        session["accounts"]["A1"]["accountCapabilities"][MAIL]["y"] = 2
        self.assertEqual(capabilities[MAIL], {})
        self.assertEqual(accounts[0].account_capabilities[MAIL], {"x": 1})

    def test_templatesRequired(self) -> None:
        """
        The URL templates must have the variables RFC 8620 2 requires.
        """
        self.assertRaises(ValueError, _example, download_url="https://x/{accountId}/{blobId}/{name}")
        self.assertRaises(ValueError, _example, upload_url="https://x/upload/")
        self.assertRaises(ValueError, _example, event_source_url="https://x/es?types={types}&ping={ping}")

    def test_coreRequired(self) -> None:
        """
        The capabilities MUST include C{urn:ietf:params:jmap:core}.
        """
        self.assertRaises(ValueError, _example, capabilities={MAIL: {}, CONTACTS: {}})

    def test_badAccounts(self) -> None:
        """
        Account ids must be valid, distinct Ids, and an account may only
        list capabilities the server advertises.
        """
        good = _example_accounts()
        self.assertRaises(ValueError, _example, accounts=[good[0], good[0]])
        self.assertRaises(ValueError, _example, accounts=[AccountInfo("A 1", "a", True, False, {})])
        self.assertRaises(
            ValueError, _example, accounts=[AccountInfo("A1", "a", True, False, {"urn:x": {}})]
        )
