# -*- test-case-name: tests.mail.test_email_methods -*-
"""
Email/query filters and sorts (RFC 8621 4.4) as SQL over the mail tables.

A FilterCondition becomes a boolean SQL expression over C{emails e};
FilterOperators combine them.  Text conditions go to the FTS5 index:
each word must be present, quoted strings are phrases (RFC 8621 4.4.1),
and every token is quoted for FTS5 so that no user input is ever read as
FTS5 query syntax.
"""

from __future__ import annotations

import re
from typing import Any, List, Mapping, Tuple

from stalwart.jmap.errors import MethodError
from stalwart.mail.emails import is_keyword, normalise_keyword

__all__ = ["compile_filter", "compile_sort", "fts_query", "SORTABLE"]

_TEXT_COLUMNS = {
    "text": None,  # every column
    "from": "sender",
    "to": "recipients",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "body": "body",
}

_PHRASE = re.compile(r'"((?:\\.|[^"\\])*)"|\'((?:\\.|[^\'\\])*)\'|(\S+)')
_UTC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def fts_query(text: str, column: str | None) -> str:
    """
    An FTS5 MATCH expression: all words and phrases of C{text}, each
    quoted.  Raises MethodError for text with nothing to search.
    """
    parts = []
    for phrase_a, phrase_b, word in _PHRASE.findall(text):
        value = phrase_a or phrase_b or word
        value = re.sub(r"\\(.)", r"\1", value) if (phrase_a or phrase_b) else value
        tokens = re.findall(r"\w+", value)
        if not tokens:
            continue
        quoted = '"' + " ".join(tokens).replace('"', '""') + '"'
        parts.append(f"{{{column}}} : {quoted}" if column else quoted)
    if not parts:
        return ""
    return " AND ".join(parts)


def _keyword(value: Any, name: str) -> str:
    if not is_keyword(value):
        raise MethodError("invalidArguments", f"{name} must be a keyword", arguments=["filter"])
    return normalise_keyword(value)


