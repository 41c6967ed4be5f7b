# -*- test-case-name: tests.mail.test_parse -*-
"""
Tests for L{stalwart.mail.parse} and L{stalwart.mail.blobids}: raw messages
to the Email properties of RFC 8621 4.1.
"""

import random
import time

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.blobids import part_blob_id, split_part_blob_id
from stalwart.mail.parse import (
    DEFAULT_BODY_PROPERTIES, PREVIEW_CHARS_MAX, body_value, check_properties,
    email_properties, find_part, parse_message, part_content)
from tests.mail import messages

BLOB = "G" + "ab" * 32

ALL_PROPERTIES = [
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo",
    "subject", "sentAt", "headers", "bodyStructure", "bodyValues", "textBody", "htmlBody",
    "attachments", "hasAttachment", "preview", "header:Subject:asText:all", "header:X-Long",
    "header:List-Post:asURLs", "header:Date:asDate", "header:To:asGroupedAddresses:all"]


def ids(parts):
    return [p.part_id for p in parts]


def get(raw, properties, **kwargs):
    return email_properties(parse_message(raw), raw, BLOB, properties, **kwargs)


class BodyStructureTests(SynchronousTestCase):
    """
    bodyStructure, textBody, htmlBody and attachments (RFC 8621 4.1.4).
    """

    def test_rfc_example(self) -> None:
        """
        RFC 8621 4.1.4: the RFC's example tree decomposes exactly as given:
        textBody [A, B, C, D, K], htmlBody [A, E, K], attachments
        [C, F, G, H, J].
        """
        raw = messages.RFC_EXAMPLE
        parsed = parse_message(raw)

        def letters(parts):
            return [part_content(raw, p).decode() for p in parts]
        self.assertEqual(letters(parsed.text_body), list("ABCDK"))
        self.assertEqual(letters(parsed.html_body), list("AEK"))
        self.assertEqual(letters(parsed.attachments), list("CFGHJ"))
        self.assertEqual(ids(parsed.attachments), ["2.1.1.2", "2.1.2.2", "2.2", "2.3", "2.4"])
        self.assertTrue(parsed.has_attachment)

    def test_plain(self) -> None:
        """
        RFC 8621 4.1.4: a single-part message is one leaf, part "1", in both
        textBody and htmlBody; no attachments.
        """
        parsed = parse_message(messages.PLAIN)
        self.assertEqual(parsed.body.part_id, "1")
        self.assertEqual(parsed.body.type, "text/plain")
        self.assertEqual(parsed.body.charset, "utf-8")
        self.assertEqual(ids(parsed.text_body), ["1"])
        self.assertEqual(ids(parsed.html_body), ["1"])
        self.assertEqual(parsed.attachments, ())
        self.assertFalse(parsed.has_attachment)

    def test_alternative(self) -> None:
        """
        RFC 8621 4.1.4: in multipart/alternative textBody takes the plain part
        and htmlBody the HTML part; the container has no partId or blobId and
        carries subParts.
        """
        result = get(messages.ALTERNATIVE, ["bodyStructure", "textBody", "htmlBody"])
        root = result["bodyStructure"]
        self.assertEqual((root["partId"], root["blobId"], root["type"]),
                         (None, None, "multipart/alternative"))
        self.assertEqual([p["type"] for p in root["subParts"]], ["text/plain", "text/html"])
        self.assertEqual([p["partId"] for p in result["textBody"]], ["1"])
        self.assertEqual([p["partId"] for p in result["htmlBody"]], ["2"])
        self.assertEqual(set(result["textBody"][0]), set(DEFAULT_BODY_PROPERTIES))

    def test_related_in_alternative(self) -> None:
        """
        RFC 8621 4.1.4: the image of a multipart/related is an attachment but,
        referenced by C{cid:} from the HTML, does not set hasAttachment.
        """
        parsed = parse_message(messages.RELATED_IN_ALTERNATIVE)
        self.assertEqual(ids(parsed.text_body), ["1"])
        self.assertEqual(ids(parsed.html_body), ["2.1"])
        self.assertEqual(ids(parsed.attachments), ["2.2"])
        self.assertEqual(parsed.attachments[0].cid, "logo@shop.example")
        self.assertEqual(parsed.attachments[0].charset, None)
        self.assertFalse(parsed.has_attachment)

    def test_mixed_attachments(self) -> None:
        """
        RFC 8621 4.1.4: attachments get their RFC 2231 file names, decoded
        sizes, and blobs whose content is the decoded bytes.
        """
        raw = messages.MIXED_ATTACHMENTS
        parsed = parse_message(raw)
        pdf, jpeg = parsed.attachments
        self.assertEqual((pdf.type, pdf.name, pdf.disposition, pdf.size),
                         ("application/pdf", "invoice-117.pdf", "attachment", len(messages.PDF)))
        self.assertEqual(jpeg.name, "Lieferung vor der Tür.jpg")
        self.assertEqual(part_content(raw, pdf), messages.PDF)
        self.assertEqual(part_content(raw, jpeg), messages.JPEG)
        self.assertTrue(parsed.has_attachment)
        self.assertEqual(get(raw, ["attachments"])["attachments"][0]["blobId"], BLOB + "_2")

    def test_forwarded(self) -> None:
        """
        RFC 8621 4.1.4: bodyStructure does not recurse into message/rfc822;
        the attached message is one attachment whose blob parses on its own
        (as Email/parse would), with its own attachments.
        """
        raw = messages.FORWARDED
        parsed = parse_message(raw)
        self.assertEqual(ids(parsed.attachments), ["2"])
        attached = parsed.attachments[0]
        self.assertEqual((attached.type, attached.sub_parts), ("message/rfc822", ()))
        inner = part_content(raw, attached)
        self.assertEqual(attached.size, len(inner))
        self.assertEqual(inner.rstrip(b"\r\n"), messages.MIXED_ATTACHMENTS.rstrip(b"\r\n"))
        self.assertEqual([p.name for p in parse_message(inner).attachments],
                         ["invoice-117.pdf", "Lieferung vor der Tür.jpg"])

    def test_inline_text_attachment(self) -> None:
        """
        RFC 8621 4.1.4: a named text part after the first is an attachment,
        but with C{Content-Disposition: inline} it does not set hasAttachment.
        """
        parsed = parse_message(messages.INLINE_TEXT_ATTACHMENT)
        self.assertEqual(ids(parsed.attachments), ["2"])
        self.assertEqual(parsed.attachments[0].disposition, "inline")
        self.assertFalse(parsed.has_attachment)

    def test_calendar(self) -> None:
        """
        RFC 8621 4.1.4: a text/calendar alternative is neither text nor HTML
        body: it is an attachment, as is the .ics file.
        """
        parsed = parse_message(messages.CALENDAR)
        self.assertEqual(ids(parsed.text_body), ["1.1"])
        self.assertEqual(ids(parsed.html_body), ["1.2"])
        self.assertEqual([p.type for p in parsed.attachments], ["text/calendar", "application/ics"])

    def test_digest_default_type(self) -> None:
        """
        RFC 8621 4.1.4 type: parts without Content-Type in multipart/digest
        are message/rfc822.
        """
        parsed = parse_message(messages.DIGEST)
        self.assertEqual([p.type for p in parsed.body.sub_parts], ["message/rfc822"] * 2)
        self.assertEqual([p.charset for p in parsed.body.sub_parts], [None, None])

    def test_no_content_type(self) -> None:
        """
        RFC 8621 4.1.4 type and charset: a part without Content-Type is
        text/plain in us-ascii.
        """
        first, second = parse_message(messages.NO_CONTENT_TYPE_PART).body.sub_parts
        self.assertEqual((first.type, first.charset, first.headers), ("text/plain", "us-ascii", ()))
        self.assertEqual((second.disposition, second.name), ("attachment", "notes"))

    def test_part_headers_and_header_forms(self) -> None:
        """
        RFC 8621 4.1.4: body parts give their header fields raw and in
        requested forms, like the Email.
        """
        result = get(messages.MIXED_ATTACHMENTS, ["attachments"],
                     body_properties=["partId", "headers", "header:Content-Type",
                                      "header:Content-Disposition:asText"])
        pdf = result["attachments"][0]
        self.assertEqual(pdf["headers"][0], {"name": "Content-Type",
                                             "value": ' application/pdf; name="invoice-117.pdf"'})
        self.assertEqual(pdf["header:Content-Type"], ' application/pdf; name="invoice-117.pdf"')
        self.assertEqual(pdf["header:Content-Disposition:asText"],
                         'attachment; filename="invoice-117.pdf"')


