# -*- test-case-name: tests.mail.test_parse -*-
"""
Raw RFC 5322 messages to the Email properties of RFC 8621 section 4.1:
header fields (4.1.2, 4.1.3), the body structure, textBody, htmlBody,
attachments, bodyValues and preview (4.1.4).  Pure: bytes in, values out.

The MIME tree is walked here, over the raw bytes, and not by
L{email.parser.BytesParser}: a part blob is downloaded by re-reading its
bytes from the stored message (L{part_content}), so each part must know
where its content starts and ends, and the email package keeps no offsets.
Walking the bytes ourselves also keeps every header value exactly as sent
(the Raw form of 4.1.2.1) and the work linear in the size of the message.
The semantics of MIME header fields -- parameters, RFC 2231 continuations
and charsets, file names -- are the email package's, through a compat32
L{email.message.Message}: compat32 because it works on the strings as given,
where the default policy re-parses and refolds them (and raises on some
malformed values).

Nothing here raises on any input: a broken message still gets a structure,
and what cannot be decoded is shown with U+FFFD replacements or as an
attachment.  The module is one file (the structure, the 4.1.4 algorithm and
the properties) because they share the L{BodyPart} type and little else.
"""

from __future__ import annotations

import binascii
import email.message
import email.utils
import re
import unicodedata
from typing import Callable, Optional, Sequence

import attrs

from stalwart.mail import headers as _h
from stalwart.mail.blobids import part_blob_id
from stalwart.mail.html import html_to_text

__all__ = ["BodyPart", "ParsedMessage", "parse_message", "part_content", "body_value",
           "email_properties", "check_properties", "DEFAULT_BODY_PROPERTIES",
           "find_part", "PARTS_MAX", "DEPTH_MAX", "PREVIEW_CHARS_MAX", "SEARCH_CHARS_MAX"]

PARTS_MAX = 1000
"""
The most MIME parts read in one message.  Real mail has tens; a bomb of
empty parts would otherwise cost memory and response size.  Later parts are
left out of the structure (their bytes stay in the message blob).
"""

DEPTH_MAX = 20
"""
The deepest nesting of multiparts read.  Deeper multiparts become
C{application/octet-stream} leaves, so part ids stay short enough for a part
blob id to be a valid Id (255 octets, RFC 8620 1.2).
"""

PREVIEW_CHARS_MAX = 256
"""The longest preview, in characters (RFC 8621 4.1.4: MUST NOT exceed 256)."""

SEARCH_CHARS_MAX = 1 << 20
"""The most characters of body text given to the full-text index, 1 Mi."""

_PREVIEW_SOURCE_BYTES = 64 * 1024      # read of a part to make a preview
_PARAM_CHARS_MAX = 8192                # of a Content-Type/-Disposition value
_BOUNDARY_CHARS_MAX = 200              # RFC 2046 allows 70

DEFAULT_BODY_PROPERTIES = ("partId", "blobId", "size", "name", "type", "charset",
                           "disposition", "cid", "language", "location")
"""The default C{bodyProperties} of Email/get and Email/parse (RFC 8621 5.1)."""

_METADATA = frozenset(["id", "blobId", "threadId", "mailboxIds", "keywords", "size",
                       "receivedAt"])

_FORM_FUNCTIONS: dict[str, Callable[[str], object]] = {
    "asRaw": _h.as_raw, "asText": _h.as_text, "asAddresses": _h.as_addresses,
    "asGroupedAddresses": _h.as_grouped_addresses, "asMessageIds": _h.as_message_ids,
    "asDate": _h.as_date, "asURLs": _h.as_urls,
}

# Convenience properties (RFC 8621 4.1.3): property -> (field, form).
_CONVENIENCE = {
    "messageId": ("Message-ID", "asMessageIds"), "inReplyTo": ("In-Reply-To", "asMessageIds"),
    "references": ("References", "asMessageIds"), "sender": ("Sender", "asAddresses"),
    "from": ("From", "asAddresses"), "to": ("To", "asAddresses"), "cc": ("Cc", "asAddresses"),
    "bcc": ("Bcc", "asAddresses"), "replyTo": ("Reply-To", "asAddresses"),
    "subject": ("Subject", "asText"), "sentAt": ("Date", "asDate"),
}
_BODY_LISTS = ("bodyStructure", "textBody", "htmlBody", "attachments")
_EMAIL_PROPERTIES = frozenset(_CONVENIENCE) | frozenset(_BODY_LISTS) | frozenset(
    ["headers", "bodyValues", "hasAttachment", "preview"])
