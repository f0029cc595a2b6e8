"""The collector's budget for request bodies in flight (collector.body_limit): a reconnection
storm is answered 503 + Retry-After beyond it, so memory stays bounded and agents keep their
spools; one request alone always gets through. Driven as an ASGI app (no server needed: the
budget is the middleware's own arithmetic; tests/integration covers the 413 path over TLS)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from collector.body_limit import BodyLimitMiddleware
from tests.fixtures.loop import run_in_own_loop


class _Held:
    """An app that holds each request until released, as a slow database write would."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.entered += 1
        await receive()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def _post(app: Any, size: int) -> tuple[int, dict[str, str], bytes]:
    scope = {"type": "http", "method": "POST", "path": "/api/v1/events",
             "headers": [(b"content-length", str(size).encode())]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * size, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_uploads_beyond_the_budget_wait_with_503_and_nothing_is_held_after() -> None:
    async def run() -> None:
        inner = _Held()
        app = BodyLimitMiddleware(inner, max_bytes=1000, max_inflight_bytes=1500)
        first = asyncio.create_task(_post(app, 800))
        second = asyncio.create_task(_post(app, 600))
        while inner.entered < 2:
            await asyncio.sleep(0)
        assert app.inflight == 1400
        status, headers, body = await _post(app, 200)  # 1600 > 1500: deferred
        assert status == 503
        assert headers["retry-after"] == "2"
        assert "connection" not in headers  # the body was read: the agent keeps its connection
        assert json.loads(body)["code"] == "busy"
        assert app.deferred == 1 and inner.entered == 2
        inner.release.set()
        assert (await first)[0] == 200 and (await second)[0] == 200
        assert app.inflight == 0
        assert (await _post(app, 200))[0] == 200  # room again

    run_in_own_loop(run())


def test_one_upload_alone_passes_even_over_the_budget_and_size_still_gets_413() -> None:
    async def run() -> None:
        inner = _Held()
        inner.release.set()
        app = BodyLimitMiddleware(inner, max_bytes=1000, max_inflight_bytes=100)
        assert (await _post(app, 900))[0] == 200  # alone: never starved by a small budget
        status, _, body = await _post(app, 1001)
        assert status == 413 and json.loads(body)["code"] == "too-large"
        assert app.inflight == 0 and app.deferred == 0

    run_in_own_loop(run())


def test_a_failing_app_gives_its_bytes_back() -> None:
    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("database gone")

    async def run() -> None:
        app = BodyLimitMiddleware(broken, max_bytes=1000, max_inflight_bytes=1500)
        try:
            await _post(app, 500)
        except RuntimeError:
            pass
        else:
            raise AssertionError("the app's error should propagate")
        assert app.inflight == 0

    run_in_own_loop(run())
