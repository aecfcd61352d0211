"""Two `egocrowd serve` processes behind a real nginx (round robin, deploy/nginx.conf as shipped)
against one PostgreSQL and one S3 server (moto's), with nothing on disk in common: a session begun
on one server works on the other, a form's CSRF token from one is accepted by the other, the log-in
throttle counts failures on both, and an upload started on one resumes on the other, also after a
server is SIGKILLed in the middle of a PATCH (issue #20: shared uploads, each server its own upload
directory)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from egocrowd.db import Database, upgrade
from egocrowd.db.models import SharedUpload
from egocrowd.uploads.protocol import encode_metadata
from egocrowd.web.tus import CHECKPOINT_SECONDS
from tests.conftest import PG_URL
from tests.platform.helpers import PASSWORD, make_user
from tests.support.pg import private_schema
from tests.support.s3 import S3Server
from tests.support.servers import CLIENT_TIMEOUT, REPO, ServerProcess
from tests.support.world import World

TUS = {"Tus-Resumable": "1.0.0"}
UPSTREAM = "x-test-upstream"  # the test's own header: which server answered


def _nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A migrated schema of its own: the servers are separate processes and see only committed rows."""
    if not PG_URL:
        pytest.skip("several servers share one PostgreSQL: EGOCROWD_TEST_DATABASE_URL not set")
    with private_schema(PG_URL, "s") as url:
        upgrade(url)
        yield url


class Cluster:
    """The servers, the proxy in front of them, and a client of the proxy (on a Unix socket: no
    port to race other test processes for)."""

    def __init__(self, root: Path, url: str, s3: S3Server) -> None:
        self.root = root
        self.bucket = s3.new_bucket()
        shared = {
            "EGOCROWD_DATABASE_URL": url,
            "EGOCROWD_SECRET_KEY": "several-servers-" + "k" * 32,  # the same key on every server
            # blobs and unfinished uploads in the object store and the database; each server's
            # upload directory (data_dir/uploads) is scratch space of its own
            "EGOCROWD_BLOBS_URL": f"s3://{self.bucket}/blobs",
            "EGOCROWD_S3_ENDPOINT_URL": s3.endpoint,
            "EGOCROWD_S3_REGION": s3.region,
            "EGOCROWD_UPLOADS": "shared",
            "EGOCROWD_AUDIT_SIGNING_KEY": str(root / "shared" / "audit_signing_key.pem"),
            "EGOCROWD_RUN_PIPELINE_IN_SERVER": "false",
            "EGOCROWD_LOGIN_ATTEMPTS_PER_ACCOUNT": "4",
        }
        self.servers = [
            ServerProcess(
                "egocrowd.web.app:create_app",
                workdir=root / name,
                env={**shared, "EGOCROWD_DATA_DIR": str(root / name / "data")},
                ready_path="/healthz",
            )
            for name in ("one", "two")
        ]
        self.socket = root / "nginx.sock"
        self.nginx: subprocess.Popen | None = None

    def start(self) -> Cluster:
        for s in self.servers:
            s.start(timeout=90)
        site = (REPO / "deploy" / "nginx.conf").read_text()
        site = site.replace(
            "@UPSTREAMS@",
            "\n    ".join(f"server 127.0.0.1:{s.port} max_fails=1 fail_timeout=30s;" for s in self.servers),
        )
        site = site.replace("@LISTEN@", f"unix:{self.socket}")
        site = site.replace("# @TEST@", f"add_header {UPSTREAM} $upstream_addr always;")
        (self.root / "site.conf").write_text(site)
        (self.root / "nginx.conf").write_text(
            f"""daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {self.root}/nginx-access.log;
    client_body_temp_path {self.root}/body;
    proxy_temp_path {self.root}/proxy;
    fastcgi_temp_path {self.root}/fastcgi;
    uwsgi_temp_path {self.root}/uwsgi;
    scgi_temp_path {self.root}/scgi;
    include {self.root}/site.conf;
}}
"""
        )
        with open(self.root / "nginx-stderr.log", "wb") as log:  # the child keeps its own copy open
            self.nginx = subprocess.Popen(
                [_nginx(), "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start: " + (self.root / "nginx-stderr.log").read_text())
            time.sleep(0.05)
        return self

    def client(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://egocrowd.test", timeout=CLIENT_TIMEOUT
        )

    def port_of(self, r: httpx.Response) -> int:
        """The port of the server that answered ``r`` (the last one nginx tried)."""
        return int(r.headers[UPSTREAM].split(",")[-1].strip().rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait(10)
        for s in self.servers:
            s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, pg_url, s3) -> Iterator[Cluster]:
    nginx = _nginx()
    assert nginx
    c = Cluster(tmp_path_factory.mktemp("several"), pg_url, s3)
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture(scope="module")
def db(pg_url) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.dispose()


def _both(cluster: Cluster, send) -> list[httpx.Response]:
    """``send()`` until both servers have answered once (round robin: twice, unless one is down)."""
    seen: dict[int, httpx.Response] = {}
    for _ in range(6):
        r = send()
        seen.setdefault(cluster.port_of(r), r)
        if len(seen) == 2:
            return list(seen.values())
    raise AssertionError(f"only {sorted(seen)} answered")


def _csrf(http: httpx.Client) -> tuple[str, int]:
    r = http.get("/login")
    return re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1), r


