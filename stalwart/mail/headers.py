# -*- test-case-name: tests.mail.test_headers -*-
"""
The parsed forms of header field values (RFC 8621 section 4.1.2) and the
C{header:} Email properties (section 4.1.3).

Apart from L{read_header_fields}, which splits the header fields of an
entity out of raw bytes, every function here takes ONE header field value as
a C{str}: the text after the field name's colon, folded or not, possibly
holding RFC 2047 encoded words.  None of them raises on any input, and all of them do work linear in
the length of the value, so a 100 KB header costs milliseconds.

The address, message-id and URL parsers are small hand-written tokenisers
rather than L{email.headerregistry}: RFC 8621 wants things the registry does
not expose (the comment after an addr-spec as a fallback display name, the
RFC 2047 placement rules), and the registry's parser has had super-linear
cases on hostile input.  Dates use L{email.utils.parsedate_tz}, which keeps
the original offset.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime
import email.utils
import re
import unicodedata
from typing import Optional

__all__ = [
    "as_raw", "as_text", "as_addresses", "as_grouped_addresses", "as_message_ids",
    "as_date", "as_urls", "parse_header_property", "header_form_allowed",
    "decode_bytes", "decode_encoded_words", "unfold", "without_comments", "read_header_fields", "FORMS",
]

FORMS = ("asRaw", "asText", "asAddresses", "asGroupedAddresses", "asMessageIds",
         "asDate", "asURLs")
"""The parsed forms of RFC 8621 4.1.2, as spelled in C{header:} properties."""

# Header fields defined by RFC 5322 or RFC 2369, lower case.  A field not in
# this set may be fetched in every form (RFC 8621 4.1.2.2 to 4.1.2.7).
_DEFINED = frozenset("""
    date from sender reply-to to cc bcc message-id in-reply-to references subject
    comments keywords resent-date resent-from resent-sender resent-to resent-cc
    resent-bcc resent-message-id return-path received
    list-help list-unsubscribe list-subscribe list-post list-owner list-archive
""".split())

_ADDRESS_FIELDS = frozenset("""
    from sender reply-to to cc bcc resent-from resent-sender resent-reply-to
    resent-to resent-cc resent-bcc
