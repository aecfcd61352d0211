"""A campaign's title and instructions in other languages (Campaign.translations, issue #15): the
schema's rules, the API, the form's per-language pairs, what a worker reads in their language, and
the deadline entered in the viewer's time zone."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from egocrowd.db.models import User
from tests.platform.helpers import (
    API,
    assert_problem,
    campaign_body,
    create_campaign,
    make_user,
    open_campaign,
    publish_consent,
)
from tests.platform.test_access import page_login
from tests.platform.test_campaigns import _form

FR = {"title": "Plier un T-shirt", "instructions": "Pliez un T-shirt sur une table, les deux mains visibles."}


def _set(db, actor, **values) -> None:
    with db.transaction() as s:
        u = s.get(User, actor.id)
        for k, v in values.items():
            setattr(u, k, v)


def test_api_keeps_translations_and_refuses_unknown_languages(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab T")
    c = create_campaign(client, lab, translations={"fr": FR})
    assert c["translations"] == {"fr": FR}
    assert client.get(f"{API}/campaigns/{c['id']}", headers=lab.headers).json()["translations"] == {"fr": FR}
    for bad in (
        {"xx": FR},  # not a language egocrowd ships
        {"en-XA": FR},  # the developers' pseudo-language is no language to write in
        {"fr": {"title": "ab", "instructions": FR["instructions"]}},  # as short as the main title may not be
        {"fr": {"title": FR["title"], "instructions": "x" * 20001}},
        {"fr": {"title": FR["title"]}},  # a pair: both or none
        {"fr": {**FR, "language": "fr"}},  # no other key
    ):
        r = client.post(f"{API}/campaigns", json=campaign_body(translations=bad), headers=lab.headers)
        body = assert_problem(r, 422, "validation.failed")
        assert any("translations" in (e["field"] or "") for e in body["errors"]), (bad, body)
    # a live campaign may still change its wording, translations included (they are not the deal)
    live = open_campaign(client, lab, db=db)
    r = client.patch(f"{API}/campaigns/{live['id']}", json={"translations": {"sw": FR}}, headers=lab.headers)
    assert r.status_code == 200 and r.json()["translations"] == {"sw": FR}, r.text
    r = client.patch(f"{API}/campaigns/{live['id']}", json={"translations": {}}, headers=lab.headers)
    assert r.status_code == 200 and r.json()["translations"] == {}
    assert_problem(
        client.patch(f"{API}/campaigns/{live['id']}", json={"translations": None}, headers=lab.headers),
        422,
        "validation.failed",
    )


def test_form_saves_each_language_and_says_what_is_wrong(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab F")
    token = page_login(client, lab)
    r = client.get("/campaigns/new")
    for code in ("fr", "pt", "es", "sw", "hi", "ar"):
        assert f'name="tr_{code}_title"' in r.text and f'name="tr_{code}_instructions"' in r.text
    assert 'name="tr_en_title"' not in r.text  # the main text is the campaign's own
    # half a pair: the missing half is named next to its field, the rest of the form is kept
    r = client.post(
        "/campaigns/new", data={**_form(tr_fr_title=FR["title"]), "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 422 and 'href="#tr_fr_instructions"' in r.text
    assert 'id="tr_fr_instructions-error">Please fill this in.' in r.text
    assert f'value="{FR["title"]}"' in r.text and "<details" in r.text
    data = {
        **_form(tr_fr_title=FR["title"], tr_fr_instructions=FR["instructions"], tr_ar_title=" "),
        "csrf_token": token,
    }
    r = client.post("/campaigns/new", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].split("/")[2].split("?")[0])
    assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["translations"] == {"fr": FR}
    page = html.unescape(client.get(f"/campaigns/{cid}/edit").text)
    assert f'value="{FR["title"]}"' in page and FR["instructions"] in page
    # emptying a pair removes that language
    data = {**_form(tr_fr_title="", tr_fr_instructions=""), "csrf_token": token}
    assert client.post(f"/campaigns/{cid}/edit", data=data, follow_redirects=False).status_code == 303
    assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["translations"] == {}


def test_workers_read_their_language_else_the_main_text(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab W")
    c = open_campaign(client, lab, db=db, translations={"fr": FR})
    worker = make_user(db, "worker")
    page_login(client, worker)
    # English: the main text, no note
    page = html.unescape(client.get(f"/campaigns/{c['id']}").text)
    assert c["instructions"] in page and FR["instructions"] not in page and 'id="text-language"' not in page
    # French: the lab's French, said so
    _set(db, worker, language="fr")
    page = html.unescape(client.get(f"/campaigns/{c['id']}").text)
    assert FR["instructions"] in page and FR["title"] in page and c["instructions"] not in page
    assert 'id="text-language"' in page and "Français" in page
    listing = html.unescape(client.get("/campaigns").text)
    assert FR["title"] in listing and c["title"] not in listing
    # Portuguese, which the lab did not write: the main text, and a note that says so
    _set(db, worker, language="pt")
    page = html.unescape(client.get(f"/campaigns/{c['id']}").text)
    assert c["instructions"] in page and FR["instructions"] not in page and 'id="text-language"' in page


def test_deadline_is_entered_and_shown_in_the_viewers_zone(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab Z")
    _set(db, lab, time_zone="Africa/Nairobi")  # UTC+03:00, no daylight saving
    token = page_login(client, lab)
    assert "Africa/Nairobi" in client.get("/campaigns/new").text  # the field says whose clock it is
    r = client.post(
        "/campaigns/new", data={**_form(deadline_at="2031-01-31T18:00"), "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].split("/")[2].split("?")[0])
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    got = datetime.fromisoformat(c["deadline_at"].replace("Z", "+00:00"))
    assert got == datetime(2031, 1, 31, 15, 0, tzinfo=UTC)
    assert 'value="2031-01-31T18:00"' in client.get(f"/campaigns/{cid}/edit").text  # back in the same zone
    assert "Jan 31, 2031, 6:00 PM GMT+03:00" in client.get(f"/campaigns/{cid}").text.replace("\u202f", " ")
    # an edit that does not touch the deadline keeps it to the minute
    data = {**_form(deadline_at="2031-01-31T18:00", title="Pour water again"), "csrf_token": token}
    assert client.post(f"/campaigns/{cid}/edit", data=data, follow_redirects=False).status_code == 303
    assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["deadline_at"] == c["deadline_at"]