def test_a_session_and_its_forms_work_on_every_server(cluster, db):
    worker = make_user(db, "worker", token=False)
    with cluster.client() as http:
        token, page = _csrf(http)
        r = http.post("/login", data={"email": worker.email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303, r.text  # logged in: on to the worker's home
        assert cluster.port_of(page) != cluster.port_of(r)  # the form from one server, posted to the other
        # the session cookie one server set is honoured by both
        for r in _both(cluster, lambda: http.get("/api/v1/me")):
            assert r.status_code == 200 and r.json()["email"] == worker.email
        # a form's CSRF token made by one server is accepted by the other: log out through the form
        token, page = _csrf(http)
        r = http.post("/logout", data={"csrf_token": token}, follow_redirects=False)
        assert cluster.port_of(r) != cluster.port_of(page)
        assert r.status_code in (302, 303), r.text
        assert http.get("/api/v1/me").status_code == 401


def test_the_login_throttle_counts_failures_on_every_server(cluster, db):
    worker = make_user(db, "worker", token=False)
    answered = set()
    with cluster.client() as http:
        for _ in range(4):  # EGOCROWD_LOGIN_ATTEMPTS_PER_ACCOUNT, spread over both servers
            r = http.post("/api/v1/auth/token", json={"email": worker.email, "password": "wrong password 1"})
            assert r.status_code == 401, r.text
            answered.add(cluster.port_of(r))
        assert len(answered) == 2
        for r in _both(
            cluster, lambda: http.post("/api/v1/auth/token", json={"email": worker.email, "password": PASSWORD})
        ):
            assert r.status_code == 429 and r.json()["code"] == "auth.throttled", r.text


def _offset(http: httpx.Client, url: str, headers: dict) -> int:
    r = http.head(url, headers={**TUS, **headers})
    assert r.status_code == 200, r.text
    return int(r.headers["Upload-Offset"])


def test_an_upload_resumes_on_another_server_and_survives_one_being_killed_mid_patch(cluster, db, qc_media):
    data = qc_media["good"].read_bytes()
    with cluster.client() as http:
        world = World.build(http, db)
        campaign = world.open_campaign()
        a = world.claim(campaign["id"])
        auth = world.worker.headers
        r = http.post(
            "/api/v1/uploads/",
            headers={
                **TUS,
                **auth,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": encode_metadata({"assignment": str(a["id"]), "filename": "clip.mp4"}),
            },
        )
        assert r.status_code == 201, r.text
        path = "/api/v1/uploads/" + r.headers["Location"].rstrip("/").rsplit("/", 1)[1]
        third = len(data) // 3
        patch_headers = {**TUS, **auth, "Content-Type": "application/offset+octet-stream"}

        def patch(start: int, end: int) -> httpx.Response:
            return http.patch(path, content=data[start:end], headers={**patch_headers, "Upload-Offset": str(start)})

        first = patch(0, third)
        assert first.status_code == 204, first.text
        second = patch(third, 2 * third)
        assert second.status_code == 204, second.text
        assert cluster.port_of(first) != cluster.port_of(second)  # the upload moved to the other server

        # One server is SIGKILLed in the middle of a PATCH sent straight to it, after a checkpoint
        # made part of that body durable and before the rest arrived.
        victim = cluster.servers[0]
        piece = third // 3
        sent = 2 * third

        def body() -> Iterator[bytes]:
            nonlocal sent
            yield data[sent : sent + piece]
            sent += piece
            time.sleep(CHECKPOINT_SECONDS + 0.5)
            yield data[sent : sent + piece]  # arrives after the checkpoint time: committed
            sent += piece
            time.sleep(2.0)  # the commit (part object, then row) finishes
            victim.kill()
            yield data[sent : sent + piece]  # never reaches anyone

        direct = httpx.Client(base_url=f"http://127.0.0.1:{victim.port}", timeout=CLIENT_TIMEOUT)
        with direct, pytest.raises(httpx.TransportError):
            direct.patch(path, content=body(), headers={**patch_headers, "Upload-Offset": str(2 * third)})

        offset = _offset(http, path, auth)  # asked of the server left
        assert 2 * third < offset <= sent  # the checkpoint survived; nothing past the durable bytes
        assert offset == 2 * third + 2 * piece
        last = patch(offset, len(data))
        assert last.status_code == 204, last.text
        assert cluster.port_of(last) != victim.port
        assert int(last.headers["Upload-Offset"]) == len(data)

        clips = http.get("/api/v1/clips", headers=auth).json()["items"]
        assert [c["sha256"] for c in clips] == [hashlib.sha256(data).hexdigest()]  # exactly one clip
        with db.transaction(write=False) as s:
            rows = s.execute(sa.select(SharedUpload.state, SharedUpload.parts)).all()
        assert [(state, parts) for state, parts in rows] == [("finished", [])]  # parts gone from the row too
        victim.start(timeout=90)  # back for the tests after this one
