"""
Realistic raw messages for the tests of L{stalwart.mail}, written for this
project.  Most use CRLF line endings as on the wire; L{BARE_LF} does not.
Non-ASCII content is built from text with the named codec, so the intended
characters are visible here.
"""

import base64
import quopri


def crlf(text: str, charset: str = "utf-8") -> bytes:
    """C{text} with LF line endings turned into CRLF, as bytes."""
    return text.replace("\n", "\r\n").encode(charset)


def b64(data: bytes) -> str:
    """Base64 in lines of 76 characters, as MIME writers do."""
    encoded = base64.b64encode(data).decode("ascii")
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))


PLAIN = crlf("""\
Return-Path: <alice@example.org>
Received: from mx.example.org by mail.example.com; Thu, 30 Oct 2014 06:12:04 -0700
From: Alice Liddell <alice@example.org>
To: "Bob  Smith" <bob@example.com>, carol@example.com (Carol Jones)
Cc: Friends: dave@example.net, =?UTF-8?Q?Ren=C3=A9e?= <renee@example.net>;
Subject: Lunch on Thursday?
Date: Thu, 30 Oct 2014 06:12:00 -0700 (PDT)
Message-ID: <20141030131200.GA1234@example.org>
In-Reply-To: <parent@example.com>
References: <root@example.com>
 <parent@example.com>
List-Post: <mailto:lunch@lists.example.org>
List-Unsubscribe: <https://lists.example.org/unsub?u=1>, (or by mail)
  <mailto:lunch-leave@lists.example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hi Bob,

Are we still on for lunch on Thursday? The café on the corner opens at noon.

Alice
""")

ALTERNATIVE = crlf("""\
From: Joe Bloggs <joe@example.com>
To: partytime@lists.example.com
Subject: Dinner on Thursday?
Date: Sun, 13 Oct 2013 14:12:00 +0000
Message-ID: <dinner@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_alt_01"

This is a multi-part message in MIME format.

--=_alt_01
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: 7bit

Hello all, dinner is at 7.
--=_alt_01
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Hello <b>all</b>, dinner is at 7.</p><p style=3D"color:red">=
Bring wine!</p></body></html>
--=_alt_01--
""")

_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                     "1f15c4890000000a49444154789c63000100000500010d0a2db40000000049454e44ae426082")

RELATED_IN_ALTERNATIVE = crlf("""\
From: Newsletter <news@shop.example>
To: customer@example.com
Subject: Our autumn catalogue
Date: Mon, 3 Nov 2014 09:00:00 +0100
Message-ID: <autumn-2014@shop.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="outer"

--outer
Content-Type: text/plain; charset=utf-8

See our autumn catalogue online.
--outer
Content-Type: multipart/related; boundary="inner"; type="text/html"

--inner
Content-Type: text/html; charset=utf-8

<html><body><img src="cid:logo@shop.example" alt="Shop logo"><p>See our autumn catalogue.</p></body></html>
--inner
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo@shop.example>

%s
--inner--

--outer--
""" % (b64(_PNG),))

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"

MIXED_ATTACHMENTS = crlf("""\
From: Accounts <billing@vendor.example>
To: finance@example.com
Subject: Invoice 2014-117
Date: Tue, 4 Nov 2014 16:45:10 -0500
Message-ID: <invoice-117@vendor.example>
MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="----=_Part_0_12345.67890"

------=_Part_0_12345.67890
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Please find the invoice and a photo of the delivery attached.
------=_Part_0_12345.67890
Content-Type: application/pdf; name="invoice-117.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="invoice-117.pdf"

%s
------=_Part_0_12345.67890
Content-Type: image/jpeg
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
 filename*0*=UTF-8''Lieferung%%20vor%%20der%%20T%%C3%%BCr;
 filename*1*=.jpg

%s
------=_Part_0_12345.67890--
""" % (b64(PDF), b64(JPEG)))

FORWARDED = crlf("""\
From: Bob Smith <bob@example.com>
To: Alice Liddell <alice@example.org>
Subject: Fwd: Invoice 2014-117
Date: Wed, 5 Nov 2014 08:00:00 +0000
Message-ID: <fwd-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain; charset=utf-8

See the forwarded message below.
--fwd
Content-Type: message/rfc822
Content-Disposition: attachment; filename="Invoice 2014-117.eml"

""") + MIXED_ATTACHMENTS + crlf("""
--fwd--
""")

