# -*- test-case-name: tests.mail.test_headers -*-
"""
Tests for L{stalwart.mail.headers}: the parsed forms of header field values
(RFC 8621 4.1.2) and C{header:} properties (4.1.3).
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.headers import (
    as_addresses, as_date, as_grouped_addresses, as_message_ids, as_raw, as_text, as_urls,
    decode_bytes, header_form_allowed, parse_header_property)

# The address-list example of RFC 8621 4.1.2.3 and 4.1.2.4, as folded there.
RFC_ADDRESS_LIST = ('"  James Smythe" <james@example.com>, Friends:\r\n'
                    '  jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n'
                    '  <john@example.com>;')


class RawAndTextTests(SynchronousTestCase):
    """
    The Raw (4.1.2.1) and Text (4.1.2.2) forms.
    """

    def test_raw_is_unchanged_but_nul(self) -> None:
        """
        RFC 8621 4.1.2.1: Raw is the value as it is, leading space and
        folding included, with NUL dropped.
        """
        self.assertEqual(as_raw(" a\r\n b\x00c"), " a\r\n bc")

    def test_text_unfolds_and_trims(self) -> None:
        """
        RFC 8621 4.1.2.2 steps 1-3: folding white space is unfolded and the
        leading space removed.
        """
        self.assertEqual(as_text(" Lunch\r\n on\r\n\tThursday?\r\n"), "Lunch on\tThursday?")

    def test_encoded_words_split_across_lines(self) -> None:
        """
        RFC 8621 4.1.2.2 step 4: adjacent encoded words separated only by
        folding white space join without the space (RFC 2047 6.2), even when
        a UTF-8 character is split between them.
        """
        self.assertEqual(as_text(" =?UTF-8?Q?Caf=C3?=\r\n =?UTF-8?Q?=A9_au_lait?= and more"),
                         "Café au lait and more")
        self.assertEqual(as_text("=?utf-8?B?SGVsbG8s?=\r\n =?utf-8?B?IHdvcmxk?="), "Hello, world")

    def test_space_between_encoded_and_plain_kept(self) -> None:
        """
        RFC 2047 6.2: white space between an encoded word and ordinary text
        is kept.
        """
        self.assertEqual(as_text("Re: =?iso-8859-1?q?caf=E9?= ok"), "Re: café ok")

    def test_encoded_words_in_many_charsets(self) -> None:
        """
        RFC 8621 4.1.2.2 step 4: encoded words in any charset Python knows are
        decoded, B and Q alike, with an RFC 2231 language suffix ignored.
        """
        cases = {
            "=?ISO-2022-JP?B?GyRCRURDZhsoQg==?=": "田中",
            "=?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=": "Привет",
            "=?windows-1252?Q?=80_5?=": "€ 5",
            "=?gb2312?B?1tDOxA==?=": "中文",
            "=?utf-8*en?Q?hi?=": "hi",
            "=?UTF-16LE?B?aABpAA==?=": "hi",
        }
        for encoded, text in cases.items():
            self.assertEqual(as_text(encoded), text, encoded)

    def test_misplaced_encoded_words_not_decoded(self) -> None:
        """
        RFC 8621 4.1.2.2 step 4: text that looks like an encoded word but
        violates the placement rules (inside a word) is left alone; so is an
        encoded word with an unknown charset.
        """
        self.assertEqual(as_text("foo=?utf-8?q?bar?="), "foo=?utf-8?q?bar?=")
        self.assertEqual(as_text("=?x-klingon?q?Qapla?="), "=?x-klingon?q?Qapla?=")

    def test_controls_dropped_and_nfc(self) -> None:
        """
        RFC 8621 4.1.2.2 steps 4 and 5: control characters encoded in an
        encoded word are dropped, and the result is in NFC.
        """
        self.assertEqual(as_text("=?utf-8?q?a=00=07b?="), "ab")
        self.assertEqual(as_text("=?utf-8?q?e=CC=81?="), "\u00e9")

    def test_bad_base64_replaced(self) -> None:
        """
        RFC 8621 4.1.2.2: a failed decoding inserts U+FFFD and continues.
        """
        self.assertEqual(as_text("=?utf-8?b?/w==?= x"), "\ufffd x")


class AddressTests(SynchronousTestCase):
    """
    The Addresses (4.1.2.3) and GroupedAddresses (4.1.2.4) forms.
    """

    def test_rfc_example_addresses(self) -> None:
        """
        RFC 8621 4.1.2.3: the RFC's own example, groups flattened.
        """
        self.assertEqual(as_addresses(RFC_ADDRESS_LIST), [
            {"name": "James Smythe", "email": "james@example.com"},
            {"name": None, "email": "jane@example.com"},
            {"name": "John Smîth", "email": "john@example.com"},
        ])

    def test_rfc_example_grouped(self) -> None:
        """
        RFC 8621 4.1.2.4: the RFC's own example, with the ungrouped mailbox in
        a group named null.
        """
        self.assertEqual(as_grouped_addresses(RFC_ADDRESS_LIST), [
            {"name": None, "addresses": [{"name": "James Smythe", "email": "james@example.com"}]},
            {"name": "Friends", "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"}]},
        ])

    def test_groups_and_ungrouped_runs(self) -> None:
        """
        RFC 8621 4.1.2.4: consecutive ungrouped mailboxes share one null
        group; an empty group keeps its name with no addresses.
        """
        self.assertEqual(as_grouped_addresses("a@x, b@x, undisclosed-recipients:;, c@x"), [
            {"name": None, "addresses": [{"name": None, "email": "a@x"},
                                         {"name": None, "email": "b@x"}]},
            {"name": "undisclosed-recipients", "addresses": []},
            {"name": None, "addresses": [{"name": None, "email": "c@x"}]},
        ])

    def test_comment_as_name(self) -> None:
        """
        RFC 8621 4.1.2.3: without a display name, a comment after the
        addr-spec is the name.
        """
        self.assertEqual(as_addresses(" carol@example.com (Carol Jones)"),
                         [{"name": "Carol Jones", "email": "carol@example.com"}])

    def test_quoted_pairs_and_unfolding(self) -> None:
        """
        RFC 8621 4.1.2.3: quoted-pairs are decoded, white space unfolded and
        trimmed, inner runs kept as one space.
        """
        self.assertEqual(as_addresses('"Smith, \\"Bob\\"\r\n  Jr" <bob@example.com>'),
                         [{"name": 'Smith, "Bob" Jr', "email": "bob@example.com"}])

    def test_encoded_word_not_decoded_in_quoted_string(self) -> None:
        """
        RFC 2047 5 (3), RFC 8621 4.1.2.2: an encoded word inside a quoted
        string is misplaced and stays as it is.
        """
        self.assertEqual(as_addresses('"=?utf-8?q?x?=" <a@b>')[0]["name"], "=?utf-8?q?x?=")

    def test_best_effort(self) -> None:
        """
        RFC 8621 4.1.2.3: broken syntax still gives what can be found; an
        email need not contain an @.
        """
        self.assertEqual(as_addresses("Joe <joe@example.com"),
                         [{"name": "Joe", "email": "joe@example.com"}])
        self.assertEqual(as_addresses("just-a-name"), [{"name": None, "email": "just-a-name"}])
        self.assertEqual(as_addresses(""), [])
        self.assertEqual(as_addresses(",,;:<>"), [])


class MessageIdDateUrlTests(SynchronousTestCase):
    """
    The MessageIds (4.1.2.5), Date (4.1.2.6) and URLs (4.1.2.7) forms.
    """

    def test_message_ids(self) -> None:
        """
        RFC 8621 4.1.2.5: CFWS and angle brackets are removed; a value with no
        msg-id is null.
        """
        self.assertEqual(as_message_ids(" <a@b> (comment)\r\n <c@d>"), ["a@b", "c@d"])
        self.assertEqual(as_message_ids("<1234@local.machine.example>"),
                         ["1234@local.machine.example"])
        self.assertIsNone(as_message_ids(" not an id "))
        self.assertIsNone(as_message_ids(""))

    def test_date_keeps_offset(self) -> None:
        """
        RFC 8621 4.1.2.6: the date-time becomes RFC 3339 with the original
        offset; comments and obsolete zones are understood.
        """
        self.assertEqual(as_date(" Thu, 30 Oct 2014 06:12:00 -0700 (PDT)"),
                         "2014-10-30T06:12:00-07:00")
        self.assertEqual(as_date("Sat, 8 Nov 2014 12:00:00 +0530"), "2014-11-08T12:00:00+05:30")
        self.assertEqual(as_date("Thu, 13 Feb 1969 23:32 EST"), "1969-02-13T23:32:00-05:00")
        self.assertEqual(as_date("13 Oct 2013 14:12:00 +0000"), "2013-10-13T14:12:00Z")
        self.assertEqual(as_date("13 Oct 13 14:12:00 -0000"), "2013-10-13T14:12:00Z")

    def test_bad_date_is_null(self) -> None:
        """
        RFC 8621 4.1.2.6: a value that does not parse is null.
        """
        for value in ["", "yesterday", "Thu, 31 Feb 2014 06:12:00 +0000",
                      "Thu, 30 Oct 2014 25:12:00 +0000", "30 Oct 99999 06:12 +0000"]:
            self.assertIsNone(as_date(value), value)

    def test_urls(self) -> None:
        """
        RFC 8621 4.1.2.7: the URLs of an RFC 2369 field, without brackets,
        comments or folding white space; null when there is none.
        """
        self.assertEqual(as_urls(" <mailto:list@host.com?subject=help> (List Instructions)"),
                         ["mailto:list@host.com?subject=help"])
        self.assertEqual(as_urls(" <https://x.example/u?a=(1)>,\r\n  <mailto:u@x.example>"),
                         ["https://x.example/u?a=(1)", "mailto:u@x.example"])
        self.assertIsNone(as_urls(" NO (posting not allowed on this list)"))


class HeaderPropertyTests(SynchronousTestCase):
    """
    C{header:} property names (4.1.3) and the forms each field allows (4.1.2).
    """

    def test_parse(self) -> None:
        """
        RFC 8621 4.1.3: name, optional form, optional C{:all}, in that order.
        """
        self.assertEqual(parse_header_property("header:From:asAddresses:all"),
                         ("From", "asAddresses", True))
        self.assertEqual(parse_header_property("header:subject"), ("subject", "asRaw", False))
        self.assertEqual(parse_header_property("header:X-Spam:all"), ("X-Spam", "asRaw", True))

    def test_malformed(self) -> None:
        """
        RFC 8621 4.1.3: wrong order, unknown forms, empty or non-printable
        names and other prefixes are rejected.
        """
        for name in ["header:From:all:asAddresses", "header:From:asFoo", "header::asRaw",
                     "header:Fr om", "header:Fröm", "from", "header:", "header:From:all:all",
                     "header:From:asRaw:asText", "headers"]:
            self.assertIsNone(parse_header_property(name), name)

    def test_allowed_forms(self) -> None:
        """
        RFC 8621 4.1.2: the table of forms per field; every form for fields
        RFC 5322 and RFC 2369 do not define; Raw for all.
        """
        allowed = [("From", "asAddresses"), ("resent-reply-to", "asGroupedAddresses"),
                   ("Subject", "asText"), ("List-Id", "asText"), ("Date", "asDate"),
                   ("References", "asMessageIds"), ("List-Post", "asURLs"),
                   ("X-Anything", "asDate"), ("X-Anything", "asAddresses"),
                   ("Received", "asRaw")]
        forbidden = [("From", "asDate"), ("Subject", "asAddresses"), ("Received", "asText"),
                     ("Date", "asText"), ("To", "asURLs"), ("List-Post", "asText"),
                     ("Message-ID", "asText"), ("X-Anything", "asFoo")]
        for field, form in allowed:
            self.assertTrue(header_form_allowed(field, form), (field, form))
        for field, form in forbidden:
            self.assertFalse(header_form_allowed(field, form), (field, form))


class CharsetTests(SynchronousTestCase):
    """
    L{decode_bytes}, the charset decoding under bodyValues (4.1.4).
    """

    def test_known_and_unknown(self) -> None:
        """
        RFC 8621 4.1.4 isEncodingProblem: an unknown charset or bad bytes is a
        problem; mislabelled US-ASCII that is UTF-8 is read as UTF-8.
        """
        self.assertEqual(decode_bytes("é".encode(), "us-ascii"), ("é", False))
        self.assertEqual(decode_bytes(b"caf\xe9", "iso-8859-1"), ("café", False))
        self.assertEqual(decode_bytes(b"x", "x-klingon"), ("x", True))
        self.assertEqual(decode_bytes(b"\xff", "utf-8"), ("\ufffd", True))
        for not_a_charset in ["base64", "zlib", "rot13", "idna", "unicode_escape", "x" * 100,
                              "utf-8\x00", ""]:
            self.assertIsInstance(decode_bytes(b"\\N{x} \xff", not_a_charset)[0], str)


class RandomInputTests(SynchronousTestCase):
    """
    Every form is total on arbitrary input.
    """

    def test_no_exceptions(self) -> None:
        """
        RFC 8621 4.1.2: parsing is best effort; no value makes any form
        raise.
        """
        rng = random.Random(8621)
        alphabet = '<>()",;:@\\=?_ \t\r\n aZ09\x00é=?utf-8?q?=?b?'
        seeds = [RFC_ADDRESS_LIST, "Thu, 30 Oct 2014 06:12:00 -0700", "<a@b> <c@d>"]
        for _ in range(500):
            if rng.random() < 0.5:
                value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
            else:
                value = list(rng.choice(seeds))
                for _ in range(rng.randrange(1, 6)):
                    value[rng.randrange(len(value))] = rng.choice(alphabet)
                value = "".join(value)
            for form in (as_raw, as_text, as_addresses, as_grouped_addresses, as_message_ids,
                         as_date, as_urls):
                form(value)
            parse_header_property("header:" + value)
