# -*- test-case-name: tests.mail.test_vacation -*-
"""
The VacationResponse (RFC 8621 section 8): one object per account, id
C{"singleton"}, with VacationResponse/get and VacationResponse/set only.

The singleton is created with the account (L{create_singleton}); an
account that has none yet (made before the mail data types existed)
still sees it with its defaults on /get, and its first update creates
it.  Creating or destroying it is the C{singleton} SetError (RFC 8620
5.3).  Sending the replies belongs to LMTP delivery.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Dict, Optional

from twisted.internet.defer import maybeDeferred

from stalwart.jmap.capabilities import VACATION
from stalwart.jmap.errors import SetError
from stalwart.jmap.objecttype import ObjectType, Property, is_bool, is_string, nullable
from stalwart.mail.mailbox import TypeMethods, fill_defaults
from stalwart.store.changes import CREATED, record_change
from stalwart.store.objects import load_object, save_object

__all__ = ["VacationResponse", "VacationMethods", "SINGLETON", "is_utc_date", "create_singleton"]

SINGLETON = "singleton"

_UTC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z\Z")


def is_utc_date(value: Any) -> bool:
    """An RFC 8620 1.4 UTCDate: RFC 3339 in UTC, "Z", no zero fraction."""
    if not isinstance(value, str) or not _UTC_DATE.match(value):
        return False
    try:
        datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


class VacationResponse(ObjectType):
    name = "VacationResponse"
    capability = VACATION
    id_prefix = "V"
    properties = (
        Property("id", is_string, server_set=True),
        Property("isEnabled", is_bool, default=False),
        Property("fromDate", nullable(is_utc_date)),
        Property("toDate", nullable(is_utc_date)),
        Property("subject", nullable(is_string)),
        Property("textBody", nullable(is_string)),
        Property("htmlBody", nullable(is_string)),
    )

    def expand(self, conn, account_id: str, objects: Dict[str, Dict]) -> None:
        fill_defaults(self, objects)

    def check_destroy(self, tx, account_id, object_id, obj, options) -> Optional[SetError]:
        return SetError("singleton", "the VacationResponse cannot be destroyed")


def create_singleton(tx, account_id: str, object_type: VacationResponse) -> None:
    """Store the account's VacationResponse with its defaults, as a creation."""
    save_object(tx, account_id, object_type.name, SINGLETON, object_type.with_defaults({}))
    record_change(tx, account_id, object_type.name, SINGLETON, CREATED)


class VacationMethods(TypeMethods):
    """VacationResponse/get and /set (RFC 8621 8.1, 8.2)."""

    def __init__(self, object_type: VacationResponse) -> None:
        super().__init__(object_type, ("get", "set"))

    def get(self, arguments, context, created_ids):
        def fill(responses):
            name, body = responses[0]
            missing = body["notFound"] if arguments.get("ids") is not None else [SINGLETON]
            if SINGLETON in missing and not any(o["id"] == SINGLETON for o in body["list"]):
                obj = {"id": SINGLETON, **self.type.with_defaults({})}
                wanted = arguments.get("properties")
                if wanted is not None:
                    obj = {k: v for k, v in obj.items() if k in wanted or k == "id"}
                body = {**body, "list": [*body["list"], obj], "notFound": [i for i in body["notFound"] if i != SINGLETON]}
            return [(name, body), *responses[1:]]

        return maybeDeferred(super().get, arguments, context, created_ids).addCallback(fill)

    def _create_one(self, tx, account: str, obj: Any, created_ids: Dict):
        return SetError("singleton", "there is only the VacationResponse \"singleton\"")

    def _update_one(self, tx, account: str, object_id: str, patch: Any) -> Optional[SetError]:
        if object_id == SINGLETON and load_object(tx, account, self.name, SINGLETON) is None:
            create_singleton(tx, account, self.type)
        return super()._update_one(tx, account, object_id, patch)
