# -*- test-case-name: tests.mail.test_compose -*-
"""
Header field values for L{stalwart.mail.compose}: JMAP header properties
written as RFC 5322 field bytes.

A header property of an C{Email/set} create (RFC 8621 4.1.2, 4.1.3 and 4.6),
a convenience property or C{header:Name[:asForm][:all]}, is checked against
its parsed form and written as one or more fields:
  - C{asRaw} (RFC 8621 4.1.2.1) as given, line breaks made CRLF;
  - C{asText} (4.1.2.2) as an RFC 5322 3.2.5 unstructured value, in RFC
    2047 encoded words (Q or B, UTF-8) unless it is plain ASCII;
  - C{asAddresses} and C{asGroupedAddresses} (4.1.2.3, 4.1.2.4) as RFC 5322
    3.4 address lists, display names as atoms, quoted strings (3.2.4) or
    RFC 2047 5(3) encoded words;
  - C{asMessageIds} (4.1.2.5) as RFC 5322 3.6.4 msg-ids, C{asURLs} (4.1.2.7)
    as RFC 2369 angle-bracketed lists;
  - C{asDate} (4.1.2.6) from an RFC 3339 date-time to an RFC 5322 3.3
    date-time.
Every field is folded (RFC 5322 2.2.3) at column 78 and never passes 998
octets a line (2.1.1).  C{Content-Type} parameters are RFC 2045 5.1 tokens
or quoted strings, or RFC 2231 UTF-8 values with continuations.

L{ComposeError} lives here so that both this module and
L{stalwart.mail.compose} can raise it; C{compose} re-exports it.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Callable, Mapping, Optional

import attrs

from stalwart.jmap.errors import SetError
from stalwart.mail.headers import header_form_allowed, parse_header_property

__all__ = ["ComposeError"]

CRLF = b"\r\n"
LINE_OCTETS_MAX = 998
"""The longest line of a message, CRLF excluded (RFC 5322 2.1.1, MUST)."""
FOLD_COLUMN = 78
"""Where header fields are folded and the longest 7bit body line (RFC 5322 2.1.1, SHOULD)."""
UNIT_CHARS_MAX = 900
"""The longest unbreakable piece of a header (message id, URL, word of a
subject): with the field name and folding it still fits a 998-octet line."""
FIELD_NAME_CHARS_MAX = 76
"""The longest header field name a client may create."""

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")  # and lone surrogates
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
_QUOTED = r'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e]|\\[\t\x20-\x7e])*"'
_ADDR_SPEC = re.compile(
    rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|\[[\x21-\x5a\x5e-\x7e]*\])"
    rf"|{_DOT_ATOM}"  # a half-written draft address (RFC 8621 4.6 allows it)
)
_ATOM_PHRASE = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")  # RFC 2045 token
_ID_HALF = r"[\x21-\x3b\x3d\x3f\x41-\x7e]+"  # printable ASCII but <, >, @
_MSG_ID = re.compile(rf"{_ID_HALF}@{_ID_HALF}")
_ANGLED_FREE = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII but <, >
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATTRIBUTE_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")

# Convenience properties (RFC 8621 4.1.3): field name as written, parsed form.
_CONVENIENCE = {
    "from": ("From", "asAddresses"), "sender": ("Sender", "asAddresses"),
    "replyTo": ("Reply-To", "asAddresses"), "to": ("To", "asAddresses"),
    "cc": ("Cc", "asAddresses"), "bcc": ("Bcc", "asAddresses"),
    "subject": ("Subject", "asText"), "sentAt": ("Date", "asDate"),
    "messageId": ("Message-ID", "asMessageIds"), "inReplyTo": ("In-Reply-To", "asMessageIds"),
    "references": ("References", "asMessageIds"),
}


class ComposeError(Exception):
    """
    Why a create cannot become a message: one SetError (RFC 8620 5.3,
    RFC 8621 4.6).

    @ivar type: the SetError type: C{"invalidProperties"},
        C{"blobNotFound"} or C{"tooLarge"}.
    @ivar description: a non-localised explanation for the client developer.
    @ivar properties: for C{invalidProperties}, the offending properties as
        paths from the Email (C{"bodyStructure/subParts/1/partId"}).
    @ivar not_found: for C{blobNotFound}, every missing blob id, in the order
        they are first referenced.
    """

    def __init__(self, type: str, description: str, properties: Optional[list[str]] = None,
                 not_found: Optional[list[str]] = None) -> None:
        super().__init__(type, description)
        self.type = type
        self.description = description
        self.properties = list(properties) if properties is not None else None
        self.not_found = list(not_found) if not_found is not None else None

    def __str__(self) -> str:
        return f"{self.type}: {self.description}"

    @property
    def extra(self) -> dict:
        """
        @return: the SetError's properties beyond type and description.
        """
        extra: dict = {}
        if self.properties is not None:
            extra["properties"] = self.properties
        if self.not_found is not None:
            extra["notFound"] = self.not_found
        return extra

    def to_set_error(self) -> SetError:
        """
        @return: the L{SetError} to put in C{notCreated}.
        """
        return SetError(self.type, self.description, **self.extra)


def _invalid(description: str, *properties: str) -> ComposeError:
    return ComposeError("invalidProperties", description, list(properties))


def _fold(name: str, pieces: list[str]) -> bytes:
    """
    Write C{name: pieces...} with one space between pieces, folding (RFC 5322
    2.2.3) before a piece that would pass column 78.  Unfolding restores the
    single space, so folding never changes the value.
    """
    lines = [name + ":"]
    for i, piece in enumerate(pieces):
        longest = FOLD_COLUMN if i else LINE_OCTETS_MAX
        if piece and len(lines[-1]) + 1 + len(piece) > longest:
            lines.append(" " + piece)
        else:
            lines[-1] += " " + piece
    assert all(len(line) <= LINE_OCTETS_MAX for line in lines), lines
    return "\r\n".join(lines).encode("ascii") + CRLF


def _encoded_words(text: str, word_chars_max: int = 75) -> list[str]:
    """
    RFC 2047 encoded words for C{text}, each of at most C{word_chars_max}
    characters (75 at most, RFC 2047 2) and holding whole characters, in Q or
    B, whichever is shorter.  Q uses only the characters allowed in a phrase
    (RFC 2047 5(3)), so the words serve both unstructured fields and display
    names.
    """
    payload_max = word_chars_max - len("=?utf-8?q??=")
    q = ["".join("_" if o == 0x20 else chr(o) if o in _Q_SAFE else f"={o:02X}"
                 for o in char.encode("utf-8")) for char in text]
    octets = len(text.encode("utf-8"))
    if sum(map(len, q)) <= (octets + 2) // 3 * 4:
        return _chunk(q, payload_max, lambda chunk: f"=?utf-8?q?{''.join(chunk)}?=")
    raw = [char.encode("utf-8") for char in text]
    return _chunk(raw, payload_max // 4 * 3,
                  lambda chunk: "=?utf-8?b?" + base64.b64encode(b"".join(chunk)).decode() + "?=")


def _chunk(units: list, size: int, wrap: Callable[[list], str]) -> list[str]:
    words, chunk, length = [], [], 0
    for unit in units:
        if chunk and length + len(unit) > size:
            words.append(wrap(chunk))
            chunk, length = [], 0
        chunk.append(unit)
        length += len(unit)
    if chunk:
        words.append(wrap(chunk))
    return words


def _text(value: object, prop: str) -> list[str]:
    """The Text form (RFC 8621 4.1.2.2): an unstructured field value."""
    if not isinstance(value, str) or _CONTROL.search(value):
        raise _invalid("a Text header value is a string without line breaks or controls", prop)
    words = value.split(" ")
    if value.isascii() and "=?" not in value and value.strip(" \t") == value \
            and all(len(w) <= UNIT_CHARS_MAX for w in words):
        return words
    # Short words keep "Subject: " and the first word within 78 columns.
    return _encoded_words(value, 66)


def _phrase(text: str, prop: str) -> list[str]:
    """A display name: atoms, a quoted string, or encoded words."""
    if _CONTROL.search(text):
        raise _invalid("a name holds no line breaks or controls", prop)
    if text.isascii() and "=?" not in text:
        if _ATOM_PHRASE.fullmatch(text) and all(len(a) <= 76 for a in text.split(" ")):
            return text.split(" ")
        quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) <= 76:
            return [quoted]
    # Full-length words: a name that fits one word reads back the same in
    # parsers that keep the space between adjacent encoded words in a phrase
    # against RFC 2047 6.2 (CPython's email.headerregistry does).
    return _encoded_words(text)


def _mailbox(address: object, prop: str) -> list[str]:
    if not isinstance(address, dict) or set(address) - {"name", "email"}:
        raise _invalid("an EmailAddress is an object with name and email", prop)
    email, name = address.get("email"), address.get("name")
    if not isinstance(email, str) or len(email) > 254 or not _ADDR_SPEC.fullmatch(email):
        raise _invalid(f"{email!r} is not an ASCII addr-spec", prop)
    if name is None or name == "":
        return [email]
    if not isinstance(name, str):
        raise _invalid("an EmailAddress name is a string or null", prop)
    return _phrase(name, prop) + [f"<{email}>"]


def _joined(items: list[list[str]], separator: str) -> list[str]:
    pieces: list[str] = []
    for i, item in enumerate(items):
        if i < len(items) - 1:
            item = item[:-1] + [item[-1] + separator]
        pieces.extend(item)
    return pieces


def _addresses(value: object, prop: str) -> list[str]:
    if not isinstance(value, list):
        raise _invalid("an Addresses value is a list of EmailAddress", prop)
    return _joined([_mailbox(a, prop) for a in value], ",")


def _grouped_addresses(value: object, prop: str) -> list[str]:
    if not isinstance(value, list):
        raise _invalid("a GroupedAddresses value is a list of EmailAddressGroup", prop)
    items: list[list[str]] = []
    for group in value:
        if not isinstance(group, dict) or set(group) - {"name", "addresses"} \
                or not isinstance(group.get("addresses"), list):
            raise _invalid("an EmailAddressGroup is an object with name and addresses", prop)
        members = [_mailbox(a, prop) for a in group["addresses"]]
        name = group.get("name")
        if name is None:
            items.extend(members)
            continue
        if not isinstance(name, str) or not name:
            raise _invalid("a group name is a non-empty string or null", prop)
        phrase = _phrase(name, prop)
        # An encoded word must end at white space, so its colon stands apart.
        opening = phrase + [":"] if phrase[-1].startswith("=?") else phrase[:-1] + [phrase[-1] + ":"]
        listed = _joined(members, ",")
        if listed:
            items.append(opening + listed[:-1] + [listed[-1] + ";"])
        else:
            items.append(opening[:-1] + [opening[-1] + ";"])
    return _joined(items, ",")


def _angled_list(value: object, prop: str, pattern: re.Pattern, what: str, separator: str) -> list[str]:
    if not isinstance(value, list) or not all(
            isinstance(v, str) and len(v) <= UNIT_CHARS_MAX and pattern.fullmatch(v) for v in value):
        raise _invalid(f"a {what} value is a list of strings without angle brackets or spaces", prop)
    return _joined([[f"<{v}>"] for v in value], separator)


def _message_ids(value: object, prop: str) -> list[str]:
    return _angled_list(value, prop, _MSG_ID, "MessageIds", "")


def _urls(value: object, prop: str) -> list[str]:
    return _angled_list(value, prop, _ANGLED_FREE, "URLs", ",")


def _parse_date(value: object) -> Optional[datetime]:
    """
    @return: the RFC 3339 C{date-time} C{value} (RFC 8620 1.4: upper-case
        C{T} and C{Z}) with its offset, or L{None} if it is not one.
    """
    match = _DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    zone = match.group(7)
    if zone == "Z":
        tz = timezone.utc
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        when = datetime(*(int(match.group(i)) for i in range(1, 7)), tzinfo=tz)
    except ValueError:
        return None
    return when if when.year >= 1900 else None


def _date(value: object, prop: str) -> list[str]:
    when = _parse_date(value)
    if when is None:
        raise _invalid("a Date value is an RFC 3339 date-time", prop)
    return [format_datetime(when)]


_RENDERERS: Mapping[str, Callable[[object, str], list[str]]] = {
    "asText": _text, "asAddresses": _addresses, "asGroupedAddresses": _grouped_addresses,
    "asMessageIds": _message_ids, "asDate": _date, "asURLs": _urls,
}


def _raw(name: str, value: object, prop: str) -> bytes:
    """
    The Raw form (RFC 8621 4.1.2.1): the octets after the colon, written as
    given but for line breaks made CRLF.  It may be folded, never broken.
    """
    if not isinstance(value, str):
        raise _invalid("a Raw header value is a string", prop)
    lines = re.split(r"\r?\n", value)
    if any(_CONTROL.search(line) for line in lines) or any(
            not line[:1] in (" ", "\t") or not line.strip(" \t") for line in lines[1:]):
        raise _invalid("a Raw value may only break lines to fold them", prop)
    lines[0] = name + ":" + lines[0]
    encoded = [line.encode("utf-8") for line in lines]
    if any(len(line) > LINE_OCTETS_MAX for line in encoded):
        raise _invalid("a Raw value has a line longer than 998 octets", prop)
    return CRLF.join(encoded) + CRLF


@attrs.frozen
class _Field:
    """One header property, checked: its field name and its lines."""
    key: str        # lower-case field name
    prop: str       # the property, as a path from the Email
    lines: bytes    # every instance, folded, CRLF-terminated; may be empty


def _field(key: str, value: object, prop: str) -> _Field:
    """
    Check and write the header property C{key} (a convenience property or
    C{header:...}) of value C{value}.  A null value, or an empty list, writes
    no field but still counts as setting it.
    """
    if key in _CONVENIENCE:
        name, form = _CONVENIENCE[key]
        instances = [value]
    else:
        parsed = parse_header_property(key)
        if parsed is None or len(parsed[0]) > FIELD_NAME_CHARS_MAX:
            raise _invalid("not a header property (header:Name[:asForm][:all])", prop)
        name, form, all_ = parsed
        if not header_form_allowed(name, form):
            raise _invalid(f"{name} cannot be set in the {form[2:]} form", prop)
        if all_ and not isinstance(value, list):
            raise _invalid("a header:...:all value is a list", prop)
        instances = value if all_ else [value]
    lines = []
    for instance in instances:
        if instance is None:
            continue
        if form == "asRaw":
            lines.append(_raw(name, instance, prop))
            continue
        pieces = _RENDERERS[form](instance, prop)
        if pieces:
            lines.append(_fold(name, pieces))
    return _Field(name.lower(), prop, b"".join(lines))


def _check_duplicate(seen: dict[str, str], key: str, prop: str) -> None:
    if key in seen:
        raise _invalid(f"two properties set the {key} header field", seen[key], prop)
    seen[key] = prop


def _content_type(media: str, params: list[tuple[str, str]]) -> bytes:
    pieces = [media]
    for attribute, value in params:
        pieces = pieces[:-1] + [pieces[-1] + ";"] + _parameter(attribute, value)
    return _fold("Content-Type", pieces)


def _parameter(attribute: str, value: str) -> list[str]:
    """
    One MIME parameter (RFC 2045 5.1): a token, a quoted string, or an RFC
    2231 UTF-8 value split into continuations of at most 60 characters.
    """
    if _TOKEN.fullmatch(value):
        return [f"{attribute}={value}"]
    if value.isascii() and "=?" not in value and not _CONTROL.search(value) and len(value) <= 60:
        return ['%s="%s"' % (attribute, value.replace("\\", "\\\\").replace('"', '\\"'))]
    escaped = [chr(o) if o in _ATTRIBUTE_CHARS else f"%{o:02X}" for o in value.encode("utf-8")]
    sections = _chunk(escaped, 60, "".join)
    if len(sections) == 1:
        return [f"{attribute}*=utf-8''{sections[0]}"]
    pieces = [f"{attribute}*{i}*={s}" for i, s in enumerate(sections)]
    pieces[0] = f"{attribute}*0*=utf-8''{sections[0]}"
    return [piece + ";" for piece in pieces[:-1]] + pieces[-1:]