def _date(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _UTC_DATE.fullmatch(value):
        raise MethodError("invalidArguments", f"{name} must be a UTCDate", arguments=["filter"])
    return value[:19] + "Z"


def _uint(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MethodError("invalidArguments", f"{name} must be an UnsignedInt", arguments=["filter"])
    return value


_IN_MAILBOX = "EXISTS (SELECT 1 FROM email_mailboxes m WHERE m.account_id = e.account_id AND m.email_id = e.id AND m.mailbox_id = ?)"
_HAS_KEYWORD = "EXISTS (SELECT 1 FROM email_keywords k WHERE k.account_id = e.account_id AND k.email_id = e.id AND k.keyword = ?)"
_SOME_IN_THREAD = (
    "EXISTS (SELECT 1 FROM emails t JOIN email_keywords k ON k.account_id = t.account_id AND k.email_id = t.id"
    " WHERE t.account_id = e.account_id AND t.thread_id = e.thread_id AND k.keyword = ?)"
)
_ALL_IN_THREAD = (
    "NOT EXISTS (SELECT 1 FROM emails t WHERE t.account_id = e.account_id AND t.thread_id = e.thread_id AND NOT EXISTS"
    " (SELECT 1 FROM email_keywords k WHERE k.account_id = t.account_id AND k.email_id = t.id AND k.keyword = ?))"
)


def _condition(condition: Mapping[str, Any]) -> Tuple[str, List[Any], List[Tuple[str, str]]]:
    """SQL for one FilterCondition, its parameters, and header conditions to check in Python."""
    clauses: List[str] = []
    params: List[Any] = []
    headers: List[Tuple[str, str]] = []
    for key, value in condition.items():
        if key == "inMailbox":
            if not isinstance(value, str):
                raise MethodError("invalidArguments", "inMailbox must be an Id", arguments=["filter"])
            clauses.append(_IN_MAILBOX)
            params.append(value)
        elif key == "inMailboxOtherThan":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MethodError("invalidArguments", "inMailboxOtherThan must be an array of Ids", arguments=["filter"])
            marks = ",".join("?" * len(value)) or "NULL"
            clauses.append("EXISTS (SELECT 1 FROM email_mailboxes m WHERE m.account_id = e.account_id"
                           f" AND m.email_id = e.id AND m.mailbox_id NOT IN ({marks}))")
            params.extend(value)
        elif key == "before":
            clauses.append("e.received_at < ?")
            params.append(_date(value, key))
        elif key == "after":
            clauses.append("e.received_at >= ?")
            params.append(_date(value, key))
        elif key == "minSize":
            clauses.append("e.size >= ?")
            params.append(_uint(value, key))
        elif key == "maxSize":
            clauses.append("e.size < ?")
            params.append(_uint(value, key))
        elif key == "hasKeyword":
            clauses.append(_HAS_KEYWORD)
            params.append(_keyword(value, key))
        elif key == "notKeyword":
            clauses.append("NOT " + _HAS_KEYWORD)
            params.append(_keyword(value, key))
        elif key == "someInThreadHaveKeyword":
            clauses.append(_SOME_IN_THREAD)
            params.append(_keyword(value, key))
        elif key == "noneInThreadHaveKeyword":
            clauses.append("NOT " + _SOME_IN_THREAD)
            params.append(_keyword(value, key))
        elif key == "allInThreadHaveKeyword":
            clauses.append(_ALL_IN_THREAD)
            params.append(_keyword(value, key))
        elif key == "hasAttachment":
            if not isinstance(value, bool):
                raise MethodError("invalidArguments", "hasAttachment must be a Boolean", arguments=["filter"])
            clauses.append("e.has_attachment = ?")
            params.append(int(value))
        elif key in _TEXT_COLUMNS:
            if not isinstance(value, str):
                raise MethodError("invalidArguments", f"{key} must be a String", arguments=["filter"])
            match = fts_query(value, _TEXT_COLUMNS[key])
            if match:
                clauses.append("e.rowid IN (SELECT rowid FROM email_text WHERE email_text MATCH ?)")
                params.append(match)
        elif key == "header":
            if (not isinstance(value, list) or not 1 <= len(value) <= 2
                    or not all(isinstance(v, str) for v in value) or not value[0].strip()):
                raise MethodError("invalidArguments", "header must be [name] or [name, text]", arguments=["filter"])
            match = fts_query(value[0], "headers")
            if match:
                clauses.append("e.rowid IN (SELECT rowid FROM email_text WHERE email_text MATCH ?)")
                params.append(match)
            headers.append((value[0], value[1] if len(value) == 2 else ""))
        else:
            raise MethodError("unsupportedFilter", f"unknown filter condition {key!r}")
    return (" AND ".join(clauses) or "1"), params, headers


def compile_filter(filter_: Any, depth: int = 0) -> Tuple[str, List[Any], List]:
    """
    SQL for a Filter (RFC 8620 5.5), its parameters, and header tests that
    need the message itself: [(name, text, False)], all of which must hold.
    """
    if filter_ is None:
        return "1", [], []
    if depth > 16:
        raise MethodError("unsupportedFilter", "filter nested too deeply")
    if not isinstance(filter_, dict):
        raise MethodError("invalidArguments", "filter must be an object", arguments=["filter"])
    if "operator" not in filter_:
        sql, params, headers = _condition(filter_)
        return f"({sql})", params, [(name, text, False) for name, text in headers]
    operator, conditions = filter_.get("operator"), filter_.get("conditions")
    if operator not in ("AND", "OR", "NOT") or not isinstance(conditions, list) or set(filter_) != {"operator", "conditions"}:
        raise MethodError("invalidArguments", "a FilterOperator needs operator AND/OR/NOT and conditions", arguments=["filter"])
    parts, params, headers = [], [], []
    for condition in conditions:
        sql, more, more_headers = compile_filter(condition, depth + 1)
        parts.append(sql)
        params.extend(more)
        headers.extend(more_headers)
    if headers and operator in ("OR", "NOT"):
        # A header test is checked on the message after the SQL: under OR
        # or NOT that cannot be done exactly, so refuse rather than answer
        # wrongly.
        raise MethodError("unsupportedFilter", f"header conditions inside {operator} are not supported")
    if operator == "NOT":
        return f"(NOT ({' OR '.join(parts) or '0'}))", params, headers
    joiner = " AND " if operator == "AND" else " OR "
    return f"({joiner.join(parts) or ('1' if operator == 'AND' else '0')})", params, headers


#: Sort properties (RFC 8621 4.4.2) -> SQL, with "?" for a keyword.
SORTABLE = {
    "receivedAt": "e.received_at",
    "size": "e.size",
    "from": "e.from_text",
    "to": "e.to_text",
    "subject": "e.base_subject",
    "sentAt": "e.sent_at",
    "hasKeyword": _HAS_KEYWORD,
    "allInThreadHaveKeyword": _ALL_IN_THREAD,
    "someInThreadHaveKeyword": _SOME_IN_THREAD,
}


def compile_sort(sort: Any) -> Tuple[str, List[Any]]:
    """ORDER BY for a list of Comparators; ties end in arrival order (stable)."""
    if sort is None:
        sort = [{"property": "receivedAt", "isAscending": False}]
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "sort must be an array", arguments=["sort"])
    terms, params = [], []
    for comparator in sort:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise MethodError("invalidArguments", "a Comparator needs a property", arguments=["sort"])
        prop = comparator["property"]
        if prop not in SORTABLE:
            raise MethodError("unsupportedSort", f"cannot sort on {prop!r}")
        ascending = comparator.get("isAscending", True)
        collation = comparator.get("collation", "i;unicode-casemap")
        if not isinstance(ascending, bool) or collation not in ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"):
            raise MethodError("unsupportedSort", "bad isAscending or collation")
        expression = SORTABLE[prop]
        if "?" in expression:
            params.append(_keyword(comparator.get("keyword"), "keyword"))
        terms.append(f"{expression} {'ASC' if ascending else 'DESC'}")
    # Ties go in arrival order, in the direction of the last comparator:
    # "received_at DESC, rowid DESC" can then walk the date index backwards
    # instead of sorting every matching row.
    terms.append("e.rowid " + ("DESC" if terms and terms[-1].endswith("DESC") else "ASC"))
    return ", ".join(terms), params
