"""Fixtures for the upload tests: the tus test app in a uvicorn thread or in its own process.

``server`` runs each test on both upload stores: the local directory and the shared one (records
in PostgreSQL, parts on moto's S3 or on a file:// volume; skipped without EGOCROWD_TEST_DATABASE_URL). ``local_server``
is for tests that look at the local store's files."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.uploads.helpers import ProcessServer, ThreadServer
from tests.uploads.tus_testapp import Shared


@pytest.fixture
def shared_store(request):
    """Where a shared store keeps its state: the session's PostgreSQL schema (its uploads table
    emptied, so no other test's uploads are recovered here) and a fresh bucket."""
    url = request.getfixturevalue("pg_schema_url")
    s3 = request.getfixturevalue("s3")
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM shared_uploads"))
    engine.dispose()
    return Shared(url, f"s3://{s3.new_bucket()}/blobs", s3.endpoint)


@pytest.fixture
def shared_volume(shared_store, tmp_path):
    """The shared store with its parts on a volume (file://): written in place and linked."""
    return Shared(shared_store.db_url, str(tmp_path / "volume"), "")


@pytest.fixture(params=["local", "shared", "shared_volume"])
def server(request, tmp_path):
    fixture = {"local": None, "shared": "shared_store", "shared_volume": "shared_volume"}[request.param]
    shared = request.getfixturevalue(fixture) if fixture else None
    with ThreadServer(tmp_path / "srv", shared=shared) as s:
        yield s


@pytest.fixture
def local_server(tmp_path):
    with ThreadServer(tmp_path / "srv") as s:
        yield s


@pytest.fixture
def process_server(tmp_path):
    s = ProcessServer(tmp_path / "srv")
    try:
        yield s
    finally:
        s.stop()
