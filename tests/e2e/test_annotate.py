"""The annotation page in a real Chromium, on a desktop and on a phone: the video plays and seeks,
spans are marked at the playhead with keys (desktop) or buttons and finger taps on the timeline
(phone), nudged, deleted and sent; the stored spans are what the page showed. Then a reviewer's
gold page, and the page without script."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from egocrowd import i18n
from egocrowd.db.models import AnnotationTask, AnnotationTaskStatus, Span, SpanKind
from egocrowd.i18n import pseudo
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator
from tests.platform.helpers import make_user
from tests.support.browser import DESKTOP, PHONE, log_in, look, seek, sqlite_db_url, until

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def _answer(db, task_id: int) -> list[tuple]:
    with db.transaction() as s:
        assert s.get_one(AnnotationTask, task_id).status is AnnotationTaskStatus.submitted
        rows = s.scalars(
            sa.select(Span).where(Span.task_id == task_id, Span.kind == SpanKind.answer).order_by(Span.start_ms)
        )
        return [(r.start_ms, r.end_ms, r.verb, r.noun) for r in rows]


@pytest.fixture
def scene(app, db, world, tmp_path):
    staff = make_user(db, "reviewer")
    cid = annotation_campaign(world, per_clip=2)
    clips = [accepted_clip(db, app.state.blobs, tmp_path, cid, world.worker.id, derived=True) for _ in range(2)]
    return staff, clips


def _claim(page) -> int:
    page.goto("/annotate")
    with page.expect_navigation():
        page.get_by_role("button", name="Get the next clip").click()
    page.wait_for_selector("#an-stage[data-ready=yes]")
    return int(page.url.rstrip("/").split("/")[-1])


def test_desktop_marks_spans_with_the_keyboard(live, db, chromium, scene):
    staff, clips = scene
    a = annotator(db, staff)
    page = log_in(chromium(), live.base, a.email, DESKTOP)
    task = _claim(page)
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).position") == "sticky"
    assert seek(page, 0.5)["error"] is None
    page.locator("body").click(position={"x": 5, "y": 5})  # focus on the page, not a field
    page.keyboard.press("[")
    seek(page, 1.5)
    page.keyboard.press("]")
    page.select_option("#an-new-verb", "open")
    page.select_option("#an-new-noun", "jar")
    page.locator("h1").click()  # leave the select: keys act only outside fields
    page.keyboard.press("Enter")
    assert page.locator(".an-row").count() == 1
    assert page.input_value(".an-row .an-start") == "0.50" and page.input_value(".an-row .an-end") == "1.50"
    # a second span, then delete it with the Delete key (it is the selected one)
    seek(page, 2.0)
    page.keyboard.press("[")
    page.keyboard.press("ArrowRight")  # seek 1 s: 3.0, the end (clamped to the clip)
    until(page, "document.querySelector('video').currentTime > 2.5")
    page.keyboard.press("]")
    page.keyboard.press("Enter")
    assert page.locator(".an-row").count() == 2
    assert page.locator("#an-lane-mine .an-bar").count() == 2
    look(page, "annotate-task")
    page.keyboard.press("Delete")
    assert page.locator(".an-row").count() == 1
    # a key typed in a field is text, not a command
    page.locator(".an-row .an-end").fill("")
    page.locator(".an-row .an-end").type("1.6")
    assert page.locator(".an-row").count() == 1
    page.get_by_role("button", name="End +0.1 s").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Send my labels").click()
    assert "your labels were sent" in page.content()
    assert _answer(db, task) == [(500, 1700, "open", "jar")]
    look(page, "annotate-home")


def test_phone_marks_spans_with_taps(live, db, chromium, scene):
    staff, clips = scene
    a = annotator(db, staff)
    page = log_in(chromium(), live.base, a.email, PHONE)
    task = _claim(page)
    # the wrapped nav scrolls away instead of covering the spans being edited (on a desktop it stays)
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).position") == "static"
    assert page.locator("#an-rows-help").inner_text().startswith("No spans yet")  # no empty rows to "leave empty"
    # tap the timeline at 1/3: the video seeks to ~1 s
    box = page.locator("#an-timeline").bounding_box()
    assert box["width"] <= PHONE["width"]
    page.locator("#an-timeline").tap(position={"x": box["width"] / 3, "y": box["height"] / 2})
    until(page, "Math.abs(document.querySelector('video').currentTime - 1.0) < 0.15")
    page.get_by_role("button", name="Mark start").tap()
    page.get_by_role("button", name="+1 s").tap()
    page.get_by_role("button", name="Mark end").tap()
    page.select_option("#an-new-verb", "close")
    page.select_option("#an-new-noun", "lid")
    page.get_by_role("button", name="Add span").tap()
    assert page.locator(".an-row").count() == 1
    assert page.locator("#an-rows-help").inner_text().startswith("Times in seconds")
    start = float(page.input_value(".an-row .an-start"))
    end = float(page.input_value(".an-row .an-end"))
    assert abs(start - 1.0) < 0.15 and abs(end - 2.0) < 0.15
    page.get_by_role("button", name="Start −0.1 s").tap()
    look(page, "annotate-task")
    with page.expect_navigation():
        page.get_by_role("button", name="Send my labels").tap()
    got = _answer(db, task)
    assert got == [(round((start - 0.1) * 1000), round(end * 1000), "close", "lid")]


def test_refused_answer_comes_back_with_what_was_typed_and_without_script(live, db, chromium, scene):
    staff, clips = scene
    a = annotator(db, staff)
    page = log_in(chromium(), live.base, a.email, PHONE, js=False)
    page.goto("/annotate")
    with page.expect_navigation():
        page.get_by_role("button", name="Get the next clip").click()
    task = int(page.url.rstrip("/").split("/")[-1])
    page.fill("#an-s1", "0.2")
    page.fill("#an-e1", "9")  # past the 3 s clip
    with page.expect_navigation():
        page.get_by_role("button", name="Send my labels").click()
    assert page.locator("[data-code='annotation.span_outside_clip']").count() == 1
    assert page.input_value("#an-e1") == "9"
    page.fill("#an-e1", "2.5")
    page.select_option("#an-v1", "pour")
    page.select_option("#an-n1", "water")
    with page.expect_navigation():
        page.get_by_role("button", name="Send my labels").click()
    assert _answer(db, task) == [(200, 2500, "pour", "water")]


def test_reviewer_makes_reference_spans(live, db, chromium, scene):
    staff, clips = scene
    page = log_in(chromium(), live.base, staff.email, DESKTOP)
    page.goto(f"/clips/{clips[0]}")  # the way there: a link on the accepted clip's page
    assert page.get_by_role("link", name="All my clips").count() == 0  # not the reviewer's clip
    assert page.get_by_role("link", name="Back to the campaign").count() == 1
    with page.expect_navigation():
        page.get_by_role("link", name="Make it a gold clip: mark reference labels").click()
    assert page.url.endswith(f"/annotate/gold/{clips[0]}")
    page.wait_for_selector("#an-stage[data-ready=yes]")
    seek(page, 0.3)
    page.get_by_role("button", name="Mark start").click()
    seek(page, 1.2)
    page.get_by_role("button", name="Mark end").click()
    page.get_by_role("button", name="Add span").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Save reference spans").click()
    assert "now a gold clip" in page.content()
    page.goto(f"/clips/{clips[0]}")
    assert page.locator("#clip-gold").inner_text() == "Edit the reference labels (gold clip)"
    with db.transaction() as s:
        rows = s.scalars(sa.select(Span).where(Span.clip_id == clips[0], Span.kind == SpanKind.gold)).all()
        assert [(r.start_ms, r.end_ms) for r in rows] == [(300, 1200)]
    look(page, "annotate-gold")


def test_reviewer_fixes_disagreeing_spans(live, db, chromium, scene):
    """The span review: the three answers as lanes under the video and as text, the consensus as
    editable rows; the reviewer corrects one, removes one, saves; the item is decided once."""
    from datetime import timedelta

    from egocrowd.db.models import Clip, LabelStatus, ReviewItem, ReviewKind, ReviewState, User
    from egocrowd.labels import review, tasks
    from tests.labels.annotating import span

    staff, clips = scene
    answers = [[span(0, 1000, "open", "jar")], [span(200, 1400, "close", "jar")], [span(2000, 2900, "wipe", "table")]]
    with db.transaction() as s:
        s.get_one(Clip, clips[0]).campaign.annotation = {"enabled": True, "per_clip": 3}
    for spans in answers:
        person = annotator(db, staff)
        with db.transaction() as s:
            t = tasks.claim_task(s, s.get_one(User, person.id), campaign_id=None)
            tasks.submit(s, s.get_one(User, person.id), t.id, spans, now=t.claimed_at + timedelta(seconds=5))
    with db.transaction() as s:
        clip = s.get_one(Clip, clips[0])
        # what the aggregate stage leaves for a reviewer when the answers disagree
        clip.label_status, clip.agreement = (
            LabelStatus.review,
            {"alpha": 0.12, "mean_iou": 0.4, "annotators": 3, "round": 1},
        )
        s.add(
            Span(
                clip_id=clip.id,
                kind=SpanKind.consensus,
                start_ms=100,
                end_ms=1200,
                verb="open",
                noun="jar",
                confidence=0.4,
                support=2,
            )
        )
        s.add(
            Span(
                clip_id=clip.id,
                kind=SpanKind.consensus,
                start_ms=2000,
                end_ms=2900,
                verb="wipe",
                noun="table",
                confidence=0.2,
                support=1,
            )
        )
        item_id = review.open_item(s, clip, ReviewKind.spans, audience="platform").id
    page = log_in(chromium(), live.base, staff.email, PHONE)
    page.goto(f"/annotate/review/{item_id}")
    page.wait_for_selector("#an-stage[data-ready=yes]")
    assert page.locator(".an-lane.an-other").count() == 3
    assert page.locator(".an-row").count() == 2
    assert "Annotator 2:" in page.content() and "close jar" in page.content()
    look(page, "annotate-review")
    page.locator(".an-row").nth(1).get_by_role("button", name="Delete span").tap()
    page.fill(".an-row .an-end", "1.10")
    with page.expect_navigation():
        page.get_by_role("button", name="Save the fixed spans").tap()
    assert "labels are done" in page.content()
    assert page.get_by_role("button", name="Save the fixed spans").count() == 0
    with page.expect_navigation():  # a way back to the queue
        page.get_by_role("link", name="Back to the queue").tap()
    assert page.url.endswith("/review")
    with db.transaction() as s:
        item = s.get_one(ReviewItem, item_id)
        assert item.state is ReviewState.done and item.decision == "fixed"
        assert s.get_one(Clip, clips[0]).label_status is LabelStatus.done
        live_spans = s.scalars(
            sa.select(Span).where(Span.clip_id == clips[0], Span.superseded_at.is_(None), Span.kind != SpanKind.answer)
        ).all()
        assert [(x.kind, x.start_ms, x.end_ms, x.verb) for x in live_spans] == [(SpanKind.review, 100, 1100, "open")]


def _pseudo_pattern(msgid: str, **groups: str) -> str:
    """A regular expression for ``msgid`` as the pseudo-language shows it, its placeholders filled
    by anything matching ``groups``."""
    pattern = re.escape(pseudo(msgid))
    for name, inner in groups.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), inner)
    return pattern


def test_annotation_task_in_arabic_keeps_time_left_to_right_and_the_script_speaks_the_language(
    live, db, chromium, scene, monkeypatch
):
    """Issue #15: in Arabic the page is right-to-left, but the timeline is not mirrored (time zero on
    the left, a tap on its left third seeks to a third of the clip) while the controls around it
    follow the page. The script's own words (set after the page loaded) come from the translation
    table: in the pseudo-language every one of them is accented."""
    monkeypatch.setenv("EGOCROWD_PSEUDO_LOCALE", "1")  # the live server runs in this process
    staff, clips = scene
    a = annotator(db, staff)
    page = log_in(chromium(), live.base, a.email, PHONE)
    _claim(page)
    direction = "el => getComputedStyle(el).direction"

    page.context.add_cookies([{"name": "lang", "value": "ar", "url": live.base}])
    page.reload()
    page.wait_for_selector("#an-stage[data-ready=yes]")
    assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
    timeline = page.locator("#an-timeline")
    assert timeline.get_attribute("dir") == "ltr" and timeline.evaluate(direction) == "ltr"
    assert page.locator("#an-lane-mine").evaluate(direction) == "ltr"
    assert page.locator("#an-video").evaluate(direction) == "ltr"
    for around in (".an-buttons", "#an-rows-help", "#an-form", "h1"):
        assert page.locator(around).evaluate(direction) == "rtl", around
    box = timeline.bounding_box()
    timeline.tap(position={"x": box["width"] / 3, "y": box["height"] / 2})
    until(page, "Math.abs(document.querySelector('video').currentTime - 1.0) < 0.15")
    head = page.locator("#an-playhead").bounding_box()
    assert abs(head["x"] - (box["x"] + box["width"] / 3)) < 6  # drawn where time 1 s is: a third from the left
    with i18n.using("ar"):  # the buttons by their Arabic names: the catalog's words reached the page
        arabic = {name: i18n.gettext(name) for name in ("Mark start", "+1 s", "Mark end", "Add span")}
    assert arabic["Mark start"] != "Mark start"
    for name in ("Mark start", "+1 s", "Mark end", "Add span"):
        page.get_by_role("button", name=arabic[name], exact=True).tap()
    bar = page.locator("#an-lane-mine .an-bar").bounding_box()
    assert abs(bar["x"] - (box["x"] + box["width"] / 3)) < 6 and bar["width"] > box["width"] / 4
    look(page, "annotate-task-ar")

    page.context.add_cookies([{"name": "lang", "value": "en-XA", "url": live.base}])
    page.reload()
    page.wait_for_selector("#an-stage[data-ready=yes]")
    assert page.evaluate("document.documentElement.dir") == "ltr"
    assert page.locator("#an-rows-help").inner_text() == pseudo(
        "No spans yet: mark a start and an end on the video, then Add span."
    )
    assert page.locator("#an-marked").inner_text() == pseudo("Marked: none")
    seek(page, 0.5)
    page.get_by_role("button", name=pseudo("Mark start")).click()
    seconds = _pseudo_pattern("{seconds} s", seconds=r"\d\.\d\d")
    assert re.fullmatch(
        _pseudo_pattern("Marked: {start} to {end}", start=seconds, end="–"), page.locator("#an-marked").inner_text()
    )
    seek(page, 1.5)
    page.get_by_role("button", name=pseudo("Mark end")).click()
    page.get_by_role("button", name=pseudo("Add span")).click()
    assert page.locator(".an-row legend").inner_text() == pseudo("Span {n}").format(n=1)
    assert page.locator("#an-rows-help").inner_text() == pseudo("Times in seconds, like 1.5: type them or nudge them.")
    for words in ("Start −0.1 s", "End +0.1 s", "Play span", "Delete span"):
        assert page.get_by_role("button", name=words, exact=True).count() == 0, words
        assert page.get_by_role("button", name=pseudo(words), exact=True).count() == 1, words
    title = page.locator("#an-lane-mine .an-bar").get_attribute("title")
    assert re.fullmatch(_pseudo_pattern("{label} {start}–{end} s", label=".+", start=r"0\.50", end=r"1\.50"), title), (
        title
    )
    page.get_by_role("button", name=pseudo("Play"), exact=True).click()
    until(page, "!document.querySelector('video').paused")
    # the 'play' event (which relabels the button) comes a moment after paused turns false
    until(page, f"document.querySelector('#an-play').textContent === {json.dumps(pseudo('Pause'))}")
