# -*- test-case-name: tests.mail.test_compose -*-
"""
Tests for L{stalwart.mail.compose}: building the message of an Email/set
create (RFC 8621 4.6).  Every message built is parsed back with the standard
library's parser (C{policy.default}) and with L{stalwart.mail.headers}, the
parsers Email/get uses.
"""

from __future__ import annotations

import email.policy
import random
import re
from email.message import EmailMessage
from email.parser import BytesParser

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail import headers
from stalwart.mail.compose import ComposeError, compose_message

NOW = "2024-03-05T06:07:08Z"
FRENCH = "Élève à l'école : « ça va ? » œuf, déjà"
JAPANESE = "日本語のテキスト、こんにちは世界"
EMOJI = "🎉🚀 party 👩‍👩‍👧"


def build(email_obj: dict, blobs: dict | None = None, **kwargs) -> bytes:
    """compose_message with fixed time, domain and unique string."""
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("message_id_domain", "example.org")
    kwargs.setdefault("unique", "Aa1.7.c1")
    return compose_message(email_obj, (blobs or {}).get, **kwargs)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(raw)


def header_value(raw: bytes, name: str) -> str:
    """The Raw form of the last field C{name} of the top-level header."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    found = re.findall(rf"^{re.escape(name)}:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    return found[-1]


def text_of(part) -> str:
    """A text part's content, line breaks normalised as bodyValues are."""
    return part.get_content().replace("\r\n", "\n")


def text(value: str) -> dict:
    return {"textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": value}}}


class WellFormedMixin:
    def assertWellFormed(self, raw: bytes, ascii_head: bool = True) -> None:
        """
        CRLF only, no line over 998 octets, ends in CRLF, an ASCII header
        (unless C{ascii_head} is false: a Raw header value may be UTF-8, RFC
        6532).
        """
        self.assertNotIn(b"\r", raw.replace(b"\r\n", b""))
        self.assertNotIn(b"\n", raw.replace(b"\r\n", b""))
        self.assertTrue(raw.endswith(b"\r\n"))
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
        head = raw.split(b"\r\n\r\n", 1)[0]
        self.assertTrue(head.isascii() or not ascii_head)
        for name in (b"MIME-Version: 1.0\r\n", b"\r\nDate: ", b"\r\nMessage-ID: "):
            self.assertIn(name, b"\r\n" + head + b"\r\n")

    def assertInvalid(self, email_obj: dict, *properties: str, blobs: dict | None = None) -> ComposeError:
        error = self.assertRaises(ComposeError, build, email_obj, blobs)
        self.assertEqual(error.type, "invalidProperties")
        self.assertEqual(sorted(error.properties), sorted(properties))
        return error


