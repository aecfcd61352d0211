"""The training pages speak the reader's language: every page (and its error, empty and waiting
states) rendered in the pseudo-language shows no text that skipped gettext."""

from __future__ import annotations

import re

from egocrowd.db.models import Campaign
from tests.platform.test_access import page_login
from tests.support.i18n import untranslated
from tests.training.test_training import _qualification

#: what people wrote in this world (names, titles, the taxonomy): never translated
WRITTEN = frozenset({"Label kitchen actions", "open", "close", "jar", "lid", "Better paid"})


def _body(html: str) -> str:
    # the shell (menu, footer) is base.html's, checked with the pages that own it
    return re.sub(r"<header class=\"top\">.*?</header>|<footer>.*?</footer>", "", html, flags=re.S)


def test_training_pages_have_no_untranslated_text(world, app, client, tmp_path, monkeypatch):
    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")
    _qualification(world, app, client, tmp_path, slug="kitchen-labels", max_attempts=1)
    cid = world.open_campaign(title="Better paid")["id"]
    with world.db.transaction() as s:
        s.get_one(Campaign, cid).required_qualification = "kitchen-labels"
        s.get_one(Campaign, cid).min_level = 2
    csrf = page_login(client, world.worker)
    client.cookies.set("lang", "en-XA")
    pages = {"/training": None, "/training/q/kitchen-labels": None}
    item = re.search(r"/training/practice/(\d+)", client.get("/training/q/kitchen-labels").text).group(1)
    pages[f"/training/practice/{item}"] = None
    bad = client.post(
        f"/training/practice/{item}",
        data={"csrf_token": csrf, "start_s": "0", "end_s": "x", "verb": "open", "noun": "jar"},
    )
    assert bad.status_code == 422
    r = client.post(
        f"/training/practice/{item}",
        data={"csrf_token": csrf, "start_s": "0", "end_s": "1", "verb": "close", "noun": "jar"},
        follow_redirects=False,
    )
    pages[r.headers["location"]] = None  # a practice result: right, wrong and missed spans
    test = client.post("/training/q/kitchen-labels/test", data={"csrf_token": csrf}, follow_redirects=False)
    pages[test.headers["location"]] = None  # an open test
    client.post(test.headers["location"], data={"csrf_token": csrf}, follow_redirects=False)
    pages[test.headers["location"] + "?again"] = None  # a failed test
    found = {p: untranslated(_body(client.get(p).text), WRITTEN) for p in pages}
    found["practice error"] = untranslated(_body(bad.text), WRITTEN)
    # the campaign page is the campaigns' own; here only the block training adds to it
    block = re.search(r'<div class="card tr-needs".*?</div>', client.get(f"/campaigns/{cid}").text, re.S).group(0)
    found["campaign block"] = untranslated(block, WRITTEN)
    waiting = client.get("/training/q/kitchen-labels").text  # no tests left: the waiting state
    assert 'id="tr-wait"' in waiting
    found["waiting"] = untranslated(_body(waiting), WRITTEN)
    lab_csrf = page_login(client, world.lab)
    client.cookies.set("lang", "en-XA")
    found["/training (lab)"] = untranslated(_body(client.get("/training").text), WRITTEN)
    found["/training/new"] = untranslated(_body(client.get("/training/new").text), WRITTEN)
    refused = client.post("/training/new", data={"csrf_token": lab_csrf, "slug": "X"})
    assert refused.status_code == 422 and 'data-code="validation.failed"' in refused.text
    # the field messages are forms.field_errors' (the shared form words, translated with that module)
    mine = re.sub(r'<p class="error" role="alert"[^>]*>.*?</p>', "", _body(refused.text), flags=re.S)
    found["/training/new refused"] = untranslated(mine, WRITTEN)
    problems = {p: f for p, f in found.items() if f}
    assert not problems, "\n".join(f"{p}: {f}" for p, f in problems.items())
