"""The soak engine: many simulated agents against a real collector, on loopback only.

Each simulated agent is what the real uplink does on the wire: its own HTTPS connection pinned
to the collector's certificate, a heartbeat every ``heartbeat_s`` and, every ``event_every_s``,
a batch of freshly sealed events; both with jitter so the agents do not march in step. While
they run, the collector process's resident memory is sampled once a second.

The heartbeat (4 s +- 20 %) stays under uvicorn's 5 s keep-alive timeout on purpose: a request
sent on a kept-alive connection at the very moment the server closes it for idleness fails at
the transport level (RemoteProtocolError), a race inherent to HTTP keep-alive that the real
agent absorbs by retrying. At a 5 s cadence the simulation hit it ~50 times in 2 minutes; at
4 s it still happens now and then, when this process's event loop lags (200 agents and their
sealing share one loop). So a request the server closed without an answer is retried once, on a
new connection, as the agent would (both routes are idempotent), and counted in
``keepalive_races``; the test bounds that count. Every other transport error is an error.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import ssl
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.fixtures.loop import run_in_own_loop

__all__ = ["KEEP_ALIVE_S", "SoakResult", "enrol_many", "run_in_own_loop", "run_soak"]

KEEP_ALIVE_S = 5.0  # uvicorn's default keep-alive timeout, which `vigil collector serve` keeps


@dataclass
class SoakResult:
    seconds: float
    agents: int
    statuses: Counter[str] = field(default_factory=Counter)  # "POST /api/v1/events 200" -> n
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)  # route -> samples
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by type
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    threads: list[int] = field(default_factory=list)  # the server's thread count at each sample
    error_idle_s: list[float] = field(default_factory=list)  # idle time before each failure
    keepalive_races: int = 0  # requests retried after the server closed an idle connection
    stored: list[str] = field(default_factory=list)  # event ids the collector acknowledged

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def bad_statuses(self, allowed: frozenset[int] = frozenset({200, 429})) -> dict[str, int]:
        return {k: v for k, v in self.statuses.items() if int(k.rsplit(" ", 1)[1]) not in allowed}

    def rss_thirds(self, warm_up_s: float = 0.0) -> tuple[float, float, float]:
        """Median RSS (bytes) of the first, middle and last third of the samples taken after
        ``warm_up_s`` (imports, pools and caches fill up in the first seconds: not a leak)."""
        values = [v for t, v in self.rss if t >= warm_up_s]
        third = max(1, len(values) // 3)
        return (statistics.median(values[:third]), statistics.median(values[third:-third] or values),
                statistics.median(values[-third:]))

    def percentile(self, route: str, p: float) -> float:
        samples = sorted(self.latencies_ms.get(route, [])) or [float("nan")]
        return samples[min(len(samples) - 1, int(len(samples) * p))]


async def enrol_many(url: str, ctx: ssl.SSLContext, token: str, n: int) -> list[tuple[str, str]]:
    """Enrol ``n`` devices with one many-use token, as many agents installing at once would."""
    import httpx

    async with httpx.AsyncClient(base_url=url, verify=ctx, timeout=120) as client:
        async def one(i: int) -> tuple[str, str]:
            answer = await client.post("/api/v1/enrol", json={
                "token": token, "hostname": f"soak-{i:04d}", "os": "linux",
                "agent_version": "soak"})
            answer.raise_for_status()
            body = answer.json()
            return body["device_id"], body["secret"]

        results: list[tuple[str, str]] = []
        for start in range(0, n, 50):  # in waves: 50 TLS handshakes at a time
            results += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
        return results


def _sealed_batch(device_id: str, recipients: list[Any], n: int, body_bytes: int
                  ) -> tuple[list[str], dict[str, Any]]:
    from tests.fixtures.collector import seal_event

    ids, events = [], []
    for _ in range(n):
        event_id, data = seal_event(device_id, recipients, body=os.urandom(body_bytes))
        ids.append(event_id)
        events.append({"id": event_id, "envelope": base64.b64encode(data).decode()})
    return ids, {"events": events}


async def _agent(url: str, ctx: ssl.SSLContext, device: tuple[str, str], recipients: list[Any],
                 result: SoakResult, deadline: float, heartbeat_s: float, event_every_s: float,
                 batch: int, body_bytes: int, rnd: random.Random) -> None:
    import httpx

    device_id, secret = device
    headers = {"Authorization": f"Bearer {device_id}.{secret}", "User-Agent": "vigil-soak"}
    async with httpx.AsyncClient(base_url=url, verify=ctx, timeout=60, headers=headers) as client:
        next_beat = time.monotonic() + rnd.uniform(0, heartbeat_s)
        next_event = time.monotonic() + rnd.uniform(0, event_every_s)
        last_done = time.monotonic()
        while True:
            now = time.monotonic()
            due = min(next_beat, next_event)
            if due >= deadline:
                return
            await asyncio.sleep(max(0.0, due - now))
            if next_beat <= next_event:
                route, body, ids = "POST /api/v1/heartbeat", {
                    "agent_version": "soak", "user_signed_in": True, "spool_depth": 0,
                    "dropped": 0, "quarantined": 0, "listener_restarts": 0,
                    "policy_serial": 1}, []
                next_beat += heartbeat_s * rnd.uniform(0.8, 1.2)
            else:
                route = "POST /api/v1/events"
                ids, body = _sealed_batch(device_id, recipients, batch, body_bytes)
                next_event += event_every_s * rnd.uniform(0.8, 1.2)
            started = time.perf_counter()
            idle = time.monotonic() - last_done
            try:
                try:
                    answer = await client.post(route.split(" ", 1)[1], json=body)
                except httpx.RemoteProtocolError:
                    # The keep-alive race (see above): the real agent retries; so do we, once.
                    result.keepalive_races += 1
                    answer = await client.post(route.split(" ", 1)[1], json=body)
            except httpx.HTTPError as exc:
                result.errors[f"{route} {type(exc).__name__}"] += 1
                result.error_idle_s.append(idle)
                last_done = time.monotonic()
                continue
            last_done = time.monotonic()
            result.latencies_ms.setdefault(route, []).append(
                (time.perf_counter() - started) * 1000)
            result.statuses[f"{route} {answer.status_code}"] += 1
            if answer.status_code == 200 and ids:
                result.stored += answer.json()["stored"]


async def _sample_rss(pid: int, result: SoakResult, start: float, deadline: float) -> None:
    import psutil

    process = psutil.Process(pid)
    while time.monotonic() < deadline:
        result.rss.append((time.monotonic() - start, process.memory_info().rss))
        result.threads.append(process.num_threads())
        await asyncio.sleep(1.0)


def run_soak(url: str, ca_cert: str, pid: int, devices: list[tuple[str, str]],
             recipients: list[Any], seconds: float, heartbeat_s: float = 4.0,
             event_every_s: float = 15.0, batch: int = 2, body_bytes: int = 20_000,
             seed: int = 8) -> SoakResult:
    """Run ``len(devices)`` simulated agents for ``seconds``; what they saw and the server's RSS."""
    ctx = ssl.create_default_context(cafile=ca_cert)
    result = SoakResult(seconds=seconds, agents=len(devices))

    async def main() -> None:
        start = time.monotonic()
        deadline = start + seconds
        rnd = random.Random(seed)
        await asyncio.gather(
            _sample_rss(pid, result, start, deadline),
            *(_agent(url, ctx, d, recipients, result, deadline, heartbeat_s, event_every_s,
                     batch, body_bytes, random.Random(rnd.random())) for d in devices))

    run_in_own_loop(main())
    return result
