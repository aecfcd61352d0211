"""The releases API: preview, cut (202 + Location, built in the background), list, show, manifest;
who may do what inside a lab and across labs."""

from __future__ import annotations

import hashlib

import pytest

from egocrowd.db.models import ClipStatus
from egocrowd.releases import builder
from tests.platform.helpers import API, assert_problem
from tests.releases.conftest import release_body

pytestmark = pytest.mark.usefixtures("tiny_formats")


def test_preview_cut_build_show_manifest(client, release_lab):
    lab = release_lab
    a = lab.clip(video=0)
    lab.clip(video=1, scopes=("record_hands",))  # no commercial use
    r = client.post(f"{API}/releases/preview", json={"licence_uses": ["commercial"]}, headers=lab.editor.headers)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["count"] == 1 and p["clip_ids"] == [a] and p["excluded_reasons"] == {"scope:commercial_use": 1}
    assert p["needed_scopes"] == ["commercial_use"]

    body = release_body(licence={"name": "Commercial", "terms": "t", "uses": ["commercial", "training"]})
    r = client.post(f"{API}/releases", json=body, headers=lab.editor.headers)
    assert r.status_code == 202, r.text
    rel = r.json()
    assert r.headers["location"] == f"/api/v1/releases/{rel['id']}"
    assert rel["status"] == "building" and rel["version"] == 1 and rel["clips"] == 1 and rel["files"] == 0
    assert rel["licence"]["uses"] == ["commercial", "training"]
    assert_problem(
        client.get(f"{API}/releases/{rel['id']}/manifest", headers=lab.owner.headers), 409, "release.not_published"
    )

    # the settings of these tests build in a worker, not in the server: build as the worker would
    assert builder.build_next(lab.db, lab.blobs, lab.settings).status.value == "published"
    shown = client.get(f"{API}/releases/{rel['id']}", headers=lab.viewer.headers).json()
    assert shown["status"] == "published" and shown["files"] == 4 and shown["root_hash"]
    assert shown["stats"]["clips"] == 1 and shown["progress"]["stage"] == "published"
    m = client.get(f"{API}/releases/{rel['id']}/manifest", headers=lab.viewer.headers)
    assert m.status_code == 200 and m.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(m.content).hexdigest() == shown["root_hash"] == m.headers["x-root-hash"]
    assert len(m.json()["files"]) == 3

    listed = client.get(f"{API}/releases", headers=lab.owner.headers).json()["items"]
    assert [x["id"] for x in listed] == [rel["id"]]
    # the next cut is version 2, and says what changed
    r = client.post(f"{API}/releases", json=body, headers=lab.owner.headers)
    assert r.status_code == 202 and r.json()["version"] == 2 and r.json()["previous_id"] == rel["id"]
    assert r.json()["changes"] == {"added": [], "withdrawn": [], "removed": []}


def test_who_may_do_what(client, release_lab):
    lab = release_lab
    lab.clip()
    body = release_body()
    # a viewer of the lab reads, never cuts; another lab sees nothing of it
    assert_problem(client.post(f"{API}/releases", json=body, headers=lab.viewer.headers), 403, "auth.forbidden")
    assert_problem(client.post(f"{API}/releases/preview", json={}, headers=lab.viewer.headers), 403, "auth.forbidden")
    r = client.post(f"{API}/releases", json=body, headers=lab.owner.headers)
    rid = r.json()["id"]
    assert client.get(f"{API}/releases/{rid}", headers=lab.viewer.headers).status_code == 200
    assert_problem(client.get(f"{API}/releases/{rid}", headers=lab.outsider.headers), 404, "release.not_found")
    assert_problem(client.get(f"{API}/releases/{rid}/manifest", headers=lab.outsider.headers), 404, "release.not_found")
    assert client.get(f"{API}/releases", headers=lab.outsider.headers).json()["items"] == []
    # another lab cannot cut from this lab's clips, even naming them
    assert_problem(
        client.post(f"{API}/releases", json={**body, "organization_id": lab.org_id}, headers=lab.outsider.headers),
        403,
        "auth.forbidden",
    )
    # an admin names the lab
    assert_problem(
        client.post(f"{API}/releases", json=body, headers=lab.admin.headers), 422, "release.organization_required"
    )
    r = client.post(
        f"{API}/releases", json={**body, "organization_id": lab.org_id, "name": "by-admin"}, headers=lab.admin.headers
    )
    assert r.status_code == 202 and r.json()["organization_id"] == lab.org_id
    assert {x["id"] for x in client.get(f"{API}/releases", headers=lab.admin.headers).json()["items"]} == {
        rid,
        r.json()["id"],
    }


def test_bad_input_gets_clear_errors(client, release_lab):
    lab = release_lab
    gone = lab.clip(status=ClipStatus.withdrawn)
    h = lab.owner.headers
    body = assert_problem(
        client.post(f"{API}/releases", json=release_body(selection={"clip_ids": [gone]}), headers=h),
        422,
        "release.clip_ineligible",
    )
    assert body["clips"] == [{"clip_id": gone, "reasons": ["withdrawn"]}]
    assert_problem(client.post(f"{API}/releases", json=release_body(), headers=h), 422, "release.empty")
    lab.clip()
    assert_problem(
        client.post(f"{API}/releases", json=release_body(formats={"nope": {}}), headers=h),
        422,
        "release.unknown_format",
    )
    for bad in (
        release_body(name="Not A Slug"),
        release_body(licence={"name": "L", "uses": ["resale"]}),
        release_body(licence={"name": "L", "uses": []}),
        release_body(selection={"min_duration_s": 30, "max_duration_s": 10}),
        release_body(selection={"recorded_from": "2026-02-01", "recorded_to": "2026-01-01"}),
        release_body(selection={"labels": ["open"]}),
        release_body(selection={"clip_ids": [2**31]}),
        release_body(unknown=1),
    ):
        assert_problem(client.post(f"{API}/releases", json=bad, headers=h), 422, "validation.failed")
