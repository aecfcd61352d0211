"""Pure helpers for consent texts: Markdown to safe HTML, diffs between two texts, and picking the
language version a reader asked for. No database here."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt

# CommonMark with raw HTML off (and no linkify): a consent text can never inject markup or script.
# markdown-it also refuses javascript:, vbscript: and file: links.
_MD = MarkdownIt("commonmark", {"html": False, "linkify": False})

#: BCP 47 tags as people write them: "en", "fr", "pt-BR", "zh-Hant", "es-419"
LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$")


def render_markdown(body: str, *, top_level: int = 2) -> str:
    """The text as HTML, safe to put into a page as it is. Its headings start at ``<h{top_level}>``:
    the page around it has its own ``<h1>`` (one per page, headings in order)."""
    tokens = _MD.parse(body)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + top_level - 1)}"
    return _MD.renderer.render(tokens, _MD.options, {})


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff (what ``diff -u`` prints), line by line."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_name, tofile=new_name
        )
    )


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same" | "added" | "removed"
    text: str


def diff_lines(old: str, new: str) -> list[DiffLine]:
    """Every line of both texts in reading order, marked kept, added or removed: an inline diff that
    reads on a phone (side by side would not fit 390 px)."""
    out: list[DiffLine] = []
    a, b = old.splitlines(), new.splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [DiffLine("same", line) for line in a[i1:i2]]
        else:
            out += [DiffLine("removed", line) for line in a[i1:i2]]
            out += [DiffLine("added", line) for line in b[j1:j2]]
    return out


def parse_accept_language(header: str | None) -> list[str]:
    """The tags of an Accept-Language header, most wanted first ("fr-CH, fr;q=0.9, *;q=0.5")."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and q > 0:
            ranked.append((-q, i, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


def pick_language(available: Sequence[str], wanted: Sequence[str], default: str) -> str:
    """The first wanted tag we have, exactly or by its primary language ("fr-CH" → "fr", "pt" →
    "pt-BR"); otherwise ``default``."""
    lower = {a.lower(): a for a in available}
    for tag in wanted:
        t = tag.lower()
        if t in lower:
            return lower[t]
        primary = t.split("-")[0]
        for a in available:
            if a.lower().split("-")[0] == primary:
                return a
    return default


def language_name(tag: str | None) -> str:
    """A language tag ("pt-BR") as the viewer's language names it ("Brazilian Portuguese",
    "portugais brésilien"), from CLDR; the tag itself when CLDR does not know it."""
    from babel import Locale, UnknownLocaleError

    from egocrowd import i18n

    if not tag:
        return ""
    try:
        name = Locale.parse(tag.replace("-", "_")).get_display_name(i18n.babel_locale())
    except (UnknownLocaleError, ValueError, TypeError):
        return tag
    return name or tag


def same_language(a: str | None, b: str | None) -> bool:
    """Whether two tags name one language ("pt-BR" and "pt" do; "en-XA", the pseudo-language, is English)."""
    return bool(a and b) and a.split("-")[0].lower() == b.split("-")[0].lower()  # type: ignore[union-attr]