_PART_PROPERTIES = frozenset(DEFAULT_BODY_PROPERTIES) | frozenset(["headers", "subParts"])

Headers = tuple[tuple[str, str], ...]


# --- header fields ---------------------------------------------------------

def _first(fields: Headers, name: str) -> Optional[str]:
    for field, value in fields:
        if field.lower() == name:
            return value
    return None


def _all(fields: Headers, name: str) -> list[str]:
    name = name.lower()
    return [value for field, value in fields if field.lower() == name]


def _header_property(fields: Headers, prop: str) -> object:
    """The value of a C{header:...} property over C{fields} (RFC 8621 4.1.3)."""
    field, form, all_ = _check_header_property(prop)
    values = _all(fields, field)
    function = _FORM_FUNCTIONS[form]
    if all_:
        return [function(v) for v in values]
    return function(values[-1]) if values else None


def _check_header_property(prop: str) -> tuple[str, str, bool]:
    parsed = _h.parse_header_property(prop)
    if parsed is None:
        raise ValueError("malformed header property %r" % (prop,))
    if not _h.header_form_allowed(parsed[0], parsed[1]):
        raise ValueError("%s may not be fetched for the %s header field (RFC 8621 4.1.2)"
                         % (parsed[1], parsed[0]))
    return parsed


# --- MIME header semantics -------------------------------------------------

_TOKEN_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")


def _bare_value(value: Optional[str]) -> Optional[str]:
    """A MIME field value without parameters, CFWS, and in lower case."""
    if value is None:
        return None
    text = _h.without_comments(_h.unfold(value)).split(";", 1)[0]
    return "".join(text.split()).lower() or None


def _content_type(fields: Headers, default_type: str) -> tuple[str, bool]:
    """@return: the media type (RFC 2045 5.2 default if absent or invalid), and whether the field was there."""
    bare = _bare_value(_first(fields, "content-type"))
    if bare is None:
        return default_type, False
    return (bare if _TOKEN_TYPE.fullmatch(bare) else "text/plain"), True


def _mime_message(fields: Headers) -> email.message.Message:
    """A compat32 Message holding only the fields whose parameters we read."""
    message = email.message.Message()
    for name in ("content-type", "content-disposition"):
        value = _first(fields, name)
        if value is not None:
            message[name] = _h.unfold(value)[:_PARAM_CHARS_MAX]
    return message


def _param(message: email.message.Message, name: str) -> Optional[str]:
    # The email package is lenient, but this is hostile input and a crash
    # here would make a message unreadable: any failure means "absent".
    try:
        value = message.get_param(name)
        if value is None:
            return None
        value = email.utils.collapse_rfc2231_value(value)
        return str(value).strip() or None
    except Exception:
        return None


def _filename(message: email.message.Message) -> Optional[str]:
    """RFC 8621 4.1.4 name: RFC 2231 filename, else the RFC 2047 name."""
    try:
        name = message.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    name = _h.decode_encoded_words(str(name), lenient=True)
    name = unicodedata.normalize("NFC", name.replace("\x00", "")).strip()
    return name or None


