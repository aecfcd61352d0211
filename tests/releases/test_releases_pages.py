"""The release pages without a script: the list, the form (preview, errors next to the fields, the
cut), the release's page while building, when published and when failed (tests/releases/
test_releases_browser.py walks them in Chromium)."""

from __future__ import annotations

import re

import pytest

from egocrowd.releases import builder
from tests.platform.test_access import page_login

pytestmark = pytest.mark.usefixtures("tiny_formats")


def _form(**over) -> dict:
    form = {"name": "jar-opening", "title": "Jar opening", "licence_name": "Research", "uses": ["training"]}
    form.update(over)
    return form


def test_pages_without_a_script(client, release_lab):
    lab = release_lab
    lab.clip(video=0)
    lab.clip(video=1, country="UG", scopes=("record_hands",))
    token = page_login(client, lab.owner)
    r = client.get("/releases")
    assert r.status_code == 200 and "No releases yet" in r.text and 'href="/releases/new"' in r.text
    r = client.get("/releases/new")
    assert r.status_code == 200 and 'data-count="2"' in r.text and "Open a screw-top jar" in r.text
    # preview: commercial use leaves the clip without that consent out, and says why
    r = client.post("/releases/new", data={**_form(uses=["commercial"]), "action": "preview", "csrf_token": token})
    assert r.status_code == 200 and 'data-count="1"' in r.text
    assert 'data-reason="scope:commercial_use"' in r.text and "did not allow commercial use" in r.text
    # mistakes come back next to the form, with what was typed
    r = client.post("/releases/new", data={**_form(name="Not a slug"), "action": "create", "csrf_token": token})
    assert r.status_code == 422 and 'id="form-errors"' in r.text and 'value="Not a slug"' in r.text
    r = client.post("/releases/new", data={**_form(clip_ids="999999"), "action": "create", "csrf_token": token})
    assert r.status_code == 422 and 'data-code="release.clip_ineligible"' in r.text
    # the cut, then its page while building and once published
    r = client.post("/releases/new", data={**_form(), "action": "create", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    where = r.headers["location"]
    assert re.fullmatch(r"/releases/\d+\?m=release_cut", where)
    r = client.get(where)
    assert 'id="build-progress"' in r.text and 'http-equiv="refresh"' in r.text and "being built" in r.text
    assert 'id="release-files"' not in r.text
    released = builder.build_next(lab.db, lab.blobs, lab.settings)
    r = client.get(where.split("?")[0])
    assert 'http-equiv="refresh"' not in r.text and released.root_hash in r.text
    assert 'data-path="manifest.json"' in r.text and 'data-path="copy/index.jsonl"' in r.text
    assert 'data-change="added">2 clips added' in r.text
    assert "Jar opening" in client.get("/releases").text
    # other labs see nothing of it; a viewer of the lab reads it but gets no form
    page_login(client, lab.outsider)
    assert client.get(where.split("?")[0]).status_code == 404
    page_login(client, lab.viewer)
    assert client.get(where.split("?")[0]).status_code == 200
    assert 'href="/releases/new"' not in client.get("/releases").text


def test_a_failed_build_says_why(client, release_lab):
    lab = release_lab
    lost = lab.clip(own_video=True)
    token = page_login(client, lab.owner)
    r = client.post("/releases/new", data={**_form(), "action": "create", "csrf_token": token}, follow_redirects=False)
    from egocrowd.db.models import Clip

    with lab.db.transaction(write=False) as s:
        lab.blobs.delete(s.get_one(Clip, lost).derived.sha256)
    builder.build_next(lab.db, lab.blobs, lab.settings)
    r = client.get(r.headers["location"].split("?")[0])
    assert 'data-code="release.blob_missing"' in r.text and f"clip {lost}" in r.text


def test_an_admin_names_the_lab(client, release_lab):
    lab = release_lab
    lab.clip()
    token = page_login(client, lab.admin)
    r = client.get("/releases/new")
    assert r.status_code == 200 and 'id="organization_id"' in r.text and "Name the lab" in r.text
    assert 'id="form-errors"' not in r.text
    form = {**_form(), "organization_id": str(lab.org_id), "csrf_token": token}
    r = client.post("/releases/new", data={**form, "action": "preview"})
    assert 'data-count="1"' in r.text
    r = client.post("/releases/new", data={**form, "action": "create"}, follow_redirects=False)
    assert r.status_code == 303
    assert "Release Lab" in client.get(r.headers["location"]).text
