"""Finding text that skipped the translation layer (issue #15).

Pages are rendered in the pseudo-language ``en-XA`` (egocrowd.i18n): every string that went through
gettext comes back accented between ⟦ ⟧. :func:`untranslated` lists the visible text that did not:
text nodes and the attributes people read (placeholder, title, aria-label, alt, button values),
outside <script>/<style> and outside any element marked ``translate="no"`` (the HTML attribute for
content that is not ours to translate: names, titles a lab wrote, codes, numbers).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from egocrowd.i18n import PSEUDO_CLOSE, PSEUDO_OPEN

_READ_ATTRS = ("placeholder", "title", "aria-label", "alt")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "param"}
_LETTERS = re.compile(r"[A-Za-z]{2,}")


def _translated(text: str) -> bool:
    return PSEUDO_OPEN in text or PSEUDO_CLOSE in text


class _Finder(HTMLParser):
    def __init__(self, data: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.data = data
        self.stack: list[tuple[str, bool]] = []  # (tag, inside translate=no / script / style)
        self.found: list[str] = []

    @property
    def skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        skip = self.skipping or tag in ("script", "style", "svg", "code", "pre") or a.get("translate") == "no"
        if not skip:
            for name in _READ_ATTRS:
                self._check(a.get(name), f"@{name}")
            if tag == "input" and a.get("type") in ("submit", "button", "reset"):
                self._check(a.get("value"), "@value")
        if tag not in _VOID:
            self.stack.append((tag, skip))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.stack:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):  # tolerate unclosed <p>, <li>...
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if not self.skipping:
            self._check(data, "")

    def _check(self, text: str | None, where: str) -> None:
        if not text:
            return
        text = " ".join(text.split()).removesuffix(" · egocrowd")  # <title>: the page's own part
        if text in self.data or text in ALLOWED:
            return
        if _LETTERS.search(text) and not _translated(text):
            self.found.append(f"{where}{text}" if where else text)


def untranslated(html: str, data: frozenset[str] = frozenset()) -> list[str]:
    """Visible English that did not go through gettext (the page must be rendered in ``en-XA``).
    ``data``: text people wrote (campaign titles, names), shown as written in every language."""
    finder = _Finder(data)
    finder.feed(html)
    return finder.found


#: Words that are the same in every language: the product's name.
ALLOWED = {"egocrowd"}
