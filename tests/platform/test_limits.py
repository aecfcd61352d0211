"""Request size limits: bodies (every route) and request heads (the server protocol)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from egocrowd.settings import Settings
from egocrowd.web.app import create_app
from egocrowd.web.limits import UPLOAD_BODY_BUFFER, BodyLimit, uvicorn_options
from tests.support.servers import LiveServer

TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def small_app(settings, db):
    return create_app(settings.model_copy(update={"max_body_kb": 16}), db)


def _routes(app):
    """Every (method, path) that takes a body, API and pages alike (the routers the app includes)."""
    from egocrowd.web.app import ROUTERS

    for router in ROUTERS:
        for route in router.routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method not in ("GET", "HEAD", "OPTIONS"):
                    yield method, route.path


def test_every_route_refuses_a_10_mb_body_before_parsing_it(small_app):
    path_ids = {
        "{campaign_id}": "1",
        "{assignment_id}": "1",
        "{record_id}": "1",
        "{clip_id}": "1",
        "{token_id}": "1",
        "{session_id}": "1",
        "{version}": "v1",
        "{user_id}": "1",
        "{org_id}": "1",
        "{notification_id}": "1",
        "{job_id}": "1",
        "{edit_id}": "1",
        "{task_id}": "1",
        "{item_id}": "1",
        "{qualification_id}": "1",
        "{flag_id}": "1",
        # pay and releases (#11, #12)
        "{country}": "KE",
        "{top_up_id}": "1",
        "{method_id}": "1",
        "{batch_id}": "1",
        "{appeal_id}": "1",
        "{release_id}": "1",
        "{access_id}": "1",
        "{notice_id}": "1",
        "{decision}": "accept",
        # training (#15)
        "{slug}": "record-kitchen",
        "{attempt_id}": "1",
        # robot evaluations (#19)
        "{battle_id}": "1",
        "{slot}": "a",
    }
    checked = 0
    with TestClient(small_app) as client:
        for method, path in _routes(small_app):
            if path.startswith("/api/v1/uploads"):
                continue  # tus bounds its own bodies (see test_upload_routes_are_exempt)
            for name, value in path_ids.items():
                path = path.replace(name, value)
            assert "{" not in path, f"add a value for the parameter in {path}"
            r = client.request(
                method, path, content=b"{" + b" " * TEN_MB + b"}", headers={"content-type": "application/json"}
            )
            assert r.status_code == 413, (method, path, r.status_code, r.text[:200])
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "http.too_large"
            checked += 1
    assert checked >= 10


def test_a_chunked_body_is_cut_off_at_the_limit(small_app):
    """No Content-Length: the server counts as it reads and answers 413 long before the end."""
    with (
        _serving(small_app, Settings(max_header_kb=32)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as s,
    ):
        s.sendall(
            b"POST /login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        chunk, sent, answer = b"10000\r\n" + b"x" * 65536 + b"\r\n", 0, b""
        s.setblocking(False)
        while sent < 64 * 1024 * 1024 and not answer:
            try:
                s.sendall(chunk)
                sent += 65536
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.01)
            try:
                answer = s.recv(65536)
            except BlockingIOError:
                pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"http.too_large"' in answer
    # Kernel socket buffers on loopback take several MB; the server itself stops at 16 KiB.
    assert sent < 24 * 1024 * 1024, f"{sent} bytes went in before the answer"


def test_small_bodies_pass(small_app):
    with TestClient(small_app) as client:
        r = client.post("/api/v1/auth/token", json={"email": "nobody@example.org", "password": "wrong-password"})
    assert r.status_code in (401, 404, 422)  # refused by the route, not by the size limit
    assert r.json()["code"] != "http.too_large"


def test_upload_routes_are_exempt():
    seen = {}

    async def echo(scope, receive, send):
        total = 0
        while True:
            m = await receive()
            total += len(m.get("body", b""))
            if not m.get("more_body"):
                break
        seen["bytes"] = total
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(BodyLimit(echo, max_body_bytes=1024))
    assert client.patch("/api/v1/uploads/abc", content=b"x" * 100_000).status_code == 204
    assert seen["bytes"] == 100_000
    assert client.patch("/api/v1/elsewhere", content=b"x" * 100_000).status_code == 413


# --- request heads ---------------------------------------------------------------------------------
async def _ok_app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _serving(app, settings):
    """``app`` on a real uvicorn server with the options ``egocrowd serve`` uses."""
    return LiveServer(app, lifespan="off", **uvicorn_options(settings))


@pytest.fixture
def head_limited_server():
    with _serving(_ok_app, Settings(max_header_kb=16)) as server:
        yield server.port


def _send(port: int, head_extra: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        method = b"POST" if body else b"GET"
        length = b"Content-Length: %d\r\n" % len(body) if body else b""
        request = method + b" / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + length + head_extra + b"\r\n" + body
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us mid-way: read what it answered
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_a_huge_header_is_refused_with_431(head_limited_server):
    answer = _send(head_limited_server, b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b'"code":"http.headers_too_large"' in answer


def test_normal_heads_and_large_bodies_in_one_read_pass(head_limited_server):
    assert _send(head_limited_server, b"X-Fine: " + b"a" * 8000 + b"\r\n").startswith(b"HTTP/1.1 200")
    # a small head with a 200 KB body, sent at once: only the head counts
    assert _send(head_limited_server, b"", body=b"y" * 200_000).startswith(b"HTTP/1.1 200")


def test_upload_bodies_are_read_ahead_further_than_other_bodies():
    """While the app is busy, an upload body keeps being read from the socket up to
    ``UPLOAD_BODY_BUFFER`` (bigger pieces: fewer wake-ups and copies per byte); any other body stops
    at uvicorn's 64 KiB. Both stay bounded."""
    pieces: dict[str, list[int]] = {}

    async def busy_reader(scope, receive, send):
        if scope["type"] != "http":
            return
        sizes = pieces.setdefault(scope["path"], [])
        while True:
            await asyncio.sleep(0.1)  # busy elsewhere: the client's bytes pile up meanwhile
            m = await receive()
            sizes.append(len(m.get("body", b"")))
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    body = b"x" * (3 << 20)
    with _serving(busy_reader, Settings()) as server:
        for path in ("/api/v1/uploads/0123", "/api/v1/elsewhere"):
            assert httpx.patch(server.base + path, content=body, timeout=60).status_code == 204
    upload, other = pieces["/api/v1/uploads/0123"], pieces["/api/v1/elsewhere"]
    assert sum(upload) == sum(other) == len(body)
    one_read = 256 << 10  # the most one socket read hands the protocol (uvloop and asyncio alike)
    assert max(other) <= (64 << 10) + one_read
    assert (64 << 10) + one_read < max(upload) <= UPLOAD_BODY_BUFFER + one_read