class MalformedMessageTests(SynchronousTestCase):
    """
    Broken mail still gets a structure and readable text (RFC 8621 4.1.4:
    best effort, U+FFFD for what cannot be decoded).
    """

    def test_missing_closing_boundary(self) -> None:
        """
        RFC 8621 4.1.4: without the closing delimiter the last part runs to
        the end of the message.
        """
        raw = messages.MISSING_CLOSING_BOUNDARY
        parsed = parse_message(raw)
        self.assertEqual(ids(parsed.attachments), ["2"])
        self.assertEqual(part_content(raw, parsed.attachments[0]), b"0123456789\r\n")

    def test_wrong_boundary(self) -> None:
        """
        RFC 8621 4.1.4: when the declared boundary never occurs, the
        delimiter line that is there is used.
        """
        raw = messages.WRONG_BOUNDARY
        parsed = parse_message(raw)
        self.assertEqual([p.type for p in parsed.body.sub_parts], ["text/plain", "text/html"])
        self.assertEqual(body_value(raw, parsed.body.sub_parts[0])["value"], "still readable")

    def test_no_delimiter(self) -> None:
        """
        RFC 8621 4.1.4: a multipart body without any delimiter is kept as one
        text part, so its text is not lost.
        """
        raw = messages.NO_DELIMITER
        parsed = parse_message(raw)
        self.assertEqual(ids(parsed.text_body), ["1"])
        self.assertEqual(parsed.preview, "Just text, no parts.")

    def test_unknown_charset(self) -> None:
        """
        RFC 8621 4.1.4 isEncodingProblem: an unknown charset is a problem and
        the bytes are shown as UTF-8; an encoded word in it stays encoded
        (4.1.2.2).
        """
        raw = messages.UNKNOWN_CHARSET
        parsed = parse_message(raw)
        self.assertEqual(body_value(raw, parsed.body),
                         {"value": "nuqneH\n", "isEncodingProblem": True, "isTruncated": False})
        self.assertEqual(parsed.subject(), "=?x-klingon?Q?Qapla=27?=")

    def test_garbage_transfer_encodings(self) -> None:
        """
        RFC 8621 4.1.4: bad quoted-printable escapes stay as they are; base64
        garbage is skipped and flagged; an unknown transfer encoding is
        treated as none and flagged.
        """
        raw = messages.GARBAGE_ENCODINGS
        qp, b64, unknown = (body_value(raw, p) for p in parse_message(raw).body.sub_parts)
        self.assertEqual(qp["value"], "broken =ZZ escape and soft break and é")
        self.assertEqual((b64["value"], b64["isEncodingProblem"]), ("Hello world", True))
        self.assertEqual((unknown["value"], unknown["isEncodingProblem"]), ("as is", True))

    def test_raw_8bit_header(self) -> None:
        """
        RFC 8621 4.1.2.1: octets of a header that are not UTF-8 become U+FFFD.
        """
        parsed = parse_message(messages.RAW_8BIT_HEADER)
        self.assertEqual(parsed.header_values("subject"), [" Caf\ufffd cr\ufffdme"])
        self.assertEqual(parsed.subject(), "Caf\ufffd cr\ufffdme")

    def test_bare_lf(self) -> None:
        """
        RFC 8621 4.1.4: bare LF line endings are read like CRLF.
        """
        raw = messages.BARE_LF
        parsed = parse_message(raw)
        self.assertEqual(parsed.subject(), "written by a Unix tool")
        self.assertEqual(ids(parsed.text_body), ["1"])
        self.assertEqual(body_value(raw, parsed.text_body[0])["value"], "line one\nline two")

    def test_long_header(self) -> None:
        """
        RFC 8621 4.1.2: 100 KB header fields and 4000 addresses parse quickly
        and completely.
        """
        raw = messages.LONG_HEADER
        started = time.perf_counter()
        parsed = parse_message(raw)
        result = email_properties(parsed, raw, BLOB, ["to", "subject", "header:X-Long"])
        self.assertLess(time.perf_counter() - started, 5)
        self.assertEqual(len(result["to"]), 4000)
        self.assertEqual(len(result["header:X-Long"]), 102401)
        self.assertEqual(parsed.preview, "body")

    def test_no_headers_and_empty(self) -> None:
        """
        RFC 8621 4.1: a message of nothing, or of body text only, is a
        text/plain part with no header fields.
        """
        for raw in [b"", b"\r\n", b"just a line without colon\r\nmore"]:
            parsed = parse_message(raw)
            self.assertEqual((parsed.headers, parsed.body.type), ((), "text/plain"))
        self.assertEqual(parse_message(b"x").preview, "x")


