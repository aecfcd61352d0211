"""A campaign's privacy settings on the lab's form (issue #9): the inputs come from PrivacySettings,
the sound rule's error sits next to the Sound choice and the input is kept, the campaign page says
in plain words what workers and bystanders can expect, and a live campaign keeps its settings."""

from __future__ import annotations

import pytest

from tests.platform.helpers import API, db_of, fund, make_user, publish_consent
from tests.platform.test_access import page_login
from tests.platform.test_campaigns import _form


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab P")


def _cid(r) -> int:
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("/")[2].split("?")[0])


def test_privacy_settings_on_the_form_and_the_campaign_page(client, lab):
    token = page_login(client, lab)
    page = client.get("/campaigns/new").text
    assert 'id="sec-privacy">Privacy' in page
    assert '<label for="privacy_face_mode">Faces</label>' in page
    assert 'value="blur" selected' in page and 'value="drop" selected' in page and 'value="date" selected' in page
    assert 'id="privacy_blur_text" name="privacy_blur_text" checked' in page
    # Sound kept without the data use "audio": the error is next to the Sound choice, input kept.
    r = client.post(
        "/campaigns/new", data={**_form(privacy_audio="keep", privacy_face_mode="fill"), "csrf_token": token}
    )
    assert r.status_code == 422
    assert 'href="#privacy_audio"' in r.text and 'id="privacy_audio-error">' in r.text
    # It names the checkbox to tick by its label on this form, not only by the API's key "audio".
    assert "data use" in r.text.split('id="privacy_audio-error">')[1].split("<")[0]
    assert "Keep the sound recorded with the video" in r.text.split('id="privacy_audio-error">')[1].split("<")[0]
    assert 'value="keep" selected' in r.text and 'value="fill" selected' in r.text
    r = client.post(
        "/campaigns/new",
        data={
            **_form(privacy_audio="mute_speech", privacy_face_mode="fill", use_audio="on", privacy_blur_text="on"),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    cid = _cid(r)
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["privacy"] == {"face_mode": "fill", "blur_text": True, "audio": "mute_speech", "recording_time": "date"}
    shown = client.get(f"/campaigns/{cid}").text
    assert "covered with a solid block" in shown and "speech muted" in shown and "only the recording date" in shown
    assert "Readable text (screens, letters, labels, addresses) is blurred." in shown
    # The edit form shows the saved settings; a draft's patch that breaks the sound rule says so there.
    edit = client.get(f"/campaigns/{cid}/edit").text
    assert 'value="fill" selected' in edit and 'value="mute_speech" selected' in edit
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**_form(privacy_audio="keep", privacy_face_mode="fill"), "csrf_token": token},
    )
    assert r.status_code == 422 and 'id="privacy_audio-error">' in r.text
    api = client.patch(f"{API}/campaigns/{cid}", json={"data_use": {"audio": False}}, headers=lab.headers)
    assert api.status_code == 422 and api.json()["code"] == "campaign.sound_not_covered"


def test_a_live_campaign_keeps_its_privacy_settings(client, lab):
    token = page_login(client, lab)
    cid = _cid(
        client.post(
            "/campaigns/new", data={**_form(privacy_blur_text="on"), "csrf_token": token}, follow_redirects=False
        )
    )
    fund(db_of(client), cid)
    assert (
        client.post(
            f"/campaigns/{cid}/status", data={"status": "open", "csrf_token": token}, follow_redirects=False
        ).status_code
        == 303
    )
    edit = client.get(f"/campaigns/{cid}/edit").text
    assert 'id="privacy_face_mode" name="privacy_face_mode" disabled' in edit and "privacy settings stay" in edit
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**_form(title="Pour water, slowly", privacy_face_mode="fill"), "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["title"] == "Pour water, slowly" and c["privacy"]["face_mode"] == "blur"
    api = client.patch(f"{API}/campaigns/{cid}", json={"privacy": {"face_mode": "fill"}}, headers=lab.headers)
    assert (
        api.status_code == 409 and api.json()["code"] == "campaign.frozen_field" and "privacy" in api.json()["detail"]
    )
    assert (
        "blurred so they cannot be recognised"
        in client.get(f"/campaigns/{cid}", headers=make_user(client.app.state.db, "worker").headers).text
    )