LATIN1 = crlf("""\
From: =?ISO-8859-1?Q?Fran=E7ois_M=FCller?= <francois@example.fr>
To: team@example.fr
Subject: =?ISO-8859-1?Q?R=E9union_de_l'=E9quipe?=
Date: Fri, 7 Nov 2014 10:30:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

""") + quopri.encodestring("La réunion aura lieu à 14 h, salle Étoile.\n".encode("latin-1")).replace(b"\n", b"\r\n")

WINDOWS1252 = crlf("""\
From: Pat <pat@example.com>
To: sam@example.com
Subject: =?windows-1252?Q?=93Smart=94_quotes_cost_=8010?=
Date: Fri, 7 Nov 2014 11:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: 8bit

""") + crlf("\u201cSmart\u201d quotes cost \u20ac10 \u2013 that\u2019s all.\n", "cp1252")

SHIFT_JIS = crlf("""\
From: =?ISO-2022-JP?B?GyRCRURDZhsoQg==?= <tanaka@example.jp>
To: suzuki@example.jp
Subject: =?Shift_JIS?B?%s?=
Date: Sat, 8 Nov 2014 12:00:00 +0900
MIME-Version: 1.0
Content-Type: text/plain; charset=Shift_JIS
Content-Transfer-Encoding: base64

%s
""" % (base64.b64encode("会議の件".encode("shift_jis")).decode(),
       b64("明日の会議は十時からです。\r\n".encode("shift_jis"))))

KOI8R = crlf("""\
From: =?KOI8-R?B?%s?= <ivan@example.ru>
To: olga@example.ru
Subject: =?KOI8-R?Q?%s?=
Date: Sun, 9 Nov 2014 13:00:00 +0300
MIME-Version: 1.0
Content-Type: text/plain; charset=KOI8-R
Content-Transfer-Encoding: 8bit

""" % (base64.b64encode("Иван Петров".encode("koi8-r")).decode(),
       "".join("=%02X" % b for b in "Привет".encode("koi8-r")))) + crlf("Привет, Ольга!\n", "koi8-r")

# A UTF-8 subject whose encoded words split "é" (C3 A9) between two words.
UTF8_SPLIT = crlf("""\
From: Zoë <zoe@example.com>
To: yan@example.com
Subject: =?UTF-8?Q?Caf=C3?=
 =?UTF-8?Q?=A9_au_lait?= and more
Date: Mon, 10 Nov 2014 07:00:00 -0800
Content-Type: text/plain; charset=UTF-8

Ünïcödé body, straight UTF-8.
""")

RAW_8BIT_HEADER = crlf("""\
From: alice@example.org
To: bob@example.com
Date: Mon, 10 Nov 2014 07:00:00 -0800
Content-Type: text/plain

body
""").replace(b"From:", b"Subject: Caf\xe9 cr\xe8me\r\nFrom:")

MISSING_CLOSING_BOUNDARY = crlf("""\
From: alice@example.org
Subject: truncated
Content-Type: multipart/mixed; boundary="xx"

--xx
Content-Type: text/plain

first part
--xx
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="data.bin"

0123456789
""")

WRONG_BOUNDARY = crlf("""\
From: alice@example.org
Subject: wrong boundary
Content-Type: multipart/mixed; boundary="declared"

--actual
Content-Type: text/plain

still readable
--actual
Content-Type: text/html

<p>also readable</p>
--actual--
""")

NO_DELIMITER = crlf("""\
From: alice@example.org
Subject: no parts at all
Content-Type: multipart/mixed; boundary="nowhere"

Just text, no parts.
""")

UNKNOWN_CHARSET = crlf("""\
From: alice@example.org
Subject: =?x-klingon?Q?Qapla=27?=
Content-Type: text/plain; charset="x-klingon"

nuqneH
""")

NO_CONTENT_TYPE_PART = crlf("""\
From: alice@example.org
Subject: part without a content type
Content-Type: multipart/mixed; boundary="nc"

--nc

plain by default
--nc
Content-Disposition: attachment; filename="notes"

also plain, but an attachment
--nc--
""")

DIGEST = crlf("""\
From: digest@lists.example.org
Subject: List digest, Vol 1, Issue 1
Content-Type: multipart/digest; boundary="dg"

--dg

From: one@example.org
Subject: first

first message
--dg

From: two@example.org
Subject: second

second message
--dg--
""")

GARBAGE_ENCODINGS = crlf("""\
From: alice@example.org
Subject: garbage
Content-Type: multipart/mixed; boundary="g"

--g
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

broken =ZZ escape and soft=
 break and =C3=A9
--g
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVs!!bG8g
d29y*bGQ=
--g
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: x-unknown-encoding

as is
--g--
""")