""".split())

_ALLOWED = {
    "asRaw": None,   # every field
    "asText": frozenset(["subject", "comments", "keywords", "list-id"]),
    "asAddresses": _ADDRESS_FIELDS,
    "asGroupedAddresses": _ADDRESS_FIELDS,
    "asMessageIds": frozenset(["message-id", "in-reply-to", "references", "resent-message-id"]),
    "asDate": frozenset(["date", "resent-date"]),
    "asURLs": frozenset(["list-help", "list-unsubscribe", "list-subscribe", "list-post",
                         "list-owner", "list-archive"]),
}

_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")

#: Charset names are short; anything longer is not worth a codec lookup.
_CHARSET_CHARS_MAX = 64

# Labels that mail in the wild declares but means a superset of (as the
# WHATWG Encoding standard does for the web).
_CHARSET_SUPERSETS = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "tis-620": "cp874", "windows-874": "cp874",
}

# Codecs Python knows that are not character sets a message may claim.
_NOT_CHARSETS = ("escape", "idna", "punycode", "undefined", "mbcs", "oem", "_codec")


def _codec_for(charset: str) -> Optional[str]:
    """
    @return: the name of a Python text codec for a MIME C{charset} label, or
        L{None} if Python knows no such character set.
    """
    label = charset.strip().strip('"').lower()
    if not label or len(label) > _CHARSET_CHARS_MAX:
        return None
    label = _CHARSET_SUPERSETS.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or any(
            bad in info.name for bad in _NOT_CHARSETS):
        return None
    return info.name


def decode_bytes(data: bytes, charset: Optional[str]) -> tuple[str, bool]:
    """
    Decode C{data} in C{charset}, best effort (RFC 8621 4.1.4 bodyValues).

    US-ASCII, a missing charset and ISO-8859-1 are read as UTF-8 when the
    bytes are valid UTF-8 (mail in the wild mislabels), else as
    windows-1252, a superset of both.

    @return: the text, and whether there was a problem: an unknown charset
        (the bytes are then read as UTF-8) or bytes that did not decode
        (each replaced by U+FFFD).
    """
    name = _codec_for(charset or "us-ascii")
    if name is None:
        return data.decode("utf-8", "replace"), True
    if name in ("cp1252", "utf-8"):
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            if name == "utf-8":
                return data.decode("utf-8", "replace"), True
        # windows-1252 leaves five octets undefined; Latin-1 maps every octet.
        try:
            return data.decode("cp1252"), False
        except UnicodeDecodeError:
            return data.decode("latin-1"), False
    try:
        return data.decode(name), False
    except UnicodeDecodeError:
        pass
    except Exception:
        return data.decode("utf-8", "replace"), True
    try:
        return data.decode(name, "replace"), True
    except Exception:
        return data.decode("utf-8", "replace"), True


# --- RFC 2047 encoded words ------------------------------------------------

_WORD = r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?="
_ENCODED = re.compile(_WORD)
_ENCODED_RUN = re.compile("(?:%s)+" % (_WORD,))
_TOKEN = re.compile(r"\s+|\S+")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n|\r")


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = payload.encode("ascii", "replace")
    if encoding in "bB":
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        data = data[: len(data) - len(data) % 4 if len(data) % 4 == 1 else len(data)]
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return b""
    return _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))


def _drop_controls(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cc")


def _run_pieces(run: str) -> Optional[list[tuple[str, bytes]]]:
    """
    The (codec, bytes) of a run of adjacent encoded words, or L{None} if a
    charset is unknown: the run then stays as it is.
    """
    pieces: list[tuple[str, bytes]] = []
    for m in _ENCODED.finditer(run):
        charset = m.group(1).split("*", 1)[0]    # RFC 2231 section 5: charset*language
        codec = _codec_for(charset)
        if codec is None:
            return None
        pieces.append((codec, _word_bytes(m.group(2), m.group(3))))
    return pieces


def _decode_pieces(pieces: list[tuple[str, bytes]]) -> str:
    """
    Decode encoded words; the bytes of neighbours in the same charset are
    joined first, so a character split across two words survives.
    """
    joined: list[tuple[str, bytes]] = []
    for codec, data in pieces:
        if joined and joined[-1][0] == codec:
            joined[-1] = (codec, joined[-1][1] + data)
        else:
            joined.append((codec, data))
    return "".join(_drop_controls(decode_bytes(data, codec)[0]) for codec, data in joined)


def decode_encoded_words(text: str, lenient: bool = False) -> str:
    """
    Decode the RFC 2047 encoded words of C{text}.

    An encoded word is decoded only when it stands alone between white space
    (RFC 2047 section 5), or directly next to another encoded word (a common
    fault of senders that we forgive); white space between two decoded words
    is dropped (section 6.2).  Encoded words with an unknown charset stay as
    they are (RFC 8621 4.1.2.2, step 4).

    @param lenient: decode encoded words wherever they are, as for MIME
        parameters such as C{name="=?UTF-8?B?...?="} (RFC 8621 4.1.4 name).
    """
    if "=?" not in text:
        return text
    if lenient:
        def replace(m: re.Match) -> str:
            pieces = _run_pieces(m.group(0))
            return m.group(0) if pieces is None else _decode_pieces(pieces)
        return _ENCODED_RUN.sub(replace, text)
    out: list[str] = []
    space = ""
    pending: list[tuple[str, bytes]] = []   # encoded words not yet decoded
    for m in _TOKEN.finditer(text):
        token = m.group(0)
        if token[0].isspace():
            space = token
            continue
        pieces = _run_pieces(token) if _ENCODED_RUN.fullmatch(token) else None
        if pieces is not None:
            if not pending:
                out.append(space)
            pending.extend(pieces)
        else:
            if pending:
                out.append(_decode_pieces(pending))
                pending = []
            out.append(space)
            out.append(token)
        space = ""
    if pending:
        out.append(_decode_pieces(pending))
    out.append(space)
    return "".join(out)


def unfold(value: str) -> str:
    """Unfold a header value (RFC 5322 2.2.3): line breaks go, the white space after them stays."""
    return _FOLD.sub("", value)


# --- the header fields of an entity (RFC 5322 2.2, 3.6) -------------------

_FIELD_NAME_BYTES = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


def _header_text(data: bytes) -> str:
    """RFC 8621 4.1.2.1: bytes that are not UTF-8 become U+FFFD, NULs go."""
    return data.decode("utf-8", "replace").replace("\x00", "")


def read_header_fields(raw: bytes, start: int, end: int,
                       top: bool = False) -> tuple[tuple[tuple[str, str], ...], int]:
    """
    Read the header fields of the entity in C{raw[start:end]}.

    Lines end in CRLF or a bare LF.  The fields end at the first empty line
    (skipped) or at the first line that is neither a field nor a
    continuation (the body then starts there, as in the email package).  An
    mbox C{From } line at the top of a message is skipped.

    @param top: whether this is a message, not a body part: only then an
        mbox C{From } line is skipped.
    @return: the (name, Raw value) pairs, and where the body starts.
    """
    fields: list[tuple[str, str]] = []
    current: Optional[tuple[bytes, int, int]] = None   # name, value start, value end

    def finish() -> None:
        if current is not None:
            name, value_start, value_end = current
            fields.append((name.decode("ascii"), _header_text(raw[value_start:value_end])))

    pos = start
    if top and raw.startswith(b"From ", start):
        nl = raw.find(b"\n", start, end)
        pos = end if nl < 0 else nl + 1
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl
        next_pos = end if nl < 0 else nl + 1
        content_end = line_end - 1 if line_end > pos and raw[line_end - 1] == 13 else line_end
        if content_end == pos:
            finish()
            return tuple(fields), next_pos
        if raw[pos] in (32, 9) and current is not None:
            current = (current[0], current[1], content_end)
            pos = next_pos
            continue
        colon = raw.find(b":", pos, content_end)
        name = raw[pos:colon].rstrip(b" \t") if colon > pos else b""
        if not _FIELD_NAME_BYTES.fullmatch(name):
            finish()
            return tuple(fields), pos
        finish()
        current = (name, colon + 1, content_end)
        pos = next_pos
    finish()
    return tuple(fields), end


# --- 4.1.2.1 Raw and 4.1.2.2 Text ------------------------------------------

def as_raw(value: str) -> str:
    """
    RFC 8621 4.1.2.1: the value as it is, without NUL characters.
    """
    return value.replace("\x00", "")


def as_text(value: str) -> str:
    """
    RFC 8621 4.1.2.2: unfolded, trimmed, encoded words decoded, NFC.
    """
    text = decode_encoded_words(unfold(value.replace("\x00", "")).strip())
    return unicodedata.normalize("NFC", text)


# --- 4.1.2.3 Addresses and 4.1.2.4 GroupedAddresses ------------------------

def _tokens(value: str) -> list[tuple[str, str]]:
    """
    Split an address list into (kind, text) tokens: C{"w"} atoms (dots and
    C{@} included), C{"q"} quoted strings (unquoted), C{"c"} comments
    (without parentheses), C{"a"} angle addresses (without brackets) and
    C{"s"} the specials C{, ; :}.
    """
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace() or c == ">":
            i += 1
        elif c == '"':
            i, text = _quoted(value, i + 1)
            out.append(("q", text))
        elif c == "(":
            i, text = _comment(value, i + 1)
            out.append(("c", text))
        elif c == "<":
            j = value.find(">", i + 1)
            j = n if j < 0 else j
            out.append(("a", value[i + 1:j]))
            i = j + 1
        elif c in ",;:":
            out.append(("s", c))
            i += 1
        else:
            j = i
            while j < n and not value[j].isspace() and value[j] not in '"(<>,;:':
                j += 1
            out.append(("w", value[i:j]))
            i = j
    return out


def _quoted(value: str, i: int) -> tuple[int, str]:
    chars = []
    n = len(value)
    while i < n and value[i] != '"':
        if value[i] == "\\" and i + 1 < n:
            i += 1
        chars.append(value[i])
        i += 1
    return i + 1, "".join(chars)


def _comment(value: str, i: int) -> tuple[int, str]:
    chars = []
    depth, n = 1, len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            i += 1
            c = value[i]
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                break
        chars.append(c)
        i += 1
    return i + 1, "".join(chars)


def _clean_name(text: str) -> Optional[str]:
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    return text or None


def _phrase(tokens: list[tuple[str, str]]) -> Optional[str]:
    """
    A display name from atoms and quoted strings.  Encoded words are decoded
    in atoms only: RFC 2047 section 5 forbids them in quoted strings.
    """
    parts: list[str] = []
    atoms: list[str] = []
    for kind, text in tokens:
        if kind == "w":
            atoms.append(text)
            continue
        if atoms:
            parts.append(decode_encoded_words(" ".join(atoms)))
            atoms = []
        parts.append(text)
    if atoms:
        parts.append(decode_encoded_words(" ".join(atoms)))
    return _clean_name(" ".join(parts))


def _mailbox(tokens: list[tuple[str, str]]) -> Optional[dict]:
    angles = [text for kind, text in tokens if kind == "a"]
    comments = [text for kind, text in tokens if kind == "c"]
    if angles:
        address = "".join(angles[-1].split())
        if ":" in address:          # obsolete route: <@relay,@relay:user@host>
            address = address.rsplit(":", 1)[1]
        first_angle = next(i for i, t in enumerate(tokens) if t[0] == "a")
        name = _phrase([t for t in tokens[:first_angle] if t[0] in "wq"])
    else:
        words = [text if kind == "w" else '"%s"' % (text,) for kind, text in tokens
                 if kind in "wq"]
        if not words:
            return None
        address = "".join(words)
        name = None
    if name is None and comments:
        name = _clean_name(decode_encoded_words(comments[0]))
    if not address and name is None:
        return None
    return {"name": name, "email": address}


def as_grouped_addresses(value: str) -> list[dict] | None:
    """
    RFC 8621 4.1.2.4: the address-list with its groups; mailboxes outside
    any group are collected in groups named L{None}.  Best effort on broken
    syntax.
    """
    groups: list[dict] = []
    current: Optional[dict] = None     # the named group we are in
    pending: list[tuple[str, str]] = []

    def flush() -> None:
        nonlocal pending
        box = _mailbox(pending)
        pending = []
        if box is None:
            return
        if current is not None:
            current["addresses"].append(box)
        elif groups and groups[-1]["name"] is None and groups[-1].get("_open"):
            groups[-1]["addresses"].append(box)
        else:
            groups.append({"name": None, "addresses": [box], "_open": True})

    for kind, text in _tokens(unfold(value.replace("\x00", ""))):
        if kind == "s" and text == ",":
            flush()
        elif kind == "s" and text == ":":
            if current is None and not any(k == "a" for k, _ in pending):
                current = {"name": _phrase([t for t in pending if t[0] in "wq"]),
                           "addresses": []}
                pending = []
                groups.append(current)
        elif kind == "s" and text == ";":
            flush()
            current = None
        else:
            pending.append((kind, text))
    flush()
    for group in groups:
        group.pop("_open", None)
    return groups


def as_addresses(value: str) -> list[dict] | None:
    """
    RFC 8621 4.1.2.3: every mailbox of the address-list, groups flattened.
    """
    return [box for group in as_grouped_addresses(value) or () for box in group["addresses"]]


# --- 4.1.2.5 MessageIds, 4.1.2.6 Date, 4.1.2.7 URLs ------------------------

def without_comments(value: str) -> str:
    """Drop comments (outside angle brackets and quoted strings)."""
    out = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "(":
            i, _ = _comment(value, i + 1)
            out.append(" ")
            continue
        if c in "<\"":
            j = value.find(">" if c == "<" else '"', i + 1)
            j = n - 1 if j < 0 else j
            out.append(value[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


_ANGLED = re.compile(r"<([^<>]*)>?")


def as_message_ids(value: str) -> list[str] | None:
    """
    RFC 8621 4.1.2.5: the msg-ids without CFWS and angle brackets; ids
    that lost their brackets but have an C{@} are accepted too.  L{None} if
    there is none.
    """
    text = without_comments(unfold(value.replace("\x00", "")))
    ids = ["".join(m.group(1).split()) for m in _ANGLED.finditer(text)]
    ids = [i for i in ids if i]
    if not ids:
        ids = [word for word in re.split(r"[\s,]+", text) if "@" in word and "<" not in word]
    return ids or None


def as_date(value: str) -> str | None:
    """
    RFC 8621 4.1.2.6: an RFC 5322 date-time as RFC 3339 with its original
    offset, e.g. C{"2014-10-30T06:12:00-07:00"}; an unknown offset
    (C{-0000}), a missing one and C{+0000} are given as C{Z}.  L{None} if it does not parse.
    """
    text = " ".join(without_comments(unfold(value.replace("\x00", ""))).split())
    if not text or len(text) > 256:
        return None
    try:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        year, month, day, hour, minute, second = parsed[:6]
        offset = parsed[9]
        zone = datetime.timezone.utc if offset is None else datetime.timezone(
            datetime.timedelta(seconds=offset))
        when = datetime.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=zone)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    text = when.isoformat()
    # parsedate_tz gives 0 for "+0000", "-0000" (offset unknown) and a missing
    # zone alike: the instant is UTC in all three.
    return text[:-6] + "Z" if not offset else text


def as_urls(value: str) -> list[str] | None:
    """
    RFC 8621 4.1.2.7: the URLs of an RFC 2369 list header, without angle
    brackets, comments or white space.  L{None} if there is none.
    """
    text = without_comments(unfold(value.replace("\x00", "")))
    urls = ["".join(m.group(1).split()) for m in _ANGLED.finditer(text)]
    return [u for u in urls if u] or None


# --- 4.1.3 header:{name}[:as{form}][:all] ----------------------------------

def parse_header_property(name: str) -> tuple[str, str, bool] | None:
    """
    Parse an Email (or EmailBodyPart) property C{header:Name[:asForm][:all]}
    (RFC 8621 4.1.3).

    @return: (field name as given, form, whether C{:all}); the form is
        C{"asRaw"} when absent.  L{None} if C{name} is not such a property,
        the field name is not printable ASCII, the suffixes are out of order
        or the form is unknown.
    """
    if not isinstance(name, str) or not name.startswith("header:"):
        return None
    parts = name[len("header:"):].split(":")
    field = parts[0]
    if not _FIELD_NAME.fullmatch(field):
        return None
    rest = parts[1:]
    form, all_ = "asRaw", False
    if rest and rest[-1] == "all":
        all_ = True
        rest = rest[:-1]
    if rest:
        if len(rest) > 1 or rest[0] not in FORMS:
            return None
        form = rest[0]
    return field, form, all_


def header_form_allowed(header_name: str, form: str) -> bool:
    """
    Whether C{form} may be fetched for the header field C{header_name}
    (RFC 8621 4.1.2): C{asRaw} always; every form for a field that neither
    RFC 5322 nor RFC 2369 defines; otherwise the lists of 4.1.2.2-4.1.2.7.
    """
    if form not in _ALLOWED:
        return False
    allowed = _ALLOWED[form]
    field = header_name.lower()
    return allowed is None or field in allowed or field not in _DEFINED
