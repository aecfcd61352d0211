"""Every page speaks the reader's language (issue #15): crawled from each demo role's start page in
the pseudo-language, no visible text may have skipped gettext."""

from __future__ import annotations

import os

import pytest

from egocrowd import i18n
from tests.i18n.conftest import client_for, crawl
from tests.support.i18n import untranslated

ROLES = ["anonymous", "worker", "requester", "reviewer", "admin", "annotator"]
START = {
    "anonymous": ["/", "/login", "/signup", "/forgot-password", "/no-such-page"],
    "worker": [
        "/",
        "/campaigns",
        "/assignments",
        "/clips",
        "/earnings",
        "/annotate",
        "/consents",
        "/account",
        "/notifications",
    ],
    "requester": ["/", "/campaigns", "/clips", "/releases", "/catalog", "/lab", "/withdrawals", "/account"],
    "reviewer": ["/", "/review", "/review/redaction", "/account"],
    "admin": ["/", "/admin", "/campaigns", "/consent-documents", "/review", "/account"],
    "annotator": ["/annotate", "/account"],
}
#: while issue #15 is being built, a helper checks only its own part: I18N_AREA="/campaigns,/clips"
AREA = tuple(p for p in os.environ.get("I18N_AREA", "").split(",") if p)


@pytest.mark.parametrize("role", ROLES)
def test_no_page_shows_text_that_skipped_translation(demo_app, role):
    app, logins, data = demo_app
    client = client_for(app, logins, None if role == "anonymous" else role, "en-XA")
    problems: dict[str, list[str]] = {}
    pages = 0
    for path, r in crawl(client, START[role]):
        pages += 1
        if AREA and not path.startswith(AREA):
            continue
        found = untranslated(r.text, data)
        if found:
            problems[path] = found[:8]
    assert pages >= len(START[role])
    assert not problems, "\n".join(f"{p}: {found}" for p, found in problems.items())


@pytest.mark.parametrize("language", [code for code in i18n.LANGUAGES if code != i18n.DEFAULT])
def test_every_page_is_whole_in_each_shipped_language(demo_app, language):
    """The same crawl in each shipped language: every string the pages asked gettext for has a
    translation in the catalog (a string marked but never extracted, or built at run time, would
    show in English), and the page says its language and direction."""
    app, logins, _data = demo_app
    i18n.MISSES.clear()
    pages = 0
    for role in ROLES:
        client = client_for(app, logins, None if role == "anonymous" else role, language)
        for _path, r in crawl(client, START[role], limit=150):
            pages += 1
            direction = i18n.LANGUAGES[language].direction
            assert f'<html lang="{language}" dir="{direction}">' in r.text
    missing = sorted(msgid for lang, msgid in i18n.MISSES if lang == language)
    assert pages > 30
    assert not missing, f"{len(missing)} strings without a {language} translation, e.g. {missing[:10]}"