class CharsetTests(SynchronousTestCase):
    """
    Charsets of bodies and encoded-word subjects (RFC 8621 4.1.2.2, 4.1.4).
    """

    def test_bodies_and_subjects(self) -> None:
        """
        RFC 8621 4.1.4 bodyValues: each body is decoded from its charset and
        transfer encoding, CRLF as LF; its subject from encoded words.
        """
        cases = [
            (messages.LATIN1, "Réunion de l'équipe", "La réunion aura lieu à 14 h, salle Étoile.\n"),
            (messages.WINDOWS1252, "\u201cSmart\u201d quotes cost €10",
             "\u201cSmart\u201d quotes cost €10 \u2013 that\u2019s all.\n"),
            (messages.SHIFT_JIS, "会議の件", "明日の会議は十時からです。\n"),
            (messages.KOI8R, "Привет", "Привет, Ольга!\n"),
            (messages.UTF8_SPLIT, "Café au lait and more", "Ünïcödé body, straight UTF-8.\n"),
        ]
        for raw, subject, text in cases:
            parsed = parse_message(raw)
            self.assertEqual(parsed.subject(), subject)
            self.assertEqual(body_value(raw, parsed.text_body[0]),
                             {"value": text, "isEncodingProblem": False, "isTruncated": False})

    def test_encoded_names(self) -> None:
        """
        RFC 8621 4.1.2.3: display names in encoded words are decoded.
        """
        self.assertEqual(get(messages.LATIN1, ["from"])["from"],
                         [{"name": "François Müller", "email": "francois@example.fr"}])
        self.assertEqual(get(messages.SHIFT_JIS, ["from"])["from"][0]["name"], "田中")
        self.assertEqual(get(messages.KOI8R, ["from"])["from"][0]["name"], "Иван Петров")


