"""Static and vendor files behind content-hashed URLs, compression, cache headers, HEAD and the favicon."""

from __future__ import annotations

import gzip
import hashlib
import re

import pytest
from tusclient import client as tus

from egocrowd.settings import Settings
from egocrowd.web import create_app
from egocrowd.web.app import HERE, vendor_dir

STATIC = HERE / "static"
GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


def _asset_url(client, path: str) -> str:
    """The URL the landing page writes for ``path`` (with its hash)."""
    m = re.search(re.escape(path) + r"\?v=[0-9a-f]{12}", client.get("/").text)
    assert m, f"{path} is not linked with its hash"
    return m.group(0)


def test_static_urls_carry_the_files_hash_and_are_kept_a_year(client):
    url = _asset_url(client, "/static/app.css")
    body = (STATIC / "app.css").read_bytes()
    assert url.endswith("?v=" + hashlib.sha256(body).hexdigest()[:12])

    r = client.get(url, headers=IDENTITY)
    assert r.status_code == 200 and r.content == body
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert int(r.headers["content-length"]) == len(body)


@pytest.mark.parametrize("query", ["", "?v=000000000000", "?v="])
def test_a_url_without_the_current_hash_is_kept_briefly(client, query):
    r = client.get("/static/app.css" + query)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=300"


def test_static_files_are_sent_gzipped_to_who_asks_and_revalidate(client):
    url = _asset_url(client, "/static/app.css")
    raw = client.get(url, headers=IDENTITY)
    packed = client.get(url, headers=GZIP)
    assert "content-encoding" not in raw.headers
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert packed.content == raw.content  # httpx decodes: the same file
    assert int(packed.headers["content-length"]) < len(raw.content) / 2
    assert packed.headers["etag"] != raw.headers["etag"]  # two representations, two ETags

    again = client.get(url, headers={**GZIP, "If-None-Match": packed.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["cache-control"] == packed.headers["cache-control"]


def test_vendor_files_are_the_listed_ones_only(client):
    tus_js = client.get("/vendor/tus-js-client/dist/tus.min.js", headers=IDENTITY)
    assert tus_js.status_code == 200 and tus_js.headers["content-type"].startswith("text/javascript")
    assert tus_js.content == (vendor_dir(client.app.state.settings) / "tus-js-client/dist/tus.min.js").read_bytes()
    for path in ("/vendor/tus-js-client/package.json", "/vendor/swagger-ui-dist/index.html", "/static/../app.py"):
        assert client.get(path).status_code == 404, path


def test_pages_are_compressed_and_never_kept_by_shared_caches(client):
    r = client.get("/signup", headers=GZIP)
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["cache-control"] == "no-cache, private"
    assert int(r.headers["content-length"]) < len(r.content)


def test_small_answers_and_binary_ones_are_not_compressed(client):
    small = client.get("/api/v1/health", headers=GZIP)
    assert small.status_code == 200 and len(small.content) < 1024
    assert "content-encoding" not in small.headers
    assert "cache-control" not in small.headers  # the API decides its own caching

    icon = client.get("/favicon.ico", headers=GZIP)  # SVG under 1 KiB: sent as it is
    assert "content-encoding" not in icon.headers


def test_large_api_answers_are_compressed(client):
    r = client.get("/api/v1/openapi.json", headers=GZIP)
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(r.content) / 3


def test_compression_and_caching_can_be_turned_off(settings, db):
    from fastapi.testclient import TestClient

    settings.compress_responses = False
    settings.cache_static = False
    with TestClient(create_app(settings, db)) as client:
        url = _asset_url(client, "/static/app.css")
        css = client.get(url, headers=GZIP)
        assert "content-encoding" not in css.headers and css.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in client.get("/signup", headers=GZIP).headers


def test_head_on_a_page_answers_like_get_without_the_body(live):
    browser = live.client()  # keeps the session cookie: the same page twice
    browser.get("/")
    for path, headers in (("/", GZIP), ("/signup", IDENTITY), ("/static/app.css", GZIP)):
        get = browser.get(path, headers=headers)
        head = browser.head(path, headers=headers)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        for name in ("content-type", "content-length", "content-encoding", "cache-control"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
    assert browser.head("/no-such-page").status_code == 404
    browser.close()


def test_the_favicon_is_ours(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.content == (STATIC / "favicon.svg").read_bytes()
    assert _asset_url(client, "/static/favicon.svg")  # and linked from every page


def test_tus_uploads_pass_through_unencoded(live, world, tmp_path):
    """A real tuspy upload still works, and no answer of the tus endpoint is re-encoded, even when the
    client accepts gzip and the bytes compress well."""
    campaign = world.open_campaign(requirements={"max_upload_mb": 5})
    assignment = world.claim(campaign["id"])
    data = b"egocrowd " * 40_000  # 360 KB that gzip would shrink a hundredfold
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)

    uploader = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers).uploader(
        str(path), chunk_size=128 * 1024, metadata={"assignment": str(assignment["id"])}
    )
    uploader.upload_chunk()
    assert uploader.offset == 128 * 1024

    headers = {**world.worker.headers, **GZIP, "Tus-Resumable": "1.0.0"}
    with live.client() as http:
        head = http.head(uploader.url, headers=headers)
        patch = http.patch(
            uploader.url,
            content=data[128 * 1024 :],
            headers={**headers, "Upload-Offset": str(128 * 1024), "Content-Type": "application/offset+octet-stream"},
        )
    assert head.status_code == 200 and head.headers["upload-offset"] == str(128 * 1024)
    # the bytes are not a video: finishing refuses them, but the tus layer took every byte as sent
    for r in (head, patch):
        assert "content-encoding" not in r.headers, r.headers
        assert "gzip" not in r.headers.get("vary", "").lower()
    assert patch.status_code in (204, 422), patch.text


def test_templates_link_files_only_through_asset():
    """A bare /static/… link would miss the year-long cache (and keep an old file after a release)."""
    for template in (HERE / "templates").rglob("*.html"):
        bare = re.findall(r"""(?:src|href)=["']/(?:static|vendor)/[^"']*""", template.read_text())
        assert not bare, f"{template.name}: write {{{{ asset('/static/…') }}}} instead of {bare}"


def test_every_asset_a_template_names_exists():
    names = set()
    for template in (HERE / "templates").rglob("*.html"):
        names |= set(re.findall(r"asset\('([^']+)'\)", template.read_text()))
    assert "/static/app.css" in names
    for name in names:
        prefix, _, rest = name.partition("/")[2].partition("/")
        root = STATIC if prefix == "static" else vendor_dir(Settings())
        assert (root / rest).is_file(), name


def test_gzip_bodies_are_real_gzip(client):
    url = _asset_url(client, "/static/app.css")
    with client.stream("GET", url, headers=GZIP) as raw:  # the bytes as sent, not decoded by httpx
        wire = b"".join(raw.iter_raw())
    assert gzip.decompress(wire) == (STATIC / "app.css").read_bytes()