def _cid(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    ids = _h.as_message_ids(value)
    if ids:
        return ids[0]
    return "".join(_h.unfold(value).split()).strip("<>") or None


def _language(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    tags = ["".join(t.split()) for t in _h.without_comments(_h.unfold(value)).split(",")]
    return [t for t in tags if t] or None


def _location(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    return "".join(_h.without_comments(_h.unfold(value)).split()).strip("<>\"") or None


# --- transfer encodings ----------------------------------------------------

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# bytes.translate deletion sets: much faster than a regular expression on
# attachments of tens of megabytes.
_NOT_BASE64 = bytes(b for b in range(256) if b not in _BASE64_ALPHABET)
_NOT_BASE64_NOR_SPACE = bytes(b for b in _NOT_BASE64 if b not in b" \t\r\n")
_BASE64_SEGMENTS = re.compile(rb"=+")


def _base64(data: bytes) -> tuple[bytes, bool]:
    """
    Decode base64 leniently: characters outside the alphabet are skipped and
    padding in the middle (concatenated encodings) starts a new segment.
    @return: the bytes, and whether there was garbage.
    """
    clean = data.translate(None, _NOT_BASE64)
    problem = len(data.translate(None, _NOT_BASE64_NOR_SPACE)) != len(data)
    out = []
    for segment in _BASE64_SEGMENTS.split(clean):
        if len(segment) % 4 == 1:
            segment, problem = segment[:-1], True
        try:
            out.append(binascii.a2b_base64(segment + b"=" * (-len(segment) % 4)))
        except (binascii.Error, ValueError):
            problem = True
    return b"".join(out), problem


def _transfer_encoding(fields: Headers) -> str:
    return _bare_value(_first(fields, "content-transfer-encoding")) or "7bit"


def _transfer_decode(data: bytes, encoding: str) -> tuple[bytes, bool]:
    """
    Undo a Content-Transfer-Encoding (RFC 2045 6).  An unknown encoding is
    treated as none (RFC 8621 4.1.4 blobId).
    @return: the bytes, and whether decoding met a problem.
    """
    if encoding == "base64":
        return _base64(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data), False
    return data, encoding not in ("7bit", "8bit", "binary")


# --- the MIME tree ---------------------------------------------------------

@attrs.frozen
class BodyPart:
    """
    One node of the bodyStructure (RFC 8621 4.1.4 EmailBodyPart).  Field
    meanings follow the RFC; C{start} and C{end} are byte offsets of the
    part's content (after its header fields) in the raw message.
    """
    part_id: Optional[str]
    headers: Headers
    type: str
    charset: Optional[str]
    disposition: Optional[str]
    cid: Optional[str]
    language: Optional[list[str]]
    location: Optional[str]
    name: Optional[str]
    size: int
    sub_parts: tuple["BodyPart", ...]
    start: int
    end: int

    @property
    def is_multipart(self) -> bool:
        return self.part_id is None

    def to_json(self, message_blob_id: str, properties: Sequence[str]) -> dict:
        """
        This part as an EmailBodyPart object with C{properties} (RFC 8621
        4.1.4).  A container always carries its C{subParts}, in the same
        properties, so that bodyStructure is a tree.

        @raise ValueError: for an unknown or malformed property.
        """
        out: dict = {}
        for prop in properties:
            if prop.startswith("header:"):
                out[prop] = _header_property(self.headers, prop)
            elif prop not in _PART_PROPERTIES:
                raise ValueError("unknown body property %r" % (prop,))
            elif prop == "subParts":
                out[prop] = None
            else:
                out[prop] = self._property(message_blob_id, prop)
        if self.is_multipart:
            out["subParts"] = [p.to_json(message_blob_id, properties) for p in self.sub_parts]
        return out

    def _property(self, message_blob_id: str, prop: str) -> object:
        if prop == "partId":
            return self.part_id
        if prop == "blobId":
            return None if self.part_id is None else part_blob_id(message_blob_id, self.part_id)
        if prop == "headers":
            return [{"name": n, "value": _h.as_raw(v)} for n, v in self.headers]
        if prop == "language":
            return None if self.language is None else list(self.language)
        return getattr(self, prop)


def _leaf(raw: bytes, fields: Headers, start: int, end: int, part_id: str,
          media_type: str, has_type: bool) -> BodyPart:
    message = _mime_message(fields)
    charset = _param(message, "charset") if has_type else None
    if charset is None and media_type.startswith("text/"):
        charset = "us-ascii"
    content, _ = _transfer_decode(raw[start:end], _transfer_encoding(fields))
    return BodyPart(
        part_id=part_id, headers=fields, type=media_type, charset=charset,
        disposition=_bare_value(_first(fields, "content-disposition")),
        cid=_cid(_first(fields, "content-id")),
        language=_language(_first(fields, "content-language")),
        location=_location(_first(fields, "content-location")),
        name=_filename(message), size=len(content), sub_parts=(), start=start, end=end)


def _delimiters(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int, bool]]:
    """
    The boundary delimiter lines of a multipart body (RFC 2046 5.1.1): for
    each, where the previous part ends (the line break before the delimiter
    belongs to it), where the next part starts, and whether it closes.
    """
    needle = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    while True:
        at = raw.find(needle, pos, end)
        if at < 0:
            return found
        pos = at + len(needle)
        if at != start and raw[at - 1] != 10:
            continue
        j = pos
        closing = j + 2 <= end and raw[j:j + 2] == b"--"
        if closing:
            j += 2
        while j < end and raw[j] in (32, 9):
            j += 1
        if j >= end:
            after = end
        elif raw[j] == 10:
            after = j + 1
        elif raw[j] == 13 and j + 1 < end and raw[j + 1] == 10:
            after = j + 2
        else:
            continue      # "--boundary" then more: another, longer boundary
        before = at
        if at > start:
            before = at - 1
            if before > start and raw[before - 1] == 13:
                before -= 1
        found.append((before, after, closing))
        if closing:
            return found


_GUESS = re.compile(rb"^--([^\s]{1,%d}?)(?:--)?[ \t]*\r?$" % (_BOUNDARY_CHARS_MAX,), re.M)


def _parts(raw: bytes, start: int, end: int, boundary: Optional[str]) -> Optional[list[tuple[int, int]]]:
    """
    The (start, end) of each body part of a multipart body; a missing closing
    delimiter ends the last part at the end of the body.  With a wrong or no
    boundary parameter, the first line that looks like a delimiter gives the
    boundary.  L{None} if there is no delimiter at all.
    """
    delimiters: list[tuple[int, int, bool]] = []
    if boundary:
        delimiters = _delimiters(raw, start, end, boundary.encode("utf-8")[:_BOUNDARY_CHARS_MAX])
    if not delimiters:
        guess = _GUESS.search(raw, start, end)
        if guess is not None:
            delimiters = _delimiters(raw, start, end, guess.group(1))
    if not delimiters:
        return None
    ranges = []
    for (_, after, closing), following in zip(delimiters, delimiters[1:] + [None]):
        if closing:
            break
        part_end = end if following is None else following[0]
        ranges.append((after, max(after, part_end)))
    return ranges


def _entity(raw: bytes, start: int, end: int, default_type: str, path: str, depth: int,
            budget: list[int], top: bool = False, headerless: bool = False) -> BodyPart:
    """The BodyPart of the MIME entity in C{raw[start:end]}, recursively."""
    fields, body_start = ((), start) if headerless else _h.read_header_fields(raw, start, end, top)
    media_type, has_type = _content_type(fields, default_type)
    part_id = path or "1"
    if not media_type.startswith("multipart/"):
        return _leaf(raw, fields, body_start, end, part_id, media_type, has_type)
    if depth >= DEPTH_MAX:
        return _leaf(raw, fields, body_start, end, part_id, "application/octet-stream", False)
    ranges = _parts(raw, body_start, end, _param(_mime_message(fields), "boundary"))
    children = []
    if ranges is None:
        # No delimiter at all: the body is kept as one text part.
        ranges, headerless = [(body_start, end)], True
    else:
        headerless = False
    child_type = "message/rfc822" if media_type == "multipart/digest" else "text/plain"
    for number, (child_start, child_end) in enumerate(ranges, 1):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        child_path = "%s.%d" % (path, number) if path else str(number)
        children.append(_entity(raw, child_start, child_end, child_type, child_path,
                                depth + 1, budget, headerless=headerless))
    return BodyPart(
        part_id=None, headers=fields, type=media_type, charset=None,
        disposition=_bare_value(_first(fields, "content-disposition")),
        cid=_cid(_first(fields, "content-id")),
        language=_language(_first(fields, "content-language")),
        location=_location(_first(fields, "content-location")), name=None,
        size=end - body_start, sub_parts=tuple(children), start=body_start, end=end)


# --- RFC 8621 4.1.4: textBody, htmlBody, attachments -----------------------

def _inline_media(media_type: str) -> bool:
    return media_type.startswith(("image/", "audio/", "video/"))


def _flatten(parts: Sequence[BodyPart], multipart_type: str, in_alternative: bool,
             html_body: Optional[list], text_body: Optional[list], attachments: list) -> None:
    """
    The suggested algorithm of RFC 8621 4.1.4 (C{parseStructure}), step for
    step; C{None} for a list plays the role of JavaScript's C{null}.
    """
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        is_multipart = part.type.startswith("multipart/")
        is_inline = (part.disposition != "attachment"
                     and (part.type in ("text/plain", "text/html") or _inline_media(part.type))
                     and (i == 0 or (multipart_type != "related"
                                     and (_inline_media(part.type) or not part.name))))
        if is_multipart:
            sub_type = part.type.split("/", 1)[1]
            _flatten(part.sub_parts, sub_type, in_alternative or sub_type == "alternative",
                     html_body, text_body, attachments)
        elif is_inline:
            if multipart_type == "alternative":
                if part.type == "text/plain":
                    text_body.append(part)
                elif part.type == "text/html":
                    html_body.append(part)
                else:
                    attachments.append(part)
                continue
            elif in_alternative:
                if part.type == "text/plain":
                    html_body = None
                if part.type == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _inline_media(part.type):
                attachments.append(part)
        else:
            attachments.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


# --- the message -----------------------------------------------------------

@attrs.frozen
class ParsedMessage:
    """
    A message parsed for RFC 8621 4.1: everything derived from its bytes.
    C{headers} are the top-level fields, as in C{body.headers}.
    """
    size: int
    headers: Headers
    body: BodyPart
    text_body: tuple[BodyPart, ...]
    html_body: tuple[BodyPart, ...]
    attachments: tuple[BodyPart, ...]
    has_attachment: bool
    preview: str
    #: The message itself, for L{search_fields}; the same object as parsed, not a copy.
    _raw: bytes = attrs.field(default=b"", repr=False, eq=False)

    def header_values(self, name: str) -> list[str]:
        """All raw values of the field C{name} (any case), in order."""
        return _all(self.headers, name)

    def _last(self, name: str) -> Optional[str]:
        values = self.header_values(name)
        return values[-1] if values else None

    def _ids(self, name: str) -> list[str]:
        value = self._last(name)
        return (_h.as_message_ids(value) or []) if value is not None else []

    def message_ids(self) -> list[str]:
        """The Message-ID ids (RFC 8621 4.1.3 messageId), or []."""
        return self._ids("message-id")

    def in_reply_to(self) -> list[str]:
        """The In-Reply-To ids, or []."""
        return self._ids("in-reply-to")

    def references(self) -> list[str]:
        """The References ids, or []."""
        return self._ids("references")

    def subject(self) -> str:
        """The Subject as text (RFC 8621 4.1.2.2), or C{""}."""
        value = self._last("subject")
        return "" if value is None else _h.as_text(value)

    def sent_at(self) -> Optional[str]:
        """The Date as RFC 3339 (RFC 8621 4.1.2.6), or L{None}."""
        value = self._last("date")
        return None if value is None else _h.as_date(value)

    def search_fields(self) -> dict[str, str]:
        """
        Plain text for full-text search: the subject, the addresses of each
        address field (names and emails), and the body.  The body is the
        text parts of textBody and the text/plain and text/html attachments,
        HTML converted, at most L{SEARCH_CHARS_MAX} characters.
        """
        raw = self._raw
        fields = {"subject": self.subject()}
        for key in ("from", "to", "cc", "bcc"):
            words = []
            for value in self.header_values(key):
                for box in _h.as_addresses(value) or ():
                    words.extend(w for w in (box["name"], box["email"]) if w)
            fields[key] = " ".join(words)
        chunks: list[str] = []
        total = 0
        if raw:
            seen = set()
            for part in self.text_body + self.attachments:
                if total >= SEARCH_CHARS_MAX or id(part) in seen:
                    continue
                seen.add(id(part))
                if part.type in ("text/plain", "text/html"):
                    text = _part_text(raw, part, SEARCH_CHARS_MAX - total)
                    chunks.append(text)
                    total += len(text)
        fields["body"] = "\n".join(chunks)[:SEARCH_CHARS_MAX]
        return fields


def _part_text(raw: bytes, part: BodyPart, chars_max: int) -> str:
    """Readable text of a text/plain or text/html part, HTML converted, bounded."""
    data = part_content(raw, part)[:chars_max * 4]
    text, _ = _h.decode_bytes(data, part.charset)
    text = text.replace("\r\n", "\n")
    if part.type == "text/html":
        text = html_to_text(text)
    return text[:chars_max]


def _preview(raw: bytes, text_body: Sequence[BodyPart]) -> str:
    """
    RFC 8621 4.1.4 preview: the start of the text of textBody (HTML
    converted), white space collapsed, at most 256 characters.
    """
    words: list[str] = []
    length = 0
    for part in text_body:
        if length > PREVIEW_CHARS_MAX:
            break
        if part.type not in ("text/plain", "text/html"):
            continue
        for word in _part_text(raw, part, _PREVIEW_SOURCE_BYTES).split():
            words.append(word)
            length += len(word) + 1
            if length > PREVIEW_CHARS_MAX:
                break
    return " ".join(words)[:PREVIEW_CHARS_MAX]


_CID_REF = re.compile(r"""cid:([^"'\s<>)]+)""", re.I)


def _has_attachment(raw: bytes, html_body: Sequence[BodyPart],
                    attachments: Sequence[BodyPart]) -> bool:
    """
    RFC 8621 4.1.4 hasAttachment: an attachment that is not
    C{Content-Disposition: inline}, leaving out images without a disposition
    that an HTML body references by C{cid:} (which 4.1.4 allows).
    """
    candidates = [p for p in attachments if p.disposition != "inline"]
    if not candidates:
        return False
    referenced = set()
    if any(p.disposition is None and p.cid for p in candidates):
        for part in html_body:
            if part.type == "text/html":
                data = part_content(raw, part)[:SEARCH_CHARS_MAX]
                text = _h.decode_bytes(data, part.charset)[0]
                referenced.update(m.group(1).lower() for m in _CID_REF.finditer(text))
    return any(not (p.disposition is None and p.cid and p.cid.lower() in referenced)
               for p in candidates)


def parse_message(raw: bytes) -> ParsedMessage:
    """
    Parse a raw message (RFC 5322, MIME) for RFC 8621 4.1.  Never raises.
    """
    raw = bytes(raw)
    body = _entity(raw, 0, len(raw), "text/plain", "", 0, [PARTS_MAX], top=True)
    html_body: list[BodyPart] = []
    text_body: list[BodyPart] = []
    attachments: list[BodyPart] = []
    _flatten([body], "mixed", False, html_body, text_body, attachments)
    return ParsedMessage(
        size=len(raw), headers=body.headers, body=body, text_body=tuple(text_body),
        html_body=tuple(html_body), attachments=tuple(attachments),
        has_attachment=_has_attachment(raw, html_body, attachments),
        preview=_preview(raw, text_body), raw=raw)


def _leaf_parts(part: BodyPart) -> list[BodyPart]:
    if not part.is_multipart:
        return [part]
    return [leaf for sub in part.sub_parts for leaf in _leaf_parts(sub)]


def find_part(parsed: ParsedMessage, part_id: str) -> Optional[BodyPart]:
    """The leaf part with C{part_id}, or L{None} (for part blob downloads)."""
    for part in _leaf_parts(parsed.body):
        if part.part_id == part_id:
            return part
    return None


def part_content(raw: bytes, part: BodyPart) -> bytes:
    """
    The content of a leaf C{part} of C{raw} with its transfer encoding
    undone: the bytes of its blob (RFC 8621 4.1.4 blobId).
    """
    return _transfer_decode(raw[part.start:part.end], _transfer_encoding(part.headers))[0]


def _truncate(value: str, max_bytes: int, is_html: bool) -> str:
    data = value.encode("utf-8")
    if len(data) <= max_bytes:
        return value
    text = data[:max_bytes].decode("utf-8", "ignore")     # never mid-codepoint
    if is_html:
        lt, gt = text.rfind("<"), text.rfind(">")
        if lt > gt:                                       # never inside a tag
            text = text[:lt]
    return text


def body_value(raw: bytes, part: BodyPart, max_bytes: int = 0) -> dict:
    """
    The EmailBodyValue of a leaf C{part} (RFC 8621 4.1.4 bodyValues): its
    content decoded from the transfer encoding and charset, CRLF as LF,
    truncated to C{max_bytes} octets of UTF-8 if that is above 0 (not
    mid-codepoint, nor inside an HTML tag).
    """
    data, problem = _transfer_decode(raw[part.start:part.end], _transfer_encoding(part.headers))
    text, charset_problem = _h.decode_bytes(data, part.charset)
    text = text.replace("\r\n", "\n")
    truncated = _truncate(text, max_bytes, part.type == "text/html") if max_bytes > 0 else text
    return {"value": truncated, "isEncodingProblem": problem or charset_problem,
            "isTruncated": len(truncated) != len(text)}


# --- Email properties ------------------------------------------------------

def check_properties(properties: Sequence[str], body_properties: Optional[Sequence[str]] = None) -> None:
    """
    Check Email and EmailBodyPart property names before any message is read,
    so a bad request fails even when no Email is found.

    @raise ValueError: for an unknown property, a malformed C{header:}
        property, or a form the field may not be fetched in (RFC 8621 4.1.2);
        the caller answers C{invalidArguments}.
    """
    for prop in properties:
        if prop.startswith("header:"):
            _check_header_property(prop)
        elif prop not in _EMAIL_PROPERTIES and prop not in _METADATA:
            raise ValueError("unknown Email property %r" % (prop,))
    for prop in body_properties or ():
        if prop.startswith("header:"):
            _check_header_property(prop)
        elif prop not in _PART_PROPERTIES:
            raise ValueError("unknown body property %r" % (prop,))


def email_properties(parsed: ParsedMessage, raw: bytes, message_blob_id: str,
                     properties: Sequence[str], body_properties: Optional[Sequence[str]] = None,
                     fetch_text_body_values: bool = False, fetch_html_body_values: bool = False,
                     fetch_all_body_values: bool = False, max_body_value_bytes: int = 0) -> dict:
    """
    The Email properties derived from the message itself (RFC 8621 4.1.2 to
    4.1.4); metadata names (id, blobId, threadId, mailboxIds, keywords,
    size, receivedAt) are skipped for the caller to fill in from the store.

    @raise ValueError: as L{check_properties}.
    """
    check_properties(properties, body_properties)
    body_properties = DEFAULT_BODY_PROPERTIES if body_properties is None else body_properties
    out: dict = {}
    for prop in properties:
        if prop in _METADATA:
            continue
        if prop.startswith("header:"):
            out[prop] = _header_property(parsed.headers, prop)
        elif prop in _CONVENIENCE:
            field, form = _CONVENIENCE[prop]
            values = parsed.header_values(field)
            out[prop] = _FORM_FUNCTIONS[form](values[-1]) if values else None
        elif prop == "headers":
            out[prop] = [{"name": n, "value": _h.as_raw(v)} for n, v in parsed.headers]
        elif prop == "bodyStructure":
            out[prop] = parsed.body.to_json(message_blob_id, body_properties)
        elif prop in ("textBody", "htmlBody", "attachments"):
            parts = {"textBody": parsed.text_body, "htmlBody": parsed.html_body,
                     "attachments": parsed.attachments}[prop]
            out[prop] = [p.to_json(message_blob_id, body_properties) for p in parts]
        elif prop == "hasAttachment":
            out[prop] = parsed.has_attachment
        elif prop == "preview":
            out[prop] = parsed.preview
        elif prop == "bodyValues":
            out[prop] = _body_values(parsed, raw, fetch_text_body_values, fetch_html_body_values,
                                     fetch_all_body_values, max_body_value_bytes)
    return out


def _body_values(parsed: ParsedMessage, raw: bytes, text: bool, html: bool, every: bool,
                 max_bytes: int) -> dict:
    """RFC 8621 5.1 fetch*BodyValues: the text/* parts selected, by part id."""
    chosen: list[BodyPart] = []
    if text:
        chosen.extend(parsed.text_body)
    if html:
        chosen.extend(parsed.html_body)
    if every:
        chosen.extend(_leaf_parts(parsed.body))
    values: dict = {}
    for part in chosen:
        if part.type.startswith("text/") and part.part_id not in values:
            values[part.part_id] = body_value(raw, part, max_bytes)
    return values
