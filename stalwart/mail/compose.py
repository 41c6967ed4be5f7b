# -*- test-case-name: tests.mail.test_compose -*-
"""
The RFC 5322 message of an C{Email/set} create (RFC 8621 section 4.6).

The client describes a message with JMAP properties (4.1): header fields
through the convenience properties (C{from}, C{subject}, C{sentAt}...) and
C{header:Name[:asForm][:all]}, a body through C{bodyStructure} or through
C{textBody}/C{htmlBody}/C{attachments}, text in C{bodyValues} and files by
C{blobId}.  L{compose_message} checks those properties against the rules of
4.6 and writes the MIME message (RFC 2045-2047, 2183, 2231, 2387) they
describe, or raises L{ComposeError} naming the SetError of the create.

The bytes are a pure function of the arguments: boundaries are derived from
C{unique} and a counter, the generated Message-ID from C{unique}, the
generated Date from C{now}.  Every Raft replica that applies the same
command builds the same message (DESIGN.md section 1).

Work happens in three passes, so that errors come out in the order a client
can act on them: (1) check every property and plan the MIME tree
(C{invalidProperties}); (2) fetch every blob once (C{blobNotFound}, listing
all missing ids); (3) encode, counting octets (C{tooLarge}).

Choices RFC 8621 leaves to the server:
  - C{textBody} and C{htmlBody} become C{multipart/alternative}; attachments
    with C{disposition: inline} and a C{cid}, when there is an HTML body,
    join it in a C{multipart/related}; other attachments make a
    C{multipart/mixed} around the body.  No body at all is an empty
    C{text/plain} part.  An attachment without a disposition gets
    C{attachment}.
  - Text from C{bodyValues} is UTF-8 with CRLF line breaks: C{7bit} when it is
    printable ASCII in lines of at most 78 octets, else base64 when more than
    a third of its octets are non-ASCII (CJK text), else quoted-printable.
    The decoded octets are exactly the value with every line break made CRLF
    (a lone CR counts as a line break).  Blobs are base64 (C{message/*}
    blobs that are already valid 7bit/8bit message text go as they are).
  - C{header:Content-Type} and C{header:Content-Disposition} are refused on
    parts: C{type}, C{charset}, C{name} and C{disposition} say the same, and
    the server must own the boundary parameter.  C{MIME-Version} is always
    written by the server and refused as a property.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from email.utils import format_datetime
from typing import Callable, Mapping, Optional

import attrs

from stalwart.mail.compose_fields import (
    CRLF,
    FOLD_COLUMN,
    LINE_OCTETS_MAX,
    UNIT_CHARS_MAX,
    _ANGLED_FREE,
    _CONTROL,
    _CONVENIENCE,
    _DOT_ATOM,
    _TOKEN,
    ComposeError,
    _check_duplicate,
    _content_type,
    _Field,
    _field,
    _fold,
    _invalid,
    _joined,
    _parameter,
    _parse_date,
)

__all__ = ["ComposeError", "compose_message"]

PART_DEPTH_MAX = 16
"""The deepest C{bodyStructure} nesting accepted: real mail rarely passes 5."""

BOUNDARY_MARK = b"=_"
"""How every boundary starts.  Quoted-printable and base64 never contain it,
and text or blobs that do are not written as they are, so a client cannot
plant a boundary (it can guess C{unique}) and make the search for a free one
scan a large message many times."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DOT_ATOM_RE = re.compile(_DOT_ATOM)
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+/[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")
_LANGUAGE = re.compile(r"[A-Za-z0-9]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_HIGH_OCTETS = bytes(range(0x80, 0x100))
_NEWLINE = re.compile(r"\r\n?")
_SEVEN_BIT_TEXT = re.compile(rb"[\t\n\x20-\x7e]*")

# Where the usual fields go in the header; others follow in property order.
_FIELD_ORDER = {name: rank for rank, name in enumerate(
    "date from sender reply-to to cc bcc message-id in-reply-to references subject".split())}
_METADATA = frozenset(["mailboxIds", "keywords", "receivedAt"])
_BODY = frozenset(["bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments"])
_PART_PROPERTIES = frozenset(["partId", "blobId", "size", "headers", "name", "type", "charset",
                              "disposition", "cid", "language", "location", "subParts"])
# Part properties that stand for a header field, for the duplicate check.
_PART_FIELDS = {"cid": "content-id", "language": "content-language", "location": "content-location"}
_SERVER_FIELDS = frozenset(["mime-version", "content-transfer-encoding"])


# --- the MIME tree -------------------------------------------------------

@attrs.define(eq=False)
class _Part:
    """
    One planned body part: checked, not yet encoded.  A multipart has a
    C{subtype} and C{children}; a leaf has C{text} (from bodyValues) or
    C{blob_id}.
    """
    media_type: str
    subtype: Optional[str] = None
    children: list[_Part] = attrs.Factory(list)
    text: Optional[str] = None
    blob_id: Optional[str] = None
    charset: Optional[str] = None
    name: Optional[str] = None
    disposition: Optional[str] = None
    cid: Optional[str] = None
    language: Optional[list[str]] = None
    location: Optional[str] = None
    extra: list[_Field] = attrs.Factory(list)


def _get(obj: dict, key: str, path: str, kind: type) -> object:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise _invalid(f"{key} must be a {kind.__name__} or null", f"{path}/{key}" if path else key)
    return value


class _Planner:
    """
    Pass 1: check the body properties of the create and plan the MIME tree.
    """

    def __init__(self, email: dict) -> None:
        self._email = email
        self._values = self._body_values(email.get("bodyValues"))
        self._used: set[str] = set()

    @staticmethod
    def _body_values(values: object) -> dict[str, str]:
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise _invalid("bodyValues is an object", "bodyValues")
        texts = {}
        for part_id, body_value in values.items():
            path = f"bodyValues/{part_id}"
            if not isinstance(body_value, dict) or not isinstance(body_value.get("value"), str) \
                    or _SURROGATE.search(body_value["value"]):
                raise _invalid("an EmailBodyValue has a string value of Unicode scalars", path)
            for key, flag in body_value.items():
                if key not in ("value", "isTruncated", "isEncodingProblem"):
                    raise _invalid(f"unknown EmailBodyValue property {key}", f"{path}/{key}")
                if key != "value" and flag is not None and flag is not False:
                    raise _invalid(f"{key} must be false or omitted (RFC 8621 4.6)", f"{path}/{key}")
            texts[part_id] = body_value["value"]
        return texts

    def plan(self) -> _Part:
        email = self._email
        flat = [key for key in ("textBody", "htmlBody", "attachments") if email.get(key) is not None]
        structure = email.get("bodyStructure")
        if structure is not None:
            if flat:
                raise _invalid("bodyStructure excludes textBody, htmlBody and attachments",
                               "bodyStructure", *flat)
            return self._part(structure, "bodyStructure", 0, None)
        return self._flat()

    def _flat(self) -> _Part:
        text = self._single("textBody", "text/plain")
        html = self._single("htmlBody", "text/html")
        listed = _get(self._email, "attachments", "", list) or []
        attachments = [self._part(a, f"attachments/{i}", 1, None, flat=True) for i, a in enumerate(listed)]
        inline = [a for a in attachments if html is not None and a.disposition == "inline" and a.cid]
        others = [a for a in attachments if a not in inline]
        for part in others:
            if part.disposition is None:
                part.disposition = "attachment"
        body = html
        if inline:
            body = _Part("multipart/related", "related", [html, *inline])
        if text is not None:
            body = text if body is None else _Part("multipart/alternative", "alternative", [text, body])
        if others:
            return _Part("multipart/mixed", "mixed", ([body] if body else []) + others)
        return body if body is not None else _Part("text/plain", text="")

    def _single(self, key: str, media_type: str) -> Optional[_Part]:
        parts = _get(self._email, key, "", list)
        if parts is None:
            return None
        if len(parts) != 1:
            raise _invalid(f"{key} holds exactly one body part (RFC 8621 4.6)", key)
        part = self._part(parts[0], f"{key}/0", 1, media_type, flat=True)
        if part.media_type != media_type:
            raise _invalid(f"the {key} part is of type {media_type}", f"{key}/0/type")
        return part

    def _part(self, obj: object, path: str, depth: int, default_type: Optional[str],
              flat: bool = False) -> _Part:
        if depth > PART_DEPTH_MAX:
            raise _invalid(f"body parts nest at most {PART_DEPTH_MAX} deep", path)
        if not isinstance(obj, dict):
            raise _invalid("an EmailBodyPart is an object", path)
        for key, value in obj.items():
            if key == "headers" and value:
                raise _invalid("set header fields as header: properties (RFC 8621 4.6)", f"{path}/headers")
            if key not in _PART_PROPERTIES and not key.startswith("header:"):
                raise _invalid(f"unknown EmailBodyPart property {key}", f"{path}/{key}")
        media = _get(obj, "type", path, str)
        sub_parts = _get(obj, "subParts", path, list)
        part_id = _get(obj, "partId", path, str)
        blob_id = _get(obj, "blobId", path, str)
        if media is None:
            media = default_type or ("multipart/mixed" if sub_parts is not None
                                     else "text/plain" if part_id is not None else "application/octet-stream")
        if not _MEDIA_TYPE.fullmatch(media):
            raise _invalid("type is a media type type/subtype, without parameters", f"{path}/type")
        part = _Part(media.lower())
        if part.media_type.startswith("multipart/"):
            self._multipart(part, obj, path, depth, flat)
        else:
            self._leaf(part, obj, path, part_id, blob_id)
        self._describe(part, obj, path)
        return part

    def _multipart(self, part: _Part, obj: dict, path: str, depth: int, flat: bool) -> None:
        if flat:
            raise _invalid("textBody, htmlBody and attachments hold no multipart", f"{path}/type")
        for key in ("partId", "blobId", "charset", "size"):
            if obj.get(key) is not None:
                raise _invalid(f"a multipart has no {key}", f"{path}/{key}")
        sub_parts = obj.get("subParts")
        if not sub_parts:
            raise _invalid("a multipart has a non-empty subParts", f"{path}/subParts")
        part.subtype = part.media_type.split("/", 1)[1]
        part.children = [self._part(child, f"{path}/subParts/{i}", depth + 1, None)
                         for i, child in enumerate(sub_parts)]

    def _leaf(self, part: _Part, obj: dict, path: str, part_id: Optional[str], blob_id: Optional[str]) -> None:
        if obj.get("subParts") is not None:
            raise _invalid("only a multipart has subParts", f"{path}/subParts")
        if (part_id is None) == (blob_id is None):
            raise _invalid("a body part has a partId or a blobId, not both", f"{path}/partId", f"{path}/blobId")
        charset = _get(obj, "charset", path, str)
        if part_id is not None:
            for key in ("charset", "size"):
                if obj.get(key) is not None:
                    raise _invalid(f"{key} must be omitted with a partId (RFC 8621 4.6)", f"{path}/{key}")
            if part_id not in self._values:
                raise _invalid(f"partId {part_id} is not in bodyValues", f"{path}/partId")
            if part_id in self._used:
                raise _invalid(f"partId {part_id} is used twice", f"{path}/partId")
            if not part.media_type.startswith("text/"):
                raise _invalid("a part with a partId is of type text/*", f"{path}/type")
            self._used.add(part_id)
            part.text, part.charset = self._values[part_id], "utf-8"
            return
        if charset is not None and (not part.media_type.startswith("text/") or not _TOKEN.fullmatch(charset)):
            raise _invalid("charset is a token, for text/* parts only", f"{path}/charset")
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise _invalid("size is an UnsignedInt", f"{path}/size")
        part.blob_id, part.charset = blob_id, charset

    @staticmethod
    def _describe(part: _Part, obj: dict, path: str) -> None:
        """The properties any part may have: name, disposition, cid, language, location, header:*."""
        part.name = _get(obj, "name", path, str)
        if part.name is not None and (_CONTROL.search(part.name) or len(part.name) > UNIT_CHARS_MAX):
            raise _invalid("name holds no controls or line breaks", f"{path}/name")
        disposition = _get(obj, "disposition", path, str)
        if disposition is not None and not _TOKEN.fullmatch(disposition):
            raise _invalid("disposition is a token such as attachment or inline", f"{path}/disposition")
        part.disposition = disposition.lower() if disposition is not None else None
        part.cid = _get(obj, "cid", path, str)
        if part.cid is not None and (len(part.cid) > UNIT_CHARS_MAX or not _ANGLED_FREE.fullmatch(part.cid)):
            raise _invalid("cid is printable ASCII without angle brackets", f"{path}/cid")
        part.language = _get(obj, "language", path, list)
        if part.language is not None and not all(
                isinstance(tag, str) and _LANGUAGE.fullmatch(tag) for tag in part.language):
            raise _invalid("language is a list of language tags", f"{path}/language")
        part.location = _get(obj, "location", path, str)
        if part.location is not None and (
                len(part.location) > UNIT_CHARS_MAX or not _ANGLED_FREE.fullmatch(part.location)):
            raise _invalid("location is a URI", f"{path}/location")
        seen = {field: f"{path}/{key}" for key, field in _PART_FIELDS.items() if obj.get(key) is not None}
        for key, value in obj.items():
            if not key.startswith("header:"):
                continue
            field = _field(key, value, f"{path}/{key}")
            if field.key in ("content-type", "content-disposition"):
                raise _invalid("set type, charset, name and disposition instead", field.prop)
            if field.key in _SERVER_FIELDS:
                raise _invalid(f"the server writes {field.key}", field.prop)
            _check_duplicate(seen, field.key, field.prop)
            part.extra.append(field)


def _parts(root: _Part):
    yield root
    for child in root.children:
        yield from _parts(child)


# --- pass 3: encoding ----------------------------------------------------

def _encode_text(text: str, at_root: bool) -> tuple[str, bytes]:
    """
    @return: the transfer encoding and encoded body of C{text} as UTF-8 with
        CRLF line breaks.  At the root of a message the body must end in
        CRLF without the CRLF becoming content, so quoted-printable ends it
        with a soft line break.
    """
    data = _NEWLINE.sub("\n", text).encode("utf-8")
    if _SEVEN_BIT_TEXT.fullmatch(data) and max(map(len, data.split(b"\n"))) <= FOLD_COLUMN \
            and not re.search(rb"[ \t](\n|$)", data) and (not at_root or not data or data.endswith(b"\n")) \
            and BOUNDARY_MARK not in data:
        return "7bit", data.replace(b"\n", CRLF)
    non_ascii = len(data) - len(data.translate(None, _HIGH_OCTETS))
    if non_ascii * 3 > len(data):
        return "base64", _base64(data.replace(b"\n", CRLF))
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", CRLF)
    if at_root and not encoded.endswith(CRLF):
        encoded += b"=" + CRLF
    return "quoted-printable", encoded


def _base64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _is_message_text(data: bytes) -> bool:
    """Whether C{data} can go as 7bit/8bit: CRLF lines of at most 998 octets, no NUL, no boundary mark."""
    return data.endswith(CRLF) and b"\0" not in data and BOUNDARY_MARK not in data \
        and data.count(b"\r") == data.count(b"\n") == data.count(CRLF) \
        and max(map(len, data.split(CRLF))) <= LINE_OCTETS_MAX


class _Writer:
    """
    Pass 3: encode a planned tree into bytes, counting octets against the
    limit and deriving each boundary from C{unique} and a counter.
    """

    def __init__(self, blobs: Mapping[str, bytes], unique: str, size_max: int) -> None:
        self._blobs = blobs
        self._seed = hashlib.sha256(unique.encode("utf-8")).hexdigest()[:24]
        self._counter = 0
        self._size_max = size_max
        self.octets = 0

    def count(self, octets: int, spent: bool = True) -> None:
        """
        Add C{octets} to the message size, or with C{spent=False} only check
        that they would fit.
        """
        if self.octets + octets > self._size_max:
            raise ComposeError("tooLarge", f"the message would pass {self._size_max} octets")
        if spent:
            self.octets += octets

    def part(self, part: _Part, at_root: bool) -> tuple[bytes, bytes]:
        """
        @return: the part's header lines and its body.
        """
        if part.subtype is not None:
            return self._multipart(part)
        if part.text is not None:
            cte, body = _encode_text(part.text, at_root)
        else:
            data = self._blobs[part.blob_id]
            self.count(len(data), spent=False)  # fail before encoding: base64 only grows
            if part.media_type in ("message/rfc822", "message/global") and _is_message_text(data):
                cte, body = ("7bit" if data.isascii() else "8bit"), data
            else:
                cte, body = "base64", _base64(data)
        self.count(len(body))
        params = [("charset", part.charset)] if part.charset else []
        if part.name is not None:
            params.append(("name", part.name))
        headers = [_content_type(part.media_type, params), b"Content-Transfer-Encoding: " + cte.encode() + CRLF]
        if part.disposition is not None:
            pieces = [part.disposition]
            if part.name is not None:
                pieces = [part.disposition + ";"] + _parameter("filename", part.name)
            headers.append(_fold("Content-Disposition", pieces))
        if part.cid is not None:
            headers.append(_fold("Content-ID", [f"<{part.cid}>"]))
        if part.language:
            headers.append(_fold("Content-Language", _joined([[t] for t in part.language], ",")))
        if part.location is not None:
            headers.append(_fold("Content-Location", [part.location]))
        headers.extend(field.lines for field in part.extra)
        return b"".join(headers), body

    def _multipart(self, part: _Part) -> tuple[bytes, bytes]:
        chunks = []
        for child in part.children:
            headers, body = self.part(child, at_root=False)
            chunks.append(headers + CRLF + body)
        boundary = self._boundary(chunks)
        delimiter = b"--" + boundary.encode("ascii")
        body = b"".join(delimiter + CRLF + chunk + CRLF for chunk in chunks) + delimiter + b"--" + CRLF
        self.count(len(body) - sum(map(len, chunks)))
        params = []
        if part.subtype == "related":  # RFC 2387 3.1: the root's type
            params.append(("type", part.children[0].media_type))
        params.append(("boundary", boundary))
        headers = [_content_type(part.media_type, params)]
        headers.extend(field.lines for field in part.extra)
        return b"".join(headers), body

    def _boundary(self, chunks: list[bytes]) -> str:
        """
        A boundary (RFC 2046 5.1.1) whose delimiter occurs in no child.  No
        encoded leaf holds L{BOUNDARY_MARK} and nested boundaries have
        smaller counters, so the next counter is normally free; a part
        header could still hold a candidate, so one scan finds every
        counter the children make unusable (a delimiter must not even be a
        prefix of a longer string in them) and the first free one is taken.
        """
        prefix = b"--" + BOUNDARY_MARK + self._seed.encode("ascii") + b"."
        taken = set()
        for chunk in chunks:
            for match in re.finditer(re.escape(prefix) + rb"(\d{3,9})", chunk):
                digits = match.group(1)
                taken.update(int(digits[:n]) for n in range(3, len(digits) + 1)
                             if digits[:n] == b"%03d" % int(digits[:n]))
        self._counter += 1
        while self._counter in taken:
            self._counter += 1
        return f"{BOUNDARY_MARK.decode()}{self._seed}.{self._counter:03d}"


# --- the whole message ---------------------------------------------------

def _top_fields(email: dict) -> list[_Field]:
    """
    Check the Email's header properties and the rest of its property names.
    """
    fields, seen = [], {}
    for key, value in email.items():
        if key in _METADATA or key in _BODY:
            continue
        if key == "headers":
            if value:
                raise _invalid("set header fields as header: properties (RFC 8621 4.6)", key)
            continue
        if key not in _CONVENIENCE and not key.startswith("header:"):
            raise _invalid(f"{key} cannot be set on create", key)
        field = _field(key, value, key)
        if field.key.startswith("content-"):
            raise _invalid("Content-* fields belong on body parts (RFC 8621 4.6)", key)
        if field.key in _SERVER_FIELDS:
            raise _invalid(f"the server writes {field.key}", key)
        _check_duplicate(seen, field.key, key)
        fields.append(field)
    return fields


def _fetch(root: _Part, blob: Callable[[str], Optional[bytes]]) -> dict[str, bytes]:
    """Pass 2: every blob once; all missing ids in one error."""
    found: dict[str, bytes] = {}
    missing: list[str] = []
    for part in _parts(root):
        blob_id = part.blob_id
        if blob_id is None or blob_id in found or blob_id in missing:
            continue
        data = blob(blob_id)
        if data is None:
            missing.append(blob_id)
        else:
            found[blob_id] = data
    if missing:
        raise ComposeError("blobNotFound", "no such blob: " + ", ".join(missing), not_found=missing)
    return found


def compose_message(email: dict, blob: Callable[[str], Optional[bytes]], now: str,
                    message_id_domain: str, unique: str, size_max: int = 50_000_000) -> bytes:
    """
    Build the RFC 5322 message for an C{Email/set} create (RFC 8621 4.6).

    @param email: the client's create object, already checked to be a dict.
        C{mailboxIds}, C{keywords} and C{receivedAt} are metadata and ignored
        here; server-set and unknown properties are refused.
    @param blob: returns the octets of an uploaded blob the account owns, or
        L{None}.  Called at most once per blob id.
    @param now: the UTC date C{YYYY-MM-DDTHH:MM:SSZ} of the command, written
        as Date when the create sets none (no clock is read).
    @param message_id_domain: the right side of a generated Message-ID: a
        dot-atom, from configuration.
    @param unique: a string unique to this create, derived from replicated
        counters: the left side of a generated Message-ID when it is a
        dot-atom of at most 200 characters (else its SHA-256 is), and the
        seed of every boundary.
    @param size_max: the largest message accepted, in octets.
    @return: the message, with CRLF line breaks, no line over 998 octets,
        C{MIME-Version}, C{Date} and C{Message-ID} always present.
    @raise ComposeError: C{invalidProperties} (with C{properties}),
        C{blobNotFound} (with C{not_found}) or C{tooLarge}.
    """
    date = _parse_date(now)
    if date is None or not now.endswith("Z") or not _DOT_ATOM_RE.fullmatch(message_id_domain):
        raise ValueError(f"compose_message needs a UTCDate and a domain, not {now!r}, {message_id_domain!r}")
    fields = _top_fields(email)
    root = _Planner(email).plan()
    seen = {field.key: field.prop for field in fields}
    for field in root.extra:  # the root part's fields are the message's fields
        if field.key in seen:
            raise _invalid(f"the {field.key} field is set twice", seen[field.key], field.prop)
    if "date" not in seen or not any(f.lines for f in fields if f.key == "date"):
        fields.append(_Field("date", "", _fold("Date", [format_datetime(date)])))
    if "message-id" not in seen or not any(f.lines for f in fields if f.key == "message-id"):
        local = unique if len(unique) <= 200 and _DOT_ATOM_RE.fullmatch(unique) \
            else hashlib.sha256(unique.encode("utf-8")).hexdigest()
        fields.append(_Field("message-id", "", _fold("Message-ID", [f"<{local}@{message_id_domain}>"])))
    blobs = _fetch(root, blob)
    order = {id(field): i for i, field in enumerate(fields)}
    fields.sort(key=lambda f: (_FIELD_ORDER.get(f.key, len(_FIELD_ORDER)), order[id(f)]))
    writer = _Writer(blobs, unique, size_max)
    writer.count(sum(len(f.lines) for f in fields))
    part_headers, body = writer.part(root, at_root=True)
    message = b"".join(f.lines for f in fields) + b"MIME-Version: 1.0\r\n" + part_headers + CRLF + body
    if len(message) > size_max:
        raise ComposeError("tooLarge", f"the message would pass {size_max} octets")
    return message
