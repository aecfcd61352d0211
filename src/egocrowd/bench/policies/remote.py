"""Policies served by another process, over HTTP or WebSocket, so a lab can plug in its own model.

Wire protocol (JSON, format_version 1; the same messages on both transports):

======================  ==============================================  ================================
request                 body                                            reply
======================  ==============================================  ================================
``GET  /info``          —                                               ``{"name", "version"}``
``POST /reset``         ``{"observation": {...}, "seed": int}``         ``{"ok": true}``
``POST /act``           ``{"observation": {...}}``                      ``{"action": "pick milk"}`` or
                                                                        ``{"action": {"verb", "target", "text"}}``
======================  ==============================================  ================================

Over WebSocket every message carries ``"type"``: ``"info"``, ``"reset"`` or ``"act"`` and the fields
above; replies come in order. Observations are the environment's dicts (with a ``"text"`` field for
language models). :func:`http_app` and :func:`serve_websocket` serve any :class:`Policy` this way;
they are what a lab wraps around its model, and what the tests run against.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from typing import Any

from egocrowd.bench.policies.base import Observation, Policy
from egocrowd.bench.sim.actions import Action, parse_action
from egocrowd.errors import EgocrowdError, InvalidInput

WIRE_FORMAT_VERSION = 1


class PolicyUnreachable(EgocrowdError):
    status = 502
    default_code = "bench.policy_unreachable"


def _action(reply: Any) -> Action:
    if not isinstance(reply, dict) or "action" not in reply:
        raise InvalidInput(
            f"remote policy replied without an 'action': {str(reply)[:200]}", code="bench.policy_bad_reply"
        )
    return parse_action(reply["action"])


class HttpPolicy(Policy):
    """A policy behind ``base_url`` (``/info``, ``/reset``, ``/act``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        import httpx  # ~120 ms, for every `egocrowd` command (bench.cli loads this module); only here

        self.url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)
        info = self._call("GET", "/info")
        self.registry_name = str(info.get("name", "remote"))
        self.registry_version = str(info.get("version", "unknown"))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx  # see __init__

        try:
            r = self._client.request(method, path, json=body)
            r.raise_for_status()
            return r.json()
        except httpx.HTTPStatusError as exc:
            raise PolicyUnreachable(f"{self.url}{path}: HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            raise PolicyUnreachable(f"{self.url}{path}: {exc}") from None
        except json.JSONDecodeError:
            raise InvalidInput(f"{self.url}{path}: reply is not JSON", code="bench.policy_bad_reply") from None

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        self._call("POST", "/reset", {"observation": observation, "seed": seed, "format_version": WIRE_FORMAT_VERSION})

    def act(self, observation: Observation) -> Action:
        return _action(self._call("POST", "/act", {"observation": observation}))

    def close(self) -> None:
        self._client.close()


class WebSocketPolicy(Policy):
    """A policy behind one WebSocket connection (lower latency per step than HTTP)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        from websockets.sync.client import connect  # websockets, ~70 ms for every `egocrowd` command

        self.url = url
        self._timeout = timeout
        self._stack = ExitStack()  # the connection is a context manager in every websockets version
        try:
            self._ws = self._stack.enter_context(connect(url, open_timeout=timeout, max_size=2**24))
        except (OSError, TimeoutError) as exc:
            raise PolicyUnreachable(f"{url}: {exc}") from None
        info = self._call({"type": "info"})
        self.registry_name = str(info.get("name", "remote"))
        self.registry_version = str(info.get("version", "unknown"))

    def _call(self, msg: dict[str, Any]) -> Any:
        from websockets.exceptions import WebSocketException  # see __init__

        try:
            self._ws.send(json.dumps(msg))
            raw = self._ws.recv(timeout=self._timeout)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise PolicyUnreachable(f"{self.url}: {exc}") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidInput(f"{self.url}: reply is not JSON", code="bench.policy_bad_reply") from None

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        self._call({"type": "reset", "observation": observation, "seed": seed, "format_version": WIRE_FORMAT_VERSION})

    def act(self, observation: Observation) -> Action:
        return _action(self._call({"type": "act", "observation": observation}))

    def close(self) -> None:
        self._stack.close()


# ---------------------------------------------------------------------------------------- servers


def _reply_action(a: Any) -> Any:
    return a.to_text() if isinstance(a, Action) else a


def http_app(policy: Policy) -> Any:
    """A FastAPI app serving ``policy`` over the HTTP wire protocol (run it with uvicorn)."""
    # FastAPI, ~0.6 s: and `egocrowd` (the worker too) must not load the web stack through bench.cli
    from fastapi import Body, FastAPI

    app = FastAPI(title=f"egocrowd policy: {policy.label[0]}")
    lock = threading.Lock()  # one session at a time per served policy instance

    @app.get("/info")
    def info() -> dict[str, Any]:
        name, version = policy.label
        return {"name": name, "version": version, "format_version": WIRE_FORMAT_VERSION}

    @app.post("/reset")
    def reset(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        with lock:
            policy.reset(body["observation"], seed=body.get("seed"))
        return {"ok": True}

    @app.post("/act")
    def act(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        with lock:
            return {"action": _reply_action(policy.act(body["observation"]))}

    return app


def serve_websocket(policy: Policy, host: str = "127.0.0.1", port: int = 0) -> Any:
    """A websockets server for ``policy``; call ``.serve_forever()`` (or run it in a thread).

    ``server.socket.getsockname()[1]`` is the port when ``port=0``.
    """
    from websockets.sync.server import serve  # see WebSocketPolicy.__init__

    def handler(ws: Any) -> None:
        for raw in ws:
            msg = json.loads(raw)
            typ = msg.get("type")
            if typ == "info":
                name, version = policy.label
                ws.send(json.dumps({"name": name, "version": version, "format_version": WIRE_FORMAT_VERSION}))
            elif typ == "reset":
                policy.reset(msg["observation"], seed=msg.get("seed"))
                ws.send(json.dumps({"ok": True}))
            elif typ == "act":
                ws.send(json.dumps({"action": _reply_action(policy.act(msg["observation"]))}))
            else:
                ws.send(json.dumps({"error": f"unknown message type {typ!r}"}))

    return serve(handler, host, port, max_size=2**24)