class PropertiesTests(SynchronousTestCase):
    """
    L{email_properties}: the header and body properties of an Email
    (RFC 8621 4.1.2 to 4.1.4).
    """

    def test_convenience_properties(self) -> None:
        """
        RFC 8621 4.1.3: messageId, inReplyTo, references, from, to, cc
        (groups flattened), subject, sentAt and absent fields as null.
        """
        result = get(messages.PLAIN, ["messageId", "inReplyTo", "references", "from", "to",
                                      "cc", "bcc", "sender", "replyTo", "subject", "sentAt"])
        self.assertEqual(result, {
            "messageId": ["20141030131200.GA1234@example.org"],
            "inReplyTo": ["parent@example.com"],
            "references": ["root@example.com", "parent@example.com"],
            "from": [{"name": "Alice Liddell", "email": "alice@example.org"}],
            "to": [{"name": "Bob Smith", "email": "bob@example.com"},
                   {"name": "Carol Jones", "email": "carol@example.com"}],
            "cc": [{"name": None, "email": "dave@example.net"},
                   {"name": "Renée", "email": "renee@example.net"}],
            "bcc": None, "sender": None, "replyTo": None,
            "subject": "Lunch on Thursday?",
            "sentAt": "2014-10-30T06:12:00-07:00",
        })

    def test_header_properties(self) -> None:
        """
        RFC 8621 4.1.3: header:{name}[:form][:all], matched case-insensitively,
        last instance or all, null or [] when absent.
        """
        result = get(messages.PLAIN, [
            "header:list-post:asURLs", "header:List-Unsubscribe:asURLs", "header:Received:all",
            "header:Cc:asGroupedAddresses", "header:X-Missing", "header:X-Missing:all",
            "header:References"])
        self.assertEqual(result["header:list-post:asURLs"], ["mailto:lunch@lists.example.org"])
        self.assertEqual(result["header:List-Unsubscribe:asURLs"],
                         ["https://lists.example.org/unsub?u=1",
                          "mailto:lunch-leave@lists.example.org"])
        self.assertEqual(len(result["header:Received:all"]), 1)
        self.assertEqual(result["header:Cc:asGroupedAddresses"][0]["name"], "Friends")
        self.assertIsNone(result["header:X-Missing"])
        self.assertEqual(result["header:X-Missing:all"], [])
        self.assertEqual(result["header:References"], " <root@example.com>\r\n <parent@example.com>")

    def test_headers_in_order(self) -> None:
        """
        RFC 8621 4.1.3 headers: every field, in order, with its capitalisation
        and Raw value.
        """
        headers = get(messages.PLAIN, ["headers"])["headers"]
        self.assertEqual([h["name"] for h in headers][:4], ["Return-Path", "Received", "From", "To"])
        self.assertEqual(headers[2]["value"], " Alice Liddell <alice@example.org>")

    def test_forbidden_and_malformed(self) -> None:
        """
        RFC 8621 4.1.2 and 5.1: a forbidden form (header:From:asDate), a
        malformed header property and unknown properties raise ValueError
        for the caller's invalidArguments.
        """
        for properties, body_properties in [
                (["header:From:asDate"], None), (["header:From:all:asRaw"], None),
                (["header:Subject:asAddresses"], None), (["fooBar"], None),
                (["textBody"], ["partId", "nope"]), (["textBody"], ["header:Date:asText"])]:
            self.assertRaises(ValueError, get, messages.PLAIN, properties,
                              body_properties=body_properties)
            self.assertRaises(ValueError, check_properties, properties, body_properties)

    def test_metadata_left_to_caller(self) -> None:
        """
        RFC 8621 4.1.1: metadata is not derived from the message; those names
        are accepted and left out.
        """
        self.assertEqual(get(messages.PLAIN, ["id", "blobId", "threadId", "mailboxIds",
                                              "keywords", "size", "receivedAt"]), {})

    def test_body_values(self) -> None:
        """
        RFC 8621 5.1: fetchTextBodyValues, fetchHTMLBodyValues and
        fetchAllBodyValues select text/* parts; nothing by default.
        """
        raw = messages.CALENDAR
        self.assertEqual(get(raw, ["bodyValues"])["bodyValues"], {})
        self.assertEqual(set(get(raw, ["bodyValues"], fetch_text_body_values=True)["bodyValues"]),
                         {"1.1"})
        self.assertEqual(set(get(raw, ["bodyValues"], fetch_html_body_values=True)["bodyValues"]),
                         {"1.2"})
        self.assertEqual(set(get(raw, ["bodyValues"], fetch_all_body_values=True)["bodyValues"]),
                         {"1.1", "1.2", "1.3"})

    def test_truncation(self) -> None:
        """
        RFC 8621 5.1 maxBodyValueBytes: the value is cut to at most that many
        UTF-8 octets, never mid-codepoint, and HTML never inside a tag.
        """
        raw = messages.UTF8_SPLIT
        value = body_value(raw, parse_message(raw).body, max_bytes=1)
        self.assertEqual(value, {"value": "", "isEncodingProblem": False, "isTruncated": True})
        self.assertEqual(body_value(raw, parse_message(raw).body, max_bytes=4)["value"], "Ün")
        html = body_value(messages.ALTERNATIVE, parse_message(messages.ALTERNATIVE).html_body[0],
                          max_bytes=14)
        self.assertEqual(html["value"], "<html><body>")
        self.assertTrue(html["isTruncated"])
        whole = body_value(raw, parse_message(raw).body, max_bytes=1000)
        self.assertFalse(whole["isTruncated"])

    def test_preview(self) -> None:
        """
        RFC 8621 4.1.4 preview: text of textBody, white space collapsed, HTML
        converted, never more than 256 characters.
        """
        self.assertEqual(parse_message(messages.PLAIN).preview,
                         "Hi Bob, Are we still on for lunch on Thursday? "
                         "The café on the corner opens at noon. Alice")
        html_only = (b"Content-Type: text/html\r\n\r\n<p>Hello&nbsp;<b>there</b></p>"
                     b"<script>x()</script>")
        self.assertEqual(parse_message(html_only).preview, "Hello there")
        long = b"Subject: x\r\n\r\n" + b"word " * 1000
        self.assertEqual(len(parse_message(long).preview), PREVIEW_CHARS_MAX)

    def test_search_fields(self) -> None:
        """
        The text handed to full-text search: subject, address names and
        emails, body text with HTML converted.
        """
        fields = parse_message(messages.ALTERNATIVE).search_fields()
        self.assertEqual(fields["subject"], "Dinner on Thursday?")
        self.assertEqual(fields["from"], "Joe Bloggs joe@example.com")
        self.assertEqual(fields["to"], "partytime@lists.example.com")
        self.assertEqual(fields["cc"], "")
        self.assertIn("dinner is at 7", fields["body"])

    def test_threading_helpers(self) -> None:
        """
        RFC 8621 4.1.3: the ids threading needs, [] when absent.
        """
        parsed = parse_message(messages.PLAIN)
        self.assertEqual(parsed.message_ids(), ["20141030131200.GA1234@example.org"])
        self.assertEqual(parsed.in_reply_to(), ["parent@example.com"])
        self.assertEqual(parsed.references(), ["root@example.com", "parent@example.com"])
        self.assertEqual(parse_message(b"").references(), [])
        self.assertIsNone(parse_message(b"").sent_at())


