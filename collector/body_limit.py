"""ASGI middleware that answers 413 to a request body larger than the limit, before any parsing,
and 503 (retry shortly) while too many bytes of request bodies are already being handled.

Why a budget for bytes in flight: after an outage every agent comes back at once with its spool
(bench/trust.py: 2,000 agents with 20 events each), and each upload's body is held, decoded and
parsed while it is stored. Unbounded, the collector's memory grows with the number of agents
(2.3 GB for one instance in that storm) until the machine swaps or kills it. Over the budget an
upload is answered 503 with ``Retry-After``, which the agent treats as "keep the spool and try
again" (agent/uplink.py), so nothing is lost: the storm drains at the speed the collector can
store, in bounded memory. One request alone is always let in (within ``max_bytes``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BodyLimitMiddleware"]

Scope = dict[str, Any]


class BodyLimitMiddleware:
    """Reject bodies over ``max_bytes``: by Content-Length up front, else while streaming in;
    defer (503) a body that would take the bytes being handled over ``max_inflight_bytes``."""

    def __init__(self, app: Any, max_bytes: int, max_inflight_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_inflight_bytes = max_inflight_bytes
        self.inflight = 0  # bytes of bodies being handled now (one event loop: no lock needed)
        self.deferred = 0  # requests answered 503 for the budget since start

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        if declared is not None:
            if self.max_inflight_bytes is not None and self.inflight > 0 \
                    and self.inflight + declared > self.max_inflight_bytes:
                self.deferred += 1
                # Read the body and drop it, chunk by chunk, so the agent gets the answer
                # cleanly and keeps its connection: closing mid-upload made agents (and
                # bench/trust.py) see a reset and reconnect, and a new TLS handshake per retry
                # cost more CPU than the uploads themselves.
                if await _discard_body(receive):
                    await _busy(send)
                return
            self.inflight += declared
            try:
                await self.app(scope, receive, send)
            finally:
                self.inflight -= declared
            return
        # Chunked or undeclared: read it here, within the limit, then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body is larger than {limit} bytes: send a smaller batch",
                       "code": "too-large"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def _discard_body(receive: Any) -> bool:
    """Receive the request body without keeping it; False if the client went away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        if not message.get("more_body", False):
            return True


async def _busy(send: Any) -> None:
    body = json.dumps({"detail": "the collector is receiving many uploads at once: keep the "
                                 "events and retry shortly", "code": "busy"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", b"2")]})
    await send({"type": "http.response.body", "body": body})
