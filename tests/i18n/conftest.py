"""A demo world (``egocrowd demo``'s seed: campaigns, clips, a release, one login per role) that the
translation tests crawl page by page, in the pseudo-language and in every shipped language."""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest

SKIP_PREFIXES = ("/static/", "/api/", "/media/", "/vendor/")
#: pages that are files, not HTML, or that change state on GET (none should): never crawled
SKIP_PATTERNS = re.compile(
    r"/(download|file|files|video|thumb|frame|export|logout)(/|$|\?)|\.(mp4|webm|csv|json|zip|tar|png|jpg|svg)(\?|$)"
)


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory, monkeypatch_module):
    from egocrowd.blobs import BlobStore
    from egocrowd.db import Database
    from egocrowd.demo import seed
    from egocrowd.settings import Settings
    from egocrowd.web import create_app

    monkeypatch_module.setenv("EGOCROWD_PSEUDO_LOCALE", "1")
    data = tmp_path_factory.mktemp("demo")
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data}/demo.db",
        secret_key="test-secret-key-" + "x" * 32,
        run_pipeline_in_server=False,
    )
    db = Database(settings.db_url)
    db.upgrade()
    with db.transaction() as s:
        logins = seed(s, BlobStore(settings.blobs_path))
    app = create_app(settings, db)
    with db.transaction(write=False) as s:
        data = written_data(s)
    yield app, {role: (email, password) for email, password, role in logins}, data
    db.dispose()


def written_data(session) -> frozenset[str]:
    """Text people wrote into the demo world (shown as written in every language, never through
    gettext): what the page checker must not report."""
    import sqlalchemy as sa

    from egocrowd.db import models as m

    found: set[str] = set()
    columns = [
        m.Campaign.title,
        m.Campaign.instructions,
        m.Campaign.buyer_name,
        m.Organization.name,
        m.User.display_name,
        m.User.email,
        m.ConsentDocument.title,
        m.ConsentDocument.version,
        m.ConsentDocument.family,
        m.Release.name,
    ]
    for column in columns:
        found.update(v for v in session.scalars(sa.select(column)) if isinstance(v, str))
    for scopes in session.scalars(sa.select(m.ConsentDocument.scopes)):
        found.update(s.get("label", "") for s in scopes or [])
    for taxonomy in session.scalars(sa.select(m.Campaign.taxonomy)):
        for words in (taxonomy or {}).values():
            found.update(w for w in words if isinstance(w, str))
    return frozenset(" ".join(t.split()) for t in found if t)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def client_for(app, logins: dict, role: str | None, language: str):
    """A browser-like client of the demo app speaking ``language``, logged in as ``role``'s demo user."""
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://testserver")
    client.cookies.set("lang", language)
    client.cookies.set("tz", "Africa/Nairobi")
    if role is not None:
        page = client.get("/login")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        email, password = logins[role]
        r = client.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
    return client


def crawl(client, start: list[str], *, limit: int = 400, same_shape: int = 2):
    """Every HTML page reachable by GET links from ``start`` (breadth first, at most ``limit``),
    yielding (path, response). Pages that differ only by ids are visited ``same_shape`` times."""
    seen: set[str] = set()
    shapes: dict[str, int] = {}
    queue = deque(start)
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        shape = re.sub(r"\d+", "N", urlsplit(path).path)
        shapes[shape] = shapes.get(shape, 0) + 1
        if shapes[shape] > same_shape:
            continue
        r = client.get(path, follow_redirects=True)
        if "text/html" not in r.headers.get("content-type", ""):
            continue
        yield path, r
        for href in re.findall(r'href="([^"#]+)', r.text):
            url = urlsplit(urljoin("http://testserver" + path, href.replace("&amp;", "&")))
            if url.netloc != "testserver" or url.path.startswith(SKIP_PREFIXES):
                continue
            target = url.path + (f"?{url.query}" if url.query else "")
            if SKIP_PATTERNS.search(target) or target in seen:
                continue
            queue.append(target)