class BlobIdTests(SynchronousTestCase):
    """
    Part blob ids (RFC 8621 4.1.4 blobId).
    """

    def test_round_trip(self) -> None:
        """
        RFC 8620 1.2, RFC 8621 4.1.4: a part blob id is a valid Id and splits
        back into the message blob id and part id, also when nested.
        """
        blob_id = part_blob_id(BLOB, "2.1.3")
        self.assertEqual(blob_id, BLOB + "_2-1-3")
        self.assertEqual(split_part_blob_id(blob_id), (BLOB, "2.1.3"))
        nested = part_blob_id(blob_id, "1")
        self.assertEqual(split_part_blob_id(nested), (blob_id, "1"))

    def test_not_part_ids(self) -> None:
        """
        Ids that are not part blob ids split to None.
        """
        for value in [BLOB, "_1", BLOB + "_", BLOB + "_1.2", BLOB + "_a", BLOB + "_1--2", 7,
                      "x y_1"]:
            self.assertIsNone(split_part_blob_id(value), value)

    def test_find_part(self) -> None:
        """
        A download finds the leaf by part id; containers and unknown ids are
        not found.
        """
        parsed = parse_message(messages.RFC_EXAMPLE)
        self.assertEqual(find_part(parsed, "2.3").type, "application/x-excel")
        self.assertIsNone(find_part(parsed, "2"))
        self.assertIsNone(find_part(parsed, "9"))


