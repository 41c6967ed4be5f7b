# -*- test-case-name: tests.mail.test_html -*-
"""
Tests for L{stalwart.mail.html}: HTML to plain text for the preview, search
and the text/html fallback of RFC 8621 4.1.4.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from stalwart.mail.html import HTML_CHARS_MAX, html_to_text


class HtmlToTextTests(SynchronousTestCase):
    """
    L{html_to_text} keeps what a reader sees.
    """

    def test_blocks_and_breaks(self) -> None:
        """
        RFC 8621 4.1.4 preview: block elements and C{br} become line breaks,
        paragraphs are separated by one blank line, inline markup vanishes.
        """
        self.assertEqual(html_to_text("<p>Hello <b>all</b>,</p><p>line<br>two</p><div>x</div>"),
                         "Hello all,\n\nline\ntwo\n\nx")

    def test_hidden_content_dropped(self) -> None:
        """
        RFC 8621 4.1.4 preview: script, style, head and comments are not
        text.
        """
        html = ("<html><head><title>T</title><style>p {color: red}</style></head>"
                "<body><!-- note --><script>if (a < b) alert(1)</script>Body</body></html>")
        self.assertEqual(html_to_text(html), "Body")

    def test_entities_and_whitespace(self) -> None:
        """
        RFC 8621 4.1.4 preview: entities are decoded and runs of white space
        (source newlines, nbsp) collapse to one space.
        """
        self.assertEqual(html_to_text("Fish&nbsp;&amp;\n   chips &#8364;5 &eacute;t&eacute;"),
                         "Fish & chips €5 été")

    def test_image_alt_and_stray_brackets(self) -> None:
        """
        RFC 8621 4.1.4: an image's alt text stands for it; a C{<} that opens
        no tag is text.
        """
        self.assertEqual(html_to_text('<img src="cid:x" alt="Shop logo">1 < 2'), "Shop logo 1 < 2")

    def test_bounded_input(self) -> None:
        """
        Only the first L{HTML_CHARS_MAX} characters are read, so the output of
        a huge part is bounded.
        """
        text = html_to_text("<p>" + "a " * HTML_CHARS_MAX)
        self.assertLessEqual(len(text), HTML_CHARS_MAX)

    def test_hostile_markup_is_linear(self) -> None:
        """
        Unclosed markup that makes the standard library's HTMLParser take
        quadratic time is read in one pass (each case would take seconds to
        minutes if it were quadratic).
        """
        for html in ["</" * 200000, "<a" * 200000, "<!--" + "a" * 400000, "<!" * 200000,
                     "<script>" * 50000, '<a b="' * 100000]:
            self.assertIsInstance(html_to_text(html), str)

    def test_random_input(self) -> None:
        """
        No input makes it raise.
        """
        rng = random.Random(2392)
        alphabet = "<>/!-&;#x ab\"'=\n\x00pbrscript"
        for _ in range(300):
            html_to_text("".join(rng.choice(alphabet) for _ in range(rng.randrange(200))))
