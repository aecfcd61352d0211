"""A campaign's review and annotation settings on the lab's form (one builder for every settings
group: selects, checkboxes, bounded number inputs), in words on the campaign page, and the rule of
what a live campaign may still change: the lab's quality control may change, nothing against people."""

from __future__ import annotations

import pytest

from tests.platform.helpers import API, campaign_body, db_of, fund, make_user, publish_consent
from tests.platform.test_access import page_login
from tests.platform.test_campaigns import _form


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab R")


def _cid(r) -> int:
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("/")[2].split("?")[0])


def test_review_and_annotation_sections_on_the_form_and_the_page(client, lab):
    token = page_login(client, lab)
    page = client.get("/campaigns/new").text
    assert 'id="sec-review">Review' in page and 'id="sec-annotation">Annotation' in page
    assert '<option value="platform" selected>Platform reviewers</option>' in page
    assert 'id="review_sample_fraction" name="review_sample_fraction" type="number" value="1"' in page
    assert 'step="any"' in page.split('id="review_sample_fraction"')[1].split(">")[0]
    days = page.split('id="review_auto_accept_days"')[1].split(">")[0]
    assert 'step="1"' in days and 'min="1"' in days and 'max="30"' in days
    assert 'id="annotation_enabled" name="annotation_enabled"' in page
    # a number out of bounds: the error sits next to its field, the input is kept
    r = client.post("/campaigns/new", data={**_form(review_sample_fraction="1.5"), "csrf_token": token})
    assert r.status_code == 422 and 'id="review_sample_fraction-error">' in r.text
    assert 'value="1.5"' in r.text
    r = client.post(
        "/campaigns/new",
        data={
            **_form(
                review_reviewers="both",
                review_sample_fraction="0.25",
                review_auto_accept_days="5",
                review_pay_cents="15",
                review_redaction_pay_cents="40",
                annotation_enabled="on",
                annotation_per_clip="4",
            ),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    cid = _cid(r)
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["review"] == {
        "reviewers": "both",
        "sample_fraction": 0.25,
        "auto_accept_days": 5,
        "pay_cents": 15,
        "redaction_pay_cents": 40,
    }
    assert c["annotation"]["enabled"] is True and c["annotation"]["per_clip"] == 4
    shown = client.get(f"/campaigns/{cid}").text
    assert "looks at 25% of the clips" in shown and "within 5 days is accepted" in shown
    assert "labelled by 4 annotators" in shown
    edit = client.get(f"/campaigns/{cid}/edit").text
    assert '<option value="both" selected>' in edit and 'value="0.25"' in edit


def test_a_live_campaign_may_change_review_settings_only_fairly(client, lab):
    c = client.post(
        f"{API}/campaigns",
        json=campaign_body(
            review={"auto_accept_days": 5, "pay_cents": 10, "redaction_pay_cents": 30},
            annotation={"enabled": True, "pay_cents": 20},
        ),
        headers=lab.headers,
    ).json()
    cid = c["id"]
    fund(db_of(client), cid)
    assert client.post(f"{API}/campaigns/{cid}/status", json={"status": "open"}, headers=lab.headers).status_code == 200

    def patch(body):
        return client.patch(f"{API}/campaigns/{cid}", json=body, headers=lab.headers)

    r = patch({"review": {"auto_accept_days": 9, "pay_cents": 10}})
    assert r.status_code == 409 and r.json()["code"] == "campaign.unfair_change"
    r = patch({"review": {"auto_accept_days": 5, "pay_cents": 5}})  # reviewers' pay only goes up
    assert r.status_code == 409 and r.json()["field"] == "review.pay_cents"
    r = patch({"review": {"auto_accept_days": 5, "pay_cents": 10, "redaction_pay_cents": 29}})  # nor redaction's
    assert r.status_code == 409 and r.json()["field"] == "review.redaction_pay_cents"
    r = patch({"annotation": {"enabled": True, "pay_cents": 10}})
    assert r.status_code == 409 and r.json()["code"] == "campaign.unfair_change"
    fair = {
        "reviewers": "requester",
        "sample_fraction": 0.5,
        "auto_accept_days": 2,
        "pay_cents": 10,
        "redaction_pay_cents": 35,
    }
    r = patch({"review": fair})
    assert r.status_code == 200, r.text
    assert r.json()["review"] == fair
    r = patch({"annotation": {"enabled": True, "per_clip": 5, "pay_cents": 30}})
    assert r.status_code == 200 and r.json()["annotation"]["per_clip"] == 5
    # the page form too: a live campaign's review section is not locked
    token = page_login(client, lab)
    edit = client.get(f"/campaigns/{cid}/edit").text
    assert 'id="review_sample_fraction" name="review_sample_fraction" type="number" value="0.5"' in edit
    assert "disabled" not in edit.split('id="review_sample_fraction"')[1].split(">")[0]
    assert "disabled" in edit.split('id="privacy_face_mode"')[1].split(">")[0]
    form = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={
            **_form(
                title=form["title"],
                target_clips="5",  # as it is: a bigger target would need a bigger budget
                review_reviewers="both",
                review_sample_fraction="0.5",
                review_auto_accept_days="2",
                review_pay_cents="10",
                review_redaction_pay_cents="35",  # as the form shows it: never lowered while live
                annotation_enabled="on",
                annotation_per_clip="5",
                annotation_pay_cents="30",
            ),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["review"]["reviewers"] == "both"


def test_the_campaign_setting_names_the_review_audiences():
    from typing import get_args

    from egocrowd.campaigns.schema import ReviewSettings
    from egocrowd.db.models import REVIEW_AUDIENCES

    # the schema spells them out (a Literal), the review queue and the policy use the constants
    assert get_args(ReviewSettings.model_fields["reviewers"].annotation) == REVIEW_AUDIENCES