class HeaderTests(WellFormedMixin, SynchronousTestCase):
    """
    Header properties become header fields (RFC 8621 4.1.2, 4.1.3, 4.6).
    """

    def test_minimal(self) -> None:
        """
        An empty create still has Date (from C{now}), a Message-ID made of
        C{unique} and the domain, MIME-Version and an empty text/plain body.
        """
        raw = build({})
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual(msg["Date"], "Tue, 05 Mar 2024 06:07:08 +0000")
        self.assertEqual(msg["Message-ID"], "<Aa1.7.c1@example.org>")
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertEqual(text_of(msg), "")

    def test_metadata_ignored(self) -> None:
        """mailboxIds, keywords and receivedAt are not header fields."""
        raw = build({"mailboxIds": {"M1": True}, "keywords": {"$seen": True},
                     "receivedAt": "2020-01-01T00:00:00Z"})
        self.assertEqual(raw, build({}))

    def test_sent_at_offset(self) -> None:
        """sentAt becomes Date with its own offset, fractional seconds dropped."""
        for sent_at, date in [("2014-10-30T14:12:00+08:00", "Thu, 30 Oct 2014 14:12:00 +0800"),
                              ("2014-10-30T14:12:00.25-05:30", "Thu, 30 Oct 2014 14:12:00 -0530"),
                              ("1999-12-31T23:59:59Z", "Fri, 31 Dec 1999 23:59:59 +0000")]:
            raw = build({"sentAt": sent_at})
            self.assertEqual(parse(raw)["Date"], date)
            self.assertEqual(headers.as_date(header_value(raw, "Date")), sent_at.replace(".25", ""))

    def test_message_ids(self) -> None:
        """messageId, inReplyTo and references are lists of <msg-id>; a given messageId replaces the generated one."""
        references = [f"ref{i}.{'x' * 20}@example.com" for i in range(6)]
        raw = build({"messageId": ["m1@example.com"], "inReplyTo": ["p@example.com"],
                     "references": references})
        self.assertWellFormed(raw)
        self.assertEqual(headers.as_message_ids(header_value(raw, "Message-ID")), ["m1@example.com"])
        self.assertEqual(headers.as_message_ids(header_value(raw, "In-Reply-To")), ["p@example.com"])
        self.assertEqual(headers.as_message_ids(header_value(raw, "References")), references)
        self.assertEqual(raw.count(b"Message-ID:"), 1)

    def test_addresses_round_trip(self) -> None:
        """
        Names with specials are quoted, names with non-ASCII are RFC 2047
        encoded; both parsers give back the same EmailAddress objects.
        """
        addresses = [
            {"name": "Plain Name", "email": "plain@example.com"},
            {"name": "Doe, John \"JD\" \\ Q.", "email": "john@example.com"},
            {"name": "Jérôme Dupont-Lefèvre", "email": "jerome@example.fr"},
            {"name": "山田 太郎", "email": "taro@example.jp"},
            {"name": EMOJI, "email": "fun@example.com"},
            {"name": "=?utf-8?q?not_encoded?=", "email": "tricky@example.com"},
            {"name": None, "email": "bare@example.com"},
            {"name": "", "email": "empty@example.com"},
        ]
        expected = addresses[:-1] + [{"name": None, "email": "empty@example.com"}]
        for prop, field in [("from", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"),
                            ("replyTo", "Reply-To"), ("sender", "Sender")]:
            raw = build({prop: addresses})
            self.assertWellFormed(raw)
            self.assertEqual(headers.as_addresses(header_value(raw, field)), expected)
            parsed = parse(raw)[field].addresses
            self.assertEqual([{"name": a.display_name or None, "email": a.addr_spec} for a in parsed], expected)

    def test_long_names(self) -> None:
        """
        A name longer than one encoded word takes several (RFC 2047 2: 75
        characters each) and reads back whole with the RFC 8621 parser.
        (CPython's headerregistry keeps the space between adjacent encoded
        words of a phrase, against RFC 2047 6.2, so it is not asked.)
        """
        addresses = [{"name": FRENCH, "email": "eleve@example.fr"},
                     {"name": JAPANESE * 4, "email": "taro@example.jp"},
                     {"name": "A long ASCII name, with a comma, " * 5, "email": "long@example.com"}]
        raw = build({"to": addresses})
        self.assertWellFormed(raw)
        self.assertEqual(headers.as_addresses(header_value(raw, "To")),
                         [{**a, "name": a["name"].strip()} for a in addresses])
        for word in re.findall(rb"=\?[^?]+\?[bq]\?[^?]*\?=", raw):
            self.assertLessEqual(len(word), 75)

    def test_quoted_local_part(self) -> None:
        """An addr-spec with a quoted local part is written as given."""
        raw = build({"to": [{"name": "Quoted local", "email": '"john doe"@example.com'}]})
        self.assertEqual(parse(raw)["To"].addresses[0].addr_spec, '"john doe"@example.com')

    def test_subject(self) -> None:
        """
        The subject is written as is when ASCII, encoded when it is not or
        when it looks like an encoded word, and folded when long; it reads
        back unchanged.
        """
        for subject in ["Hello world", FRENCH, JAPANESE, EMOJI, "=?utf-8?q?abc?= literally",
                        "word " * 100, FRENCH * 20, "x" * 2000, "tabs\tand  double  spaces", "", "  padded  "]:
            raw = build({"subject": subject})
            self.assertWellFormed(raw)
            self.assertEqual(headers.as_text(header_value(raw, "Subject")), subject)
            self.assertEqual(str(parse(raw)["Subject"]), subject)
            for line in raw.split(b"\r\n"):
                if not subject.startswith("x" * 100):
                    self.assertLessEqual(len(line), 78)

    def test_header_forms(self) -> None:
        """header:Name:asForm properties write each form; :all writes one field per item."""
        raw = build({
            "header:X-Raw": " raw value\r\n folded",
            "header:X-Text:asText": JAPANESE,
            "header:List-Post:asURLs": ["mailto:list@example.com", "https://example.com/post"],
            "header:X-Addr:asAddresses": [{"name": FRENCH, "email": "a@example.com"}],
            "header:Resent-Date:asDate": "2020-02-02T02:02:02+01:00",
            "header:Comments:asText:all": ["first", "second"],
            "header:X-Ids:asMessageIds": ["a@b", "c@d"],
            "header:X-Unset": None,
        })
        self.assertWellFormed(raw)
        self.assertEqual(header_value(raw, "X-Raw"), " raw value\r\n folded")
        self.assertEqual(headers.as_text(header_value(raw, "X-Text")), JAPANESE)
        self.assertEqual(headers.as_urls(header_value(raw, "List-Post")),
                         ["mailto:list@example.com", "https://example.com/post"])
        self.assertEqual(headers.as_addresses(header_value(raw, "X-Addr")),
                         [{"name": FRENCH, "email": "a@example.com"}])
        self.assertEqual(headers.as_date(header_value(raw, "Resent-Date")), "2020-02-02T02:02:02+01:00")
        self.assertEqual(parse(raw).get_all("Comments"), ["first", "second"])
        self.assertEqual(headers.as_message_ids(header_value(raw, "X-Ids")), ["a@b", "c@d"])
        self.assertNotIn(b"X-Unset", raw)

    def test_raw_utf8(self) -> None:
        """A Raw value may be UTF-8 (RFC 8621 4.1.2.1, RFC 6532): it is written as UTF-8."""
        raw = build({"header:X-Raw": " " + FRENCH})
        self.assertWellFormed(raw, ascii_head=False)
        self.assertIn(b"X-Raw: " + FRENCH.encode("utf-8") + b"\r\n", raw)

    def test_grouped_addresses(self) -> None:
        """asGroupedAddresses keeps groups, including empty ones and encoded group names."""
        groups = [
            {"name": None, "addresses": [{"name": "Solo", "email": "solo@example.com"}]},
            {"name": "Friends", "addresses": [{"name": None, "email": "a@example.com"},
                                              {"name": JAPANESE, "email": "b@example.com"}]},
            {"name": "Amis de l'école", "addresses": [{"name": None, "email": "c@example.com"}]},
            {"name": "Undisclosed recipients", "addresses": []},
        ]
        raw = build({"header:To:asGroupedAddresses": groups})
        self.assertWellFormed(raw)
        self.assertEqual(headers.as_grouped_addresses(header_value(raw, "To")), groups)
        parsed = parse(raw)["To"].groups
        self.assertEqual([g.display_name for g in parsed], [None, "Friends", "Amis de l'école", "Undisclosed recipients"])

    def test_date_and_message_id_from_header_properties(self) -> None:
        """header:Date and header:Message-ID count as given: nothing is generated beside them."""
        raw = build({"header:Date:asDate": "2021-01-01T00:00:00Z",
                     "header:Message-ID": " <given@example.com>"})
        self.assertEqual(raw.count(b"\r\nDate:") + raw.startswith(b"Date:"), 1)
        self.assertEqual(parse(raw)["Message-ID"], "<given@example.com>")
        self.assertEqual(parse(raw)["Date"], "Fri, 01 Jan 2021 00:00:00 +0000")

    def test_null_sent_at_generates_date(self) -> None:
        """sentAt and messageId null are absent: the server generates them."""
        raw = build({"sentAt": None, "messageId": None})
        self.assertEqual(parse(raw)["Date"], "Tue, 05 Mar 2024 06:07:08 +0000")
        self.assertEqual(parse(raw)["Message-ID"], "<Aa1.7.c1@example.org>")

    def test_unusable_unique(self) -> None:
        """A unique string that is not a dot-atom is hashed into the Message-ID, never written raw."""
        raw = build({}, unique="a b<c>@")
        message_id = parse(raw)["Message-ID"]
        self.assertRegex(message_id, r"^<[0-9a-f]{64}@example\.org>$")

    def test_same_field_twice(self) -> None:
        """Two properties for one field: invalidProperties names both (RFC 8621 4.6)."""
        self.assertInvalid({"from": [], "header:From:asAddresses": []}, "from", "header:From:asAddresses")
        self.assertInvalid({"subject": "a", "header:subject": " b"}, "subject", "header:subject")
        self.assertInvalid({"header:X-A": " a", "header:x-a:asText": "b"}, "header:X-A", "header:x-a:asText")
        self.assertInvalid({"sentAt": NOW, "header:Date:asDate": NOW}, "sentAt", "header:Date:asDate")

    def test_forbidden_forms(self) -> None:
        """A parsed form forbidden for a field is invalid (RFC 8621 4.1.2)."""
        self.assertInvalid({"header:Subject:asAddresses": []}, "header:Subject:asAddresses")
        self.assertInvalid({"header:From:asText": "x"}, "header:From:asText")
        self.assertInvalid({"header:Date:asMessageIds": []}, "header:Date:asMessageIds")
        self.assertInvalid({"header:To:asFoo": []}, "header:To:asFoo")
        self.assertInvalid({"header:To:all:asAddresses": []}, "header:To:all:asAddresses")
        self.assertInvalid({"header:Bad Name": " x"}, "header:Bad Name")

    def test_content_headers_on_email(self) -> None:
        """Content-* fields belong on body parts; MIME-Version is the server's."""
        self.assertInvalid({"header:Content-Type": " text/plain"}, "header:Content-Type")
        self.assertInvalid({"header:content-language:asText": "fr"}, "header:content-language:asText")
        self.assertInvalid({"header:MIME-Version": " 1.0"}, "header:MIME-Version")

    def test_invalid_values(self) -> None:
        """A value that is not valid for its form is invalid."""
        cases = [
            ({"from": [{"name": "A", "email": "a b@example.com"}]}, "from"),
            ({"from": [{"name": "A", "email": "a@example.com", "extra": 1}]}, "from"),
            ({"from": [{"name": "A", "email": "josé@example.com"}]}, "from"),
            ({"from": [{"name": "A\r\nBcc: x@y", "email": "a@example.com"}]}, "from"),
            ({"from": {"email": "a@example.com"}}, "from"),
            ({"to": [{"name": 3, "email": "a@example.com"}]}, "to"),
            ({"subject": "two\nlines"}, "subject"),
            ({"subject": 12}, "subject"),
            ({"sentAt": "2024-03-05 06:07:08Z"}, "sentAt"),
            ({"sentAt": "2024-02-30T06:07:08Z"}, "sentAt"),
            ({"sentAt": "2024-03-05t06:07:08z"}, "sentAt"),
            ({"messageId": ["<a@b>"]}, "messageId"),
            ({"messageId": ["no at sign"]}, "messageId"),
            ({"messageId": "a@b"}, "messageId"),
            ({"header:X-Raw": " a\r\nInjected: yes"}, "header:X-Raw"),
            ({"header:X-Raw": " a\rb"}, "header:X-Raw"),
            ({"header:X-Raw": " " + "x" * 1000}, "header:X-Raw"),
            ({"header:X-Raw": 5}, "header:X-Raw"),
            ({"header:X-Raw:all": " a"}, "header:X-Raw:all"),
            ({"header:List-Post:asURLs": ["has space"]}, "header:List-Post:asURLs"),
            ({"header:To:asGroupedAddresses": [{"name": "G"}]}, "header:To:asGroupedAddresses"),
        ]
        for email_obj, prop in cases:
            self.assertInvalid(email_obj, prop)

    def test_headers_and_unknown_properties(self) -> None:
        """The headers property, unknown and server-set properties are refused on create."""
        self.assertInvalid({"headers": [{"name": "X", "value": " y"}]}, "headers")
        self.assertInvalid({"hasAttachment": False}, "hasAttachment")
        self.assertInvalid({"preview": ""}, "preview")
        self.assertInvalid({"flavour": "vanilla"}, "flavour")
        self.assertEqual(build({"headers": []}), build({}))

    def test_header_order(self) -> None:
        """Usual fields come first in a fixed order, whatever the order of the properties."""
        one = build({"subject": "s", "to": [{"email": "t@x"}], "header:X-A": " a",
                     "from": [{"email": "f@x"}]})
        two = build({"from": [{"email": "f@x"}], "header:X-A": " a", "to": [{"email": "t@x"}],
                     "subject": "s"})
        self.assertEqual(one, two)
        names = [line.split(b":")[0] for line in one.split(b"\r\n\r\n")[0].split(b"\r\n")]
        self.assertEqual(names[:6], [b"Date", b"From", b"To", b"Message-ID", b"Subject", b"X-A"])


class BodyTests(WellFormedMixin, SynchronousTestCase):
    """
    textBody, htmlBody, attachments and bodyValues become a MIME tree
    (RFC 8621 4.6).
    """

    def test_text_values_exact(self) -> None:
        """
        Text reads back exactly, line breaks made LF, whatever the encoding
        chosen, at the root and inside a multipart, with and without a final
        line break.
        """
        values = ["", "short ascii", "short ascii\n", "two\nlines\n\n", FRENCH + "\n" + FRENCH,
                  JAPANESE * 10, EMOJI + "\n", "trailing space \nand tab\t", "=3D not encoded =\n",
                  "y" * 5000, ("z" * 1200 + "\n") * 3, "line\r\nwith crlf\rand cr", ". \n.\nFrom me\n",
                  "--boundary-looking\n--=_\n", "nul\x00 and \x07 bell"]
        for value in values:
            expected = value.replace("\r\n", "\n").replace("\r", "\n")
            raw = build(text(value))
            self.assertWellFormed(raw)
            self.assertEqual(text_of(parse(raw)), expected, value)
            raw = build({**text(value), "attachments": [{"blobId": "b"}]}, {"b": b"data"})
            self.assertWellFormed(raw)
            self.assertEqual(text_of(parse(raw).get_body(("plain",))), expected, value)

    def test_transfer_encodings(self) -> None:
        """7bit for short ASCII lines, quoted-printable for mostly-ASCII text, base64 for CJK."""
        for value, cte in [("hello\n", "7bit"), ("Voilà, c'est réglé pour demain.\n", "quoted-printable"), ("a" * 100, "quoted-printable"),
                           (JAPANESE, "base64"), ("ends with space ", "quoted-printable")]:
            part = parse(build(text(value)))
            self.assertEqual(part["Content-Transfer-Encoding"], cte, value)
            self.assertEqual(part.get_content_charset(), "utf-8")

    def test_text_and_html(self) -> None:
        """textBody and htmlBody make a multipart/alternative, text first."""
        raw = build({"textBody": [{"partId": "t"}], "htmlBody": [{"partId": "h"}],
                     "bodyValues": {"t": {"value": FRENCH}, "h": {"value": f"<p>{JAPANESE}</p>"}}})
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        self.assertEqual([p.get_content_type() for p in msg.iter_parts()], ["text/plain", "text/html"])
        self.assertEqual(text_of(msg.get_body(("plain",))), FRENCH)
        self.assertEqual(text_of(msg.get_body(("html",))), f"<p>{JAPANESE}</p>")

    def test_html_only(self) -> None:
        """An htmlBody alone is the whole body."""
        raw = build({"htmlBody": [{"partId": "h", "type": "text/html"}],
                     "bodyValues": {"h": {"value": "<b>hi</b>"}}})
        self.assertEqual(parse(raw).get_content_type(), "text/html")

    def test_attachments(self) -> None:
        """
        Attachments are base64 with their bytes and names intact (RFC 2231
        for non-ASCII and long names); the default type is
        application/octet-stream and the default disposition attachment.
        """
        rng = random.Random(8621)
        blobs = {f"b{i}": bytes(rng.getrandbits(8) for _ in range(size)) for i, size in enumerate([0, 1, 57, 1000])}
        names = ["plain.txt", f"{FRENCH}.pdf", f"{JAPANESE * 5}.png", "a\"quoted\" name;.bin"]
        attachments = [{"blobId": f"b{i}", "name": name} for i, name in enumerate(names)]
        attachments[1]["type"] = "application/pdf"
        raw = build({**text("see attached"), "attachments": attachments}, blobs)
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        parts = list(msg.iter_attachments())
        self.assertEqual([p.get_filename() for p in parts], names)
        self.assertEqual([p.get_param("name") for p in parts], names)
        self.assertEqual([p.get_content_disposition() for p in parts], ["attachment"] * 4)
        self.assertEqual([p.get_content_type() for p in parts],
                         ["application/octet-stream", "application/pdf"] + ["application/octet-stream"] * 2)
        self.assertEqual([p.get_payload(decode=True) for p in parts], [blobs[f"b{i}"] for i in range(4)])
        self.assertEqual({p["Content-Transfer-Encoding"] for p in parts}, {"base64"})

    def test_attachments_without_body(self) -> None:
        """Attachments alone still make a multipart/mixed."""
        msg = parse(build({"attachments": [{"blobId": "b", "type": "image/gif"}]}, {"b": b"GIF89a"}))
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        self.assertEqual(next(msg.iter_parts()).get_payload(decode=True), b"GIF89a")

    def test_inline_images(self) -> None:
        """
        With an HTML body, inline attachments with a cid join it in a
        multipart/related (RFC 2387) inside the alternative; other
        attachments stay in the multipart/mixed.
        """
        raw = build({"textBody": [{"partId": "t"}], "htmlBody": [{"partId": "h"}],
                     "bodyValues": {"t": {"value": "text"}, "h": {"value": '<img src="cid:logo@x">'}},
                     "attachments": [{"blobId": "img", "type": "image/png", "disposition": "inline", "cid": "logo@x"},
                                     {"blobId": "doc", "type": "application/pdf", "name": "doc.pdf"},
                                     {"blobId": "img", "type": "image/png", "disposition": "inline"}]},
                    {"img": b"\x89PNG\r\n", "doc": b"%PDF"})
        self.assertWellFormed(raw)
        msg = parse(raw)
        mixed = [p.get_content_type() for p in msg.iter_parts()]
        self.assertEqual(mixed, ["multipart/alternative", "application/pdf", "image/png"])
        alternative = next(msg.iter_parts())
        related = list(alternative.iter_parts())[1]
        self.assertEqual(related.get_content_type(), "multipart/related")
        self.assertEqual(related.get_param("type"), "text/html")
        image = list(related.iter_parts())[1]
        self.assertEqual((image["Content-ID"], image.get_content_disposition()), ("<logo@x>", "inline"))
        self.assertEqual(image.get_payload(decode=True), b"\x89PNG\r\n")

    def test_inline_without_html(self) -> None:
        """Without an HTML body, an inline image is an ordinary part of the mixed."""
        msg = parse(build({**text("t"), "attachments": [
            {"blobId": "i", "type": "image/png", "disposition": "inline", "cid": "c"}]}, {"i": b"x"}))
        self.assertEqual([p.get_content_type() for p in msg.iter_parts()], ["text/plain", "image/png"])

    def test_large_attachment(self) -> None:
        """A 5 MB attachment reads back byte for byte."""
        data = random.Random(5).randbytes(5 * 1024 * 1024)
        raw = build({**text("big"), "attachments": [{"blobId": "big", "name": "big.bin"}]}, {"big": data})
        self.assertWellFormed(raw)
        self.assertEqual(next(parse(raw).iter_attachments()).get_payload(decode=True), data)

    def test_too_large(self) -> None:
        """A message over size_max is tooLarge, checked before a big blob is encoded."""
        data = b"x" * 10_000
        email_obj = {**text("t"), "attachments": [{"blobId": "b"}]}
        error = self.assertRaises(ComposeError, build, email_obj, {"b": data}, size_max=9_000)
        self.assertEqual(error.type, "tooLarge")
        error = self.assertRaises(ComposeError, build, email_obj, {"b": data}, size_max=12_000)
        self.assertEqual(error.type, "tooLarge")
        self.assertEqual(error.to_set_error().to_json()["type"], "tooLarge")
        error = self.assertRaises(ComposeError, build, text("y" * 1000), size_max=500)
        self.assertEqual(error.type, "tooLarge")
        raw = build(email_obj, {"b": data}, size_max=20_000)
        self.assertLessEqual(len(raw), 20_000)
        self.assertEqual(len(build(email_obj, {"b": data}, size_max=len(raw))), len(raw))

    def test_blob_not_found(self) -> None:
        """Every missing blob id is listed once, in order, in notFound."""
        asked = []

        def blob(blob_id):
            asked.append(blob_id)
            return {"here": b"x"}.get(blob_id)

        email_obj = {"attachments": [{"blobId": "gone1"}, {"blobId": "here"}, {"blobId": "gone2"},
                                     {"blobId": "gone1"}, {"blobId": "here"}]}
        error = self.assertRaises(ComposeError, compose_message, email_obj, blob, NOW, "example.org", "u")
        self.assertEqual((error.type, error.not_found), ("blobNotFound", ["gone1", "gone2"]))
        self.assertEqual(error.to_set_error().to_json()["notFound"], ["gone1", "gone2"])
        self.assertEqual(asked, ["gone1", "here", "gone2"])

    def test_body_structure(self) -> None:
        """
        A bodyStructure tree is written as given: partIds from bodyValues,
        blobIds from blobs, part headers and properties kept.
        """
        structure = {"type": "multipart/mixed", "header:X-Root": " root", "subParts": [
            {"type": "multipart/alternative", "subParts": [
                {"partId": "1", "language": ["fr", "en-CA"]},
                {"partId": "2", "type": "text/html", "location": "https://example.com/x"},
            ]},
            {"blobId": "cal", "type": "text/calendar", "charset": "utf-8", "header:X-Part:asText": FRENCH},
            {"blobId": "msg", "type": "message/rfc822", "disposition": "attachment"},
            {"partId": "3", "type": "text/x-custom", "name": EMOJI, "disposition": "inline"},
        ]}
        attached = b"Subject: inner\r\n\r\nInner body\r\n"
        raw = build({"subject": "s", "bodyStructure": structure,
                     "bodyValues": {"1": {"value": FRENCH}, "2": {"value": "<p>x</p>", "isTruncated": False},
                                    "3": {"value": EMOJI, "isEncodingProblem": None}}},
                    {"cal": "BEGIN:VCALENDAR\r\nÉ\r\n".encode(), "msg": attached})
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual(msg["X-Root"], "root")
        alternative, calendar, message, custom = msg.iter_parts()
        plain, html = alternative.iter_parts()
        self.assertEqual((text_of(plain), plain["Content-Language"]), (FRENCH, "fr, en-CA"))
        self.assertEqual((text_of(html), html["Content-Location"]), ("<p>x</p>", "https://example.com/x"))
        self.assertEqual(calendar.get_payload(decode=True), "BEGIN:VCALENDAR\r\nÉ\r\n".encode())
        self.assertEqual((calendar.get_content_charset(), calendar["X-Part"]), ("utf-8", FRENCH))
        self.assertEqual(message["Content-Transfer-Encoding"], "7bit")
        self.assertEqual(message.get_content()["Subject"], "inner")
        self.assertEqual((custom.get_filename(), text_of(custom)), (EMOJI, EMOJI))

    def test_single_part_structure(self) -> None:
        """A leaf bodyStructure is the whole message; its header: properties join the message's."""
        raw = build({"bodyStructure": {"blobId": "b", "type": "application/pdf", "header:X-Part": " p"}},
                    {"b": b"%PDF-1.7"})
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual((msg.get_content_type(), msg["X-Part"]), ("application/pdf", "p"))
        self.assertEqual(msg.get_payload(decode=True), b"%PDF-1.7")

    def test_message_blob_not_message_text(self) -> None:
        """A message/rfc822 blob with bare LFs goes as base64 rather than be changed."""
        raw = build({"bodyStructure": {"type": "multipart/mixed", "subParts": [
            {"blobId": "m", "type": "message/rfc822"}]}}, {"m": b"Subject: x\n\nbody\n"})
        self.assertWellFormed(raw)
        self.assertIn(b"Content-Transfer-Encoding: base64", raw)

    def test_body_errors(self) -> None:
        """Each rule of RFC 8621 4.6 on bodies gives invalidProperties naming the property."""
        values = {"bodyValues": {"t": {"value": "x"}, "u": {"value": "y"}}}
        blobs = {"b": b"x"}
        cases = [
            ({"bodyStructure": {"partId": "t"}, "textBody": [{"partId": "u"}], **values},
             ["bodyStructure", "textBody"]),
            ({"bodyStructure": {"partId": "t"}, "attachments": [], **values}, ["bodyStructure", "attachments"]),
            ({**text("x"), "bodyValues": {"t": {"value": "x", "isTruncated": True}}}, ["bodyValues/t/isTruncated"]),
            ({**text("x"), "bodyValues": {"t": {"value": "x", "isEncodingProblem": True}}},
             ["bodyValues/t/isEncodingProblem"]),
            ({**text("x"), "bodyValues": {"t": {"value": 3}}}, ["bodyValues/t"]),
            ({**text("x"), "bodyValues": {"t": {"value": "x", "isTruncated": 0}}}, ["bodyValues/t/isTruncated"]),
            ({"textBody": [{"partId": "missing"}], **values}, ["textBody/0/partId"]),
            ({"textBody": [{"partId": "t"}], "htmlBody": [{"partId": "t", "type": "text/html"}], **values},
             ["htmlBody/0/partId"]),
            ({"textBody": [{"partId": "t"}, {"partId": "u"}], **values}, ["textBody"]),
            ({"textBody": [], **values}, ["textBody"]),
            ({"textBody": [{"partId": "t", "type": "text/html"}], **values}, ["textBody/0/type"]),
            ({"htmlBody": [{"partId": "t", "type": "text/plain"}], **values}, ["htmlBody/0/type"]),
            ({"textBody": [{"partId": "t", "blobId": "b"}], **values}, ["textBody/0/partId", "textBody/0/blobId"]),
            ({"textBody": [{}], **values}, ["textBody/0/partId", "textBody/0/blobId"]),
            ({"textBody": [{"partId": "t", "charset": "utf-8"}], **values}, ["textBody/0/charset"]),
            ({"textBody": [{"partId": "t", "size": 1}], **values}, ["textBody/0/size"]),
            ({"textBody": [{"partId": "t", "header:Content-Transfer-Encoding": " base64"}], **values},
             ["textBody/0/header:Content-Transfer-Encoding"]),
            ({"textBody": [{"partId": "t", "header:Content-Type": " text/plain"}], **values},
             ["textBody/0/header:Content-Type"]),
            ({"textBody": [{"partId": "t", "headers": [{"name": "X", "value": "y"}]}], **values},
             ["textBody/0/headers"]),
            ({"textBody": [{"partId": "t", "cid": "a", "header:Content-ID": " <a>"}], **values},
             ["textBody/0/cid", "textBody/0/header:Content-ID"]),
            ({"textBody": [{"partId": "t", "bogus": 1}], **values}, ["textBody/0/bogus"]),
            ({"attachments": [{"blobId": "b", "type": "not a type"}]}, ["attachments/0/type"]),
            ({"attachments": [{"blobId": "b", "type": "image/png; name=x"}]}, ["attachments/0/type"]),
            ({"attachments": [{"blobId": "b", "type": "multipart/mixed", "subParts": []}]}, ["attachments/0/type"]),
            ({"attachments": [{"blobId": "b", "charset": "utf-8"}]}, ["attachments/0/charset"]),
            ({"attachments": [{"blobId": "b", "cid": "<x>"}]}, ["attachments/0/cid"]),
            ({"attachments": [{"blobId": "b", "language": ["not a tag"]}]}, ["attachments/0/language"]),
            ({"attachments": [{"blobId": "b", "disposition": "at tachment"}]}, ["attachments/0/disposition"]),
            ({"attachments": [{"blobId": "b", "name": "two\nlines"}]}, ["attachments/0/name"]),
            ({"attachments": [{"blobId": 7}]}, ["attachments/0/blobId"]),
            ({"attachments": {"blobId": "b"}}, ["attachments"]),
            ({"bodyStructure": {"type": "multipart/mixed", "subParts": []}}, ["bodyStructure/subParts"]),
            ({"bodyStructure": {"type": "multipart/mixed", "partId": "t", "subParts": [{"partId": "u"}]}, **values},
             ["bodyStructure/partId"]),
            ({"bodyStructure": {"partId": "t", "subParts": [{"partId": "u"}], "type": "text/plain"}, **values},
             ["bodyStructure/subParts"]),
            ({"bodyStructure": {"blobId": "b", "type": "image/png", "partId": None, "header:Subject:asText": "x"},
              "subject": "y"}, ["subject", "bodyStructure/header:Subject:asText"]),
            ({"bodyStructure": {"type": "multipart/mixed", "subParts": [
                {"partId": "t"}, {"partId": "t"}]}, **values}, ["bodyStructure/subParts/1/partId"]),
            ({"bodyStructure": {"partId": "t", "type": "image/png"}, **values}, ["bodyStructure/type"]),
            ({"bodyStructure": "text", **values}, ["bodyStructure"]),
            ({"bodyValues": []}, ["bodyValues"]),
        ]
        for email_obj, properties in cases:
            self.assertInvalid(email_obj, *properties, blobs=blobs)

    def test_depth_limit(self) -> None:
        """A bodyStructure nested deeper than PART_DEPTH_MAX is refused, not a crash."""
        part: dict = {"blobId": "b"}
        for _ in range(2000):
            part = {"type": "multipart/mixed", "subParts": [part]}
        error = self.assertRaises(ComposeError, build, {"bodyStructure": part}, {"b": b"x"})
        self.assertEqual(error.type, "invalidProperties")

    def test_structure_depth_within_limit(self) -> None:
        """Nesting up to the limit works."""
        part: dict = {"partId": "t"}
        for _ in range(16):
            part = {"type": "multipart/mixed", "subParts": [part]}
        msg = parse(build({"bodyStructure": part, "bodyValues": {"t": {"value": FRENCH}}}))
        self.assertEqual(text_of(msg.get_body(("plain",))), FRENCH)


class DeterminismTests(WellFormedMixin, SynchronousTestCase):
    """
    The same create builds the same bytes on every replica (DESIGN.md 1).
    """

    EMAIL = {
        "from": [{"name": FRENCH, "email": "a@example.com"}], "subject": EMOJI,
        "textBody": [{"partId": "t"}], "htmlBody": [{"partId": "h"}],
        "bodyValues": {"t": {"value": JAPANESE}, "h": {"value": "<p>hi</p>"}},
        "attachments": [{"blobId": "b", "name": "f.bin"},
                        {"blobId": "b", "type": "image/png", "disposition": "inline", "cid": "i"}],
    }

    def test_same_input_same_bytes(self) -> None:
        """Two calls with the same arguments give identical bytes."""
        self.assertEqual(build(self.EMAIL, {"b": b"blob"}), build(self.EMAIL, {"b": b"blob"}))

    def test_unique_changes_boundaries(self) -> None:
        """Boundaries come from unique: another unique, other boundaries."""
        one = parse(build(self.EMAIL, {"b": b"blob"}, unique="one"))
        two = parse(build(self.EMAIL, {"b": b"blob"}, unique="two"))
        self.assertNotEqual(one.get_boundary(), two.get_boundary())
        self.assertTrue(len(one.get_boundary()) <= 70)

    def test_boundary_collision(self) -> None:
        """
        Text or blobs holding the boundaries the server would pick are
        encoded so they cannot collide; part headers holding them make the
        server skip those counters, prefixes included (RFC 2046 5.1.1).
        """
        boundary = parse(build(self.EMAIL, {"b": b"blob"})).get_boundary()
        prefix = boundary.rsplit(".", 1)[0]
        hostile = "".join(f"--{prefix}.{i:03d}\n--{prefix}.{i:03d}--\n" for i in range(1, 8))
        planted = " ".join(f"--{prefix}.{i:03d}" for i in range(1, 6)) + f" --{prefix}.0061"
        email_obj = {**self.EMAIL, "bodyValues": {"t": {"value": hostile}, "h": {"value": hostile}},
                     "textBody": [{"partId": "t", "header:X-Planted": " " + planted}]}
        raw = build(email_obj, {"b": hostile.encode()})
        self.assertWellFormed(raw)
        msg = parse(raw)
        self.assertEqual(text_of(msg.get_body(("plain",))), hostile)
        self.assertEqual(text_of(msg.get_body(("html",))), hostile)
        self.assertEqual(next(msg.iter_attachments()).get_payload(decode=True), hostile.encode())
        self.assertEqual(msg.get_body(("plain",))["X-Planted"], planted)
        boundaries = re.findall(rb'boundary="([^"]+)"', raw)
        self.assertEqual([b.rsplit(b".", 1)[1] for b in boundaries], [b"008", b"007", b"001"])  # mixed, alternative, related

    def test_message_blob_with_mark(self) -> None:
        """A message/rfc822 blob holding the boundary mark is base64, never planted as is."""
        raw = build({"bodyStructure": {"type": "multipart/mixed", "subParts": [
            {"blobId": "m", "type": "message/rfc822"}]}}, {"m": b"Subject: x\r\n\r\n--=_\r\n"})
        self.assertIn(b"Content-Transfer-Encoding: base64", raw)

    def test_error_to_set_error(self) -> None:
        """ComposeError becomes the SetError of RFC 8620 5.3."""
        error = self.assertRaises(ComposeError, build, {"subject": 1})
        self.assertEqual(error.to_set_error().to_json(), {
            "type": "invalidProperties", "description": error.description, "properties": ["subject"]})


class HostileInputTests(WellFormedMixin, SynchronousTestCase):
    """
    No create object, however malformed, does anything but build a message
    or raise L{ComposeError} (DESIGN.md section 5).
    """

    def test_lone_surrogates(self) -> None:
        """JSON may carry lone surrogates; they are invalid, not a UnicodeEncodeError."""
        self.assertInvalid({"subject": "a\ud800"}, "subject")
        self.assertInvalid({"to": [{"name": "\udfff", "email": "a@b"}]}, "to")
        self.assertInvalid({"header:X-A": " \ud800"}, "header:X-A")
        self.assertInvalid(text("\ud800"), "bodyValues/t")
        self.assertInvalid({"attachments": [{"blobId": "b", "name": "\ud800"}]}, "attachments/0/name",
                           blobs={"b": b""})

    def test_random_creates(self) -> None:
        """Random create objects (seeded) build well-formed messages or raise ComposeError."""
        rng = random.Random(4_6_8621)
        scalars = [None, True, False, 0, -1, 1.5, "", " ", "x", "a@b", "text/plain", "multipart/mixed",
                   "inline", "attachment", "t", "u", "b", "missing", FRENCH, EMOJI, "\ud800", "a\r\nb",
                   "2024-01-01T00:00:00Z", "=?utf-8?q?x?=", "--=_", "x" * 1200]
        keys = ["from", "to", "subject", "sentAt", "messageId", "headers", "header:X-A",
                "header:X-A:asText", "header:X-A:asAddresses:all", "header:To:asGroupedAddresses",
                "header:List-Post:asURLs", "header:Content-Type", "bodyStructure", "textBody",
                "htmlBody", "attachments", "bodyValues", "keywords"]
        part_keys = ["partId", "blobId", "type", "subParts", "name", "disposition", "cid", "charset",
                     "size", "language", "location", "header:X-P", "header:Content-ID:asText", "headers"]

        def value(depth: int):
            roll = rng.random()
            if depth > 3 or roll < 0.5:
                return rng.choice(scalars)
            if roll < 0.7:
                return [value(depth + 1) for _ in range(rng.randrange(3))]
            if roll < 0.85:
                return {"name": value(depth + 1), "email": value(depth + 1)}
            return part(depth + 1)

        def part(depth: int) -> dict:
            return {rng.choice(part_keys): value(depth + 1) for _ in range(rng.randrange(5))}

        outcomes = {"built": 0, "refused": 0}
        for _ in range(3000):
            obj = {rng.choice(keys): value(0) for _ in range(rng.randrange(5))}
            if rng.random() < 0.5:
                obj["bodyValues"] = {"t": {"value": rng.choice(scalars)}, "u": {"value": "u"}}
            try:
                raw = build(obj, {"b": b"blob", "x": b"x"})
            except ComposeError:
                outcomes["refused"] += 1
            else:
                self.assertWellFormed(raw, ascii_head=False)
                parse(raw)
                outcomes["built"] += 1
        self.assertGreater(outcomes["built"], 100)
        self.assertGreater(outcomes["refused"], 100)
