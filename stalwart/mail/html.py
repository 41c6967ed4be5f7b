# -*- test-case-name: tests.mail.test_html -*-
"""
Plain text from HTML, for the preview, full-text search and the text/html
to text/plain fallback of RFC 8621 4.1.4.

This is not a renderer: it keeps the words and the line structure a reader
would see, nothing else.

It is a small scanner of its own rather than L{html.parser.HTMLParser}:
on Python 3.11 HTMLParser takes quadratic time on unclosed markup (60 s
for C{"</" * 300000}, minutes for C{"<a" * 300000}, measured), and mail is
hostile input.  Every step here moves forward with C{str.find} or an anchored
regular expression, and a failed search for a closing C{>} or C{-->} is
remembered, so the work is linear in the input.  Entities are decoded with
L{html.unescape}.
"""

from __future__ import annotations

import html as _html
import re

__all__ = ["html_to_text", "HTML_CHARS_MAX"]

HTML_CHARS_MAX = 1 << 20
"""
The most characters of HTML read, 1 Mi: a preview or search index needs the
start of a body, and that bounds the work on a hostile part.
"""

# Elements whose content is not text a reader sees: skipped up to their end tag.
_HIDDEN = frozenset(["script", "style", "head", "title", "template", "noscript", "svg",
                     "object", "iframe", "xml"])
# Elements that start and end a line (the common block elements of HTML).
_BLOCK = frozenset("""
    address article aside blockquote body center dd details dialog dir div dl dt
    fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li
    main menu nav ol pre section summary table tbody tfoot thead tr ul
""".split())
_PARAGRAPH = frozenset(["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"])

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")
_ALT = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_RUN = re.compile(r"[ \t\r\f\v\u00a0]+")


def _closing(tag: str) -> re.Pattern:
    return re.compile(r"</%s\s*>" % (re.escape(tag),), re.I)


class _Scanner:
    def __init__(self, html: str) -> None:
        self.html = html
        self.chunks: list[str] = []
        self._no_more = {}      # needle -> position from which it is known absent

    def find(self, needle: str, start: int) -> int:
        """C{str.find}, remembering failures so repeated misses cost nothing."""
        if self._no_more.get(needle, len(self.html) + 1) <= start:
            return -1
        at = self.html.find(needle, start)
        if at < 0:
            self._no_more[needle] = min(start, self._no_more.get(needle, start))
        return at

    def text(self, data: str) -> None:
        if data:
            self.chunks.append(_html.unescape(data.replace("\n", " ")))

    def run(self) -> str:
        html, i, n = self.html, 0, len(self.html)
        while i < n:
            lt = html.find("<", i)
            if lt < 0:
                self.text(html[i:])
                break
            self.text(html[i:lt])
            i = self.markup(lt)
        return "".join(self.chunks)

    def markup(self, lt: int) -> int:
        """Handle the markup at C{lt}; return where the text goes on."""
        html = self.html
        if html.startswith("<!--", lt):
            end = self.find("-->", lt + 4)
            return len(html) if end < 0 else end + 3
        m = _TAG.match(html, lt)
        if m is None:
            if html.startswith(("<!", "<?"), lt):
                end = self.find(">", lt)
                return len(html) if end < 0 else end + 1
            self.chunks.append("<")
            return lt + 1
        end = self.find(">", m.end())
        if end < 0:
            return len(html)
        closing, name = m.group(1), m.group(2).lower()
        if not closing and name in _HIDDEN and not html[end - 1] == "/":
            close = _closing(name).search(html, end + 1)
            return len(html) if close is None else close.end()
        if name == "br":
            self.chunks.append("\n")
        elif name in _PARAGRAPH:
            self.chunks.append("\n\n")
        elif name in _BLOCK:
            self.chunks.append("\n")
        elif name in ("td", "th") and closing:
            self.chunks.append(" ")
        elif name == "img" and not closing:
            alt = _ALT.search(html, m.end(), end)
            if alt:
                quoted, single, bare = alt.groups()
                value = quoted if quoted is not None else single if single is not None \
                    else bare.rstrip("/")
                self.chunks.append(" %s " % (_html.unescape(value),))
        return end + 1


def _collapse(text: str) -> str:
    """Collapse runs of spaces, trim lines, keep at most one blank line in a row."""
    out: list[str] = []
    blank = False
    for line in text.split("\n"):
        line = _RUN.sub(" ", line).strip()
        if line:
            if blank and out:
                out.append("")
            out.append(line)
            blank = False
        else:
            blank = True
    return "\n".join(out)


def html_to_text(html: str) -> str:
    """
    The visible text of C{html}: script, style and head dropped, block
    elements and C{br} as line breaks (at most one blank line in a row),
    image C{alt} text kept, entities decoded, runs of spaces collapsed, lines
    trimmed.  Only the first L{HTML_CHARS_MAX} characters are read.  Never
    raises; linear time.
    """
    html = html[:HTML_CHARS_MAX].replace("\x00", "")
    return _collapse(_Scanner(html).run())