LONG_HEADER = crlf("From: alice@example.org\nTo: %s\nSubject: %s\nX-Long: %s\n\nbody\n" % (
    ",\n ".join("user%d@example.com" % i for i in range(4000)),
    "word " * 20000,
    "x" * 102400))

INLINE_TEXT_ATTACHMENT = crlf("""\
From: alice@example.org
Subject: notes inline
Content-Type: multipart/mixed; boundary="it"

--it
Content-Type: text/plain

See my notes.
--it
Content-Type: text/plain; name="notes.txt"
Content-Disposition: inline; filename="notes.txt"

1. buy milk
--it--
""")

CALENDAR = crlf("""\
From: Calendar <calendar@example.com>
To: bob@example.com
Subject: Invitation: Team sync
Content-Type: multipart/mixed; boundary="cal-m"

--cal-m
Content-Type: multipart/alternative; boundary="cal-a"

--cal-a
Content-Type: text/plain; charset=UTF-8

You are invited to Team sync.
--cal-a
Content-Type: text/html; charset=UTF-8

<p>You are invited to <b>Team sync</b>.</p>
--cal-a
Content-Type: text/calendar; charset=UTF-8; method=REQUEST

BEGIN:VCALENDAR
METHOD:REQUEST
BEGIN:VEVENT
SUMMARY:Team sync
DTSTART:20141112T100000Z
END:VEVENT
END:VCALENDAR
--cal-a--
--cal-m
Content-Type: application/ics; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"

BEGIN:VCALENDAR
END:VCALENDAR
--cal-m--
""")

BARE_LF = """\
From: unix@example.org
To: bob@example.com
Subject: written by a Unix
 tool
Content-Type: multipart/alternative; boundary=lf

--lf
Content-Type: text/plain

line one
line two
--lf
Content-Type: text/html

<p>line one<br>line two</p>
--lf--
""".encode("ascii")

# The example tree of RFC 8621 4.1.4; each leaf's text is its letter.
RFC_EXAMPLE = crlf("""\
From: list@example.org
Subject: RFC 8621 4.1.4 example
Content-Type: multipart/mixed; boundary="m1"

--m1
Content-Type: text/plain
Content-Disposition: inline

A
--m1
Content-Type: multipart/mixed; boundary="m2"

--m2
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: multipart/mixed; boundary="m3"

--m3
Content-Type: text/plain
Content-Disposition: inline

B
--m3
Content-Type: image/jpeg
Content-Disposition: inline

C
--m3
Content-Type: text/plain
Content-Disposition: inline

D
--m3--
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html

E
--rel
Content-Type: image/jpeg

F
--rel--
--alt--
--m2
Content-Type: image/jpeg
Content-Disposition: attachment

G
--m2
Content-Type: application/x-excel

H
--m2
Content-Type: message/rfc822

J
--m2--
--m1
Content-Type: text/plain
Content-Disposition: inline

K
--m1--
""")

ALL = {
    "PLAIN": PLAIN, "ALTERNATIVE": ALTERNATIVE, "RELATED_IN_ALTERNATIVE": RELATED_IN_ALTERNATIVE,
    "MIXED_ATTACHMENTS": MIXED_ATTACHMENTS, "FORWARDED": FORWARDED, "LATIN1": LATIN1,
    "WINDOWS1252": WINDOWS1252, "SHIFT_JIS": SHIFT_JIS, "KOI8R": KOI8R, "UTF8_SPLIT": UTF8_SPLIT,
    "RAW_8BIT_HEADER": RAW_8BIT_HEADER, "MISSING_CLOSING_BOUNDARY": MISSING_CLOSING_BOUNDARY,
    "WRONG_BOUNDARY": WRONG_BOUNDARY, "NO_DELIMITER": NO_DELIMITER,
    "UNKNOWN_CHARSET": UNKNOWN_CHARSET, "NO_CONTENT_TYPE_PART": NO_CONTENT_TYPE_PART,
    "DIGEST": DIGEST, "GARBAGE_ENCODINGS": GARBAGE_ENCODINGS, "LONG_HEADER": LONG_HEADER,
    "INLINE_TEXT_ATTACHMENT": INLINE_TEXT_ATTACHMENT, "CALENDAR": CALENDAR, "BARE_LF": BARE_LF,
    "RFC_EXAMPLE": RFC_EXAMPLE,
}
"""Every message above, by name (for the robustness tests)."""