def mutate(rng: random.Random, raw: bytes) -> bytes:
    """Damage a message in the ways mail gets damaged."""
    data = bytearray(raw)
    for _ in range(rng.randrange(1, 8)):
        choice = rng.randrange(7)
        at = rng.randrange(len(data) + 1)
        if choice == 0 and data:                            # flip bytes
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif choice == 1:                                   # cut
            del data[at:at + rng.randrange(200)]
        elif choice == 2:                                   # truncate
            del data[at:]
        elif choice == 3:                                   # insert markup
            data[at:at] = rng.choice([b"\r\n--", b"--", b"\r\n\r\n", b"=?utf-8?b?", b"?=",
                                      b"Content-Type: multipart/mixed; boundary=x\r\n",
                                      b"charset=\"zlib\"", b"\x00", b"\xff\xfe", b"=\r\n",
                                      b"\n", b"\r", b";", b"<", b"\"", b"("])
        elif choice == 4:                                   # duplicate a slice
            end = min(len(data), at + rng.randrange(500))
            data[at:at] = data[at:end]
        elif choice == 5:                                   # bare LF everywhere
            data = bytearray(bytes(data).replace(b"\r\n", b"\n"))
        else:                                               # random bytes
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(50)))
    return bytes(data)


class RobustnessTests(SynchronousTestCase):
    """
    No bytes make the parser or any property raise (RFC 8621 4.1.4: best
    effort on malformed content).
    """

    def exercise(self, raw: bytes) -> None:
        parsed = parse_message(raw)
        result = email_properties(parsed, raw, BLOB, ALL_PROPERTIES,
                                  body_properties=list(DEFAULT_BODY_PROPERTIES) + [
                                      "headers", "subParts", "header:Content-Type:asText"],
                                  fetch_all_body_values=True, max_body_value_bytes=100)
        self.assertLessEqual(len(result["preview"]), PREVIEW_CHARS_MAX)
        seen = set()

        def walk(part):
            self.assertLessEqual(part.start, part.end)
            if part.part_id is not None:
                self.assertNotIn(part.part_id, seen)
                seen.add(part.part_id)
                self.assertEqual(len(part_content(raw, part)), part.size)
                body_value(raw, part, 7)
                self.assertEqual(split_part_blob_id(part_blob_id(BLOB, part.part_id)),
                                 (BLOB, part.part_id))
            for sub in part.sub_parts:
                walk(sub)
        walk(parsed.body)
        parsed.search_fields()
        parsed.subject(), parsed.sent_at(), parsed.message_ids()

    def test_every_sample(self) -> None:
        """
        RFC 8621 4.1: every sample message gives every property.
        """
        for raw in messages.ALL.values():
            self.exercise(raw)

    def test_mutated_messages(self) -> None:
        """
        RFC 8621 4.1.4: 400 damaged copies of the samples (seeded) parse
        without an exception.
        """
        rng = random.Random(8621)
        samples = [raw for name, raw in sorted(messages.ALL.items()) if name != "LONG_HEADER"]
        for i in range(400):
            raw = mutate(rng, rng.choice(samples))
            try:
                self.exercise(raw)
            except Exception:
                self.fail("message %d of seed 8621 failed: %r" % (i, raw[:300]))

    def test_random_bytes(self) -> None:
        """
        RFC 8621 4.1.4: 200 strings of random bytes and MIME fragments parse
        without an exception.
        """
        rng = random.Random(5322)
        fragments = [b"Content-Type: multipart/mixed; boundary=b\r\n", b"\r\n", b"--b\r\n",
                     b"--b--", b"Content-Transfer-Encoding: base64\r\n", b"a: b\r\n", b"\n",
                     b"Content-Type: text/html; charset=shift_jis\r\n", b"<p>", b"=?", b"\xff"]
        for _ in range(200):
            raw = b"".join(rng.choice(fragments) if rng.random() < 0.7
                           else bytes([rng.randrange(256)]) for _ in range(rng.randrange(80)))
            self.exercise(raw)

    def test_deep_nesting_and_many_parts(self) -> None:
        """
        RFC 8621 4.1.4: deeply nested multiparts and thousands of parts are
        cut at the limits, with part blob ids still valid Ids.
        """
        deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                        for i in range(200)) + b"\r\ntext"
        parsed = parse_message(deep)
        self.exercise(deep)
        many = (b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
                + b"--m\r\n\r\nx\r\n" * 5000 + b"--m--")
        parsed = parse_message(many)
        self.assertEqual(len(parsed.body.sub_parts), 1000)
        self.exercise(many)
