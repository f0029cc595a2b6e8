"""Trust scale: heartbeats and a reconnection storm, one collector against two behind haproxy.

Two collector instances run on one PostgreSQL schema (one data directory, as the admin guide's
"several instances"), with Debian's haproxy in front passing TLS through (tests/fixtures/
haproxy.py: the admin guide's configuration, health checks included; ``--checks test`` for the
test suite's faster ones). An asyncio load generator with real TLS and the agents' real API
drives simulated devices:

- heartbeats: every device posts heartbeats back to back on its own kept-alive connection for
  ``--seconds``; heartbeats per second held, and the median and p99 latency;
- held rate: heartbeats on a fixed schedule (open loop) at 10, 20, 40 ... a second for
  ``--held-seconds`` each, latency from each one's scheduled time; the highest rate with p99 at
  most 250 ms (issue 19's "heartbeats per second held with p99 <= 250 ms");
- reconnection storm: every device comes back at once (a new TLS connection each) with
  ``--spooled`` sealed events in its spool and uploads them in batches of 10, retrying on errors
  as the agent does; the drain time, events per second, and, counted in the database by event
  id, lost and duplicated events.

Each target is measured in the same run: "one" is instance A directly, "two" is haproxy in
front of A and B. Figures are medians of ``--rounds`` rounds; the ratio is two / one.

Usage: .venv/bin/python bench/trust.py [--devices 200] [--spooled 5] [--seconds 5] [--rounds 3]
Last line: heartbeats_per_s=<two instances> held_hb_per_s=<two, p99 <= 250 ms> drain_s=<two>
lost=N duplicated=N
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.collector import CollectorServer, prepare_collector, seal_event
from tests.fixtures.collector import EnrolledDevice as Device
from tests.fixtures.db import drop_pg_schema, pg_schema_url
from tests.fixtures.haproxy import CHECKS, Haproxy, start_haproxy
from tests.fixtures.keys import Keyholders, make_keyholder

BODY_BYTES = 16 * 1024  # a small WebP capture
BATCH = 10
P99_TARGET_MS = 250.0  # issue 19: heartbeats per second held with p99 <= 250 ms
LADDER = (10.0, 20.0, 40.0, 60.0, 80.0, 120.0, 160.0, 240.0)


@dataclass
class Round:
    heartbeats_per_s: float
    p50_ms: float
    p99_ms: float
    hb_cpu_ms: float  # collector processes' CPU time per heartbeat (both instances)
    drain_s: float
    events_per_s: float
    event_cpu_ms: float  # collector processes' CPU time per event stored in the storm
    lost: int
    duplicated: int
    reconnects: int = 0  # heartbeats retried on a dropped connection (see _beat)
    storm_retries: int = 0  # uploads answered 503/429/409 or dropped, retried (see _storm)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Drain:
    stored: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    retries: int = 0


def _client(url: str, ctx: Any, device: Device) -> Any:
    import httpx

    return httpx.AsyncClient(base_url=url, verify=ctx, timeout=30, headers=device.auth,
                             limits=httpx.Limits(max_connections=1))


async def _enrol(server: CollectorServer, url: str, n: int) -> list[Device]:
    import httpx

    token = server.make_token(uses=n)
    async with httpx.AsyncClient(base_url=url, verify=server.ssl_context(), timeout=60) as c:
        async def one(i: int) -> Device:
            answer = await c.post("/api/v1/enrol", json={"token": token, "hostname": f"pc-{i}",
                                                         "os": "linux", "agent_version": "bench"})
            assert answer.status_code == 201, answer.text
            return Device(answer.json()["device_id"], answer.json()["secret"])

        devices = []
        for start in range(0, n, 50):  # enrolment hashes a secret: 50 at a time
            devices += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
        return devices

HEARTBEAT = {"user_signed_in": True, "spool_depth": 0, "agent_version": "bench"}


async def _beat(client: Any, retries: list[int]) -> None:
    """One heartbeat, retried on a dropped connection as the agent's uplink does (a kept-alive
    connection the collector closed after its 5 s idle timeout, or one refused while thousands
    connect at once); each retry is counted in ``retries[0]``, its time in the latency."""
    import httpx

    for attempt in range(10):
        try:
            answer = await client.post("/api/v1/heartbeat", json=HEARTBEAT)
        except httpx.TransportError:
            retries[0] += 1
            await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
            continue
        assert answer.status_code == 200, answer.text
        return
    raise AssertionError("a heartbeat failed 10 times over 15 s: the collector is refusing "
                         "connections")


async def _heartbeats(url: str, ctx: Any, devices: list[Device], seconds: float,
                      retries: list[int]) -> tuple[int, list[float]]:
    clients = [_client(url, ctx, d) for d in devices]
    latencies: list[float] = []
    try:
        # Connect first (the storm is measured apart), then hold the load for ``seconds``.
        await asyncio.gather(*(_beat(c, retries) for c in clients))
        deadline = time.perf_counter() + seconds

        async def beat(client: Any) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await _beat(client, retries)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(beat(c) for c in clients))
        wall = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return round(len(latencies) / wall), latencies


async def _open_loop(url: str, ctx: Any, devices: list[Device], rate: float, seconds: float,
                     fresh: bool) -> tuple[float, float, int]:
    """Heartbeats sent on a fixed schedule (``rate`` a second, round the devices), whatever the
    answers do: (the rate offered, p99 ms, heartbeats retried). Latency runs from each
    heartbeat's scheduled time, so a collector that falls behind shows as latency, not as a
    lower offered rate. ``fresh``:
    each heartbeat on a new TLS connection, as a real agent's is (it beats once a minute and
    the collector closes a connection idle for 5 s); otherwise each device keeps its own."""
    # Only the devices this step uses: a kept-alive connection idle for 5 s is closed by the
    # collector, and 2,000 connections opened at once are the storm, measured apart.
    devices = devices[:max(1, min(len(devices), int(rate * seconds)))]
    clients = [] if fresh else [_client(url, ctx, d) for d in devices]
    latencies: list[float] = []
    retries = [0]
    try:
        await asyncio.gather(*(_beat(c, retries) for c in clients))

        async def beat(device: Device, client: Any, due: float) -> None:
            if fresh:
                async with _client(url, ctx, device) as own:
                    await _beat(own, retries)
            else:
                await _beat(client, retries)
            latencies.append(time.perf_counter() - due)

        started = time.perf_counter()
        tasks = []
        for i in range(max(1, int(rate * seconds))):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            n = i % len(devices)
            tasks.append(asyncio.create_task(
                beat(devices[n], None if fresh else clients[n], due)))
        # The offered rate: how fast the generator got them out (a collector that falls
        # behind shows in the latency, which runs from each one's due time).
        wall = time.perf_counter() - started + 1 / rate
        await asyncio.gather(*tasks)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    return len(latencies) / wall, p99 * 1000, retries[0]


def _held_rate(url: str, ctx: Any, devices: list[Device], seconds: float,
               ladder: tuple[float, ...], fresh: bool
               ) -> tuple[float, list[tuple[float, float]], int]:
    """The highest rate on ``ladder`` held with p99 <= P99_TARGET_MS (and at least 95% of it
    offered); every step's (rate, p99 ms); heartbeats retried. Stops at the first step that
    fails."""
    held, steps, retried = 0.0, [], 0
    for rate in ladder:
        achieved, p99, retries = asyncio.run(_open_loop(url, ctx, devices, rate, seconds, fresh))
        steps.append((rate, p99))
        retried += retries
        if p99 > P99_TARGET_MS or achieved < 0.95 * rate:
            break
        held = rate
    return held, steps, retried


async def _storm(url: str, ctx: Any, devices: list[Device],
                 spools: dict[str, list[tuple[str, bytes]]]) -> tuple[float, Drain]:
    drain = Drain()

    async def come_back(device: Device) -> None:
        import httpx

        pending = list(spools[device.id])
        async with _client(url, ctx, device) as client:
            while pending:
                batch = pending[:BATCH]
                body = {"events": [{"id": i, "envelope": base64.b64encode(d).decode()}
                                   for i, d in batch]}
                try:
                    answer = await client.post("/api/v1/events", json=body)
                except httpx.TransportError:
                    answer = None
                if answer is None or answer.status_code in (409, 429) or answer.status_code >= 500:
                    # As agent/sync.py does: the collector's Retry-After when it gave one (503
                    # busy, 429), else a short back-off; jittered so the retries spread out.
                    drain.retries += 1
                    after = answer.headers.get("Retry-After") if answer is not None else None
                    wait = float(after) if after and after.isdigit() else 0.5
                    await asyncio.sleep(wait * random.uniform(0.5, 1.5))
                    continue
                assert answer.status_code == 200, answer.text
                got = answer.json()
                drain.stored += got["stored"]
                drain.duplicate += got["duplicate"]
                acked = set(got["stored"]) | set(got["duplicate"])
                pending = [p for p in pending if p[0] not in acked]

    started = time.perf_counter()
    await asyncio.gather(*(come_back(d) for d in devices))
    return time.perf_counter() - started, drain


def _count(server: CollectorServer, ids: list[str]) -> int:
    from sqlalchemy import text

    db = server.database()
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM event WHERE id = ANY(:ids)"),
                                    {"ids": ids}).scalar_one())
    finally:
        db.close()


def _measure(server: CollectorServer, url: str, devices: list[Device], spooled: int,
             seconds: float, pids: list[int], hb_devices: int) -> Round:
    ctx = server.ssl_context()
    cpu0 = _cpu_s(pids)
    retries = [0]
    beats, latencies = asyncio.run(_heartbeats(url, ctx, devices[:hb_devices], seconds, retries))
    hb_cpu = _cpu_s(pids) - cpu0
    spools = {d.id: [seal_event(d.id, server.keys.publics, body=os.urandom(BODY_BYTES))
                     for _ in range(spooled)] for d in devices}
    cpu0 = _cpu_s(pids)
    drain_s, drain = asyncio.run(_storm(url, ctx, devices, spools))
    event_cpu = _cpu_s(pids) - cpu0
    sent = [event_id for events in spools.values() for event_id, _ in events]
    found = _count(server, sent)
    duplicated = len(drain.stored) - len(set(drain.stored)) + max(0, found - len(sent))
    quantiles = statistics.quantiles(latencies, n=100)
    return Round(beats, statistics.median(latencies) * 1000, quantiles[98] * 1000,
                 hb_cpu * 1000 / len(latencies), drain_s, len(sent) / drain_s,
                 event_cpu * 1000 / len(sent), lost=len(sent) - found, duplicated=duplicated,
                 reconnects=retries[0], storm_retries=drain.retries)


def _median(rounds: list[Round], name: str) -> float:
    return statistics.median(getattr(r, name) for r in rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--spooled", type=int, default=5, help="events each device spooled")
    parser.add_argument("--seconds", type=float, default=5.0, help="heartbeat phase length")
    parser.add_argument("--hb-concurrency", type=int, default=200,
                        help="devices beating back to back in the closed-loop phase (at most "
                             "--devices); 30,000 agents beating once a minute at 50 ms each "
                             "keep about 25 in flight, so 2,000 at once only measures a queue")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blob-store", choices=("files", "postgresql"), default="files")
    parser.add_argument("--held-seconds", type=float, default=5.0,
                        help="length of each open-loop step of the held-rate ladder (0: skip)")
    parser.add_argument("--checks", choices=tuple(CHECKS), default="guide",
                        help="haproxy's health checks: the tests' (every 300 ms, down after "
                             "2 failures) or the admin guide's (every 2 s, 5 s timeout, down "
                             "after 3)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("haproxy is not installed; run: make system-deps (scripts/system-deps.sh)",
              file=sys.stderr)
        return 1

    url, schema = pg_schema_url()
    a: CollectorServer | None = None
    b: CollectorServer | None = None
    proxy: Haproxy | None = None
    with tempfile.TemporaryDirectory(prefix="vigil-bench-trust-") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            holders = [make_keyholder(tmp, n, r) for n, r in
                       (("head", "head"), ("technician", "technician"), ("recovery", "recovery"))]
            keys = Keyholders(*holders)
            a = prepare_collector(tmp, url, keys, {"blob_store": args.blob_store,
                                                   "log_level": "warning"})
            a.start()
            b = a.sibling(tmp / "collector-b.log")
            b.start()
            proxy = start_haproxy(tmp, [("127.0.0.1", a.port), ("127.0.0.1", b.port)],
                                  checks=args.checks)
            devices = asyncio.run(_enrol(a, a.url, args.devices))
            results: dict[str, list[Round]] = {"one": [], "two": []}
            pids = [a.process.pid, b.process.pid]  # type: ignore[union-attr]
            for _ in range(args.rounds):
                results["one"].append(_measure(a, a.url, devices, args.spooled, args.seconds,
                                               pids, args.hb_concurrency))
                results["two"].append(_measure(a, proxy.url, devices, args.spooled,
                                               args.seconds, pids, args.hb_concurrency))
            held: dict[tuple[str, bool], tuple[float, list[tuple[float, float]], int]] = {}
            if args.held_seconds > 0:
                ctx = a.ssl_context()
                for fresh in (False, True):
                    held["one", fresh] = _held_rate(a.url, ctx, devices, args.held_seconds,
                                                    LADDER, fresh)
                    held["two", fresh] = _held_rate(proxy.url, ctx, devices,
                                                    args.held_seconds, LADDER, fresh)
            peak_mb = [_peak_rss_mb(pid) for pid in pids]
            # haproxy reports a server's state changes on stderr (its log file here): each
            # "is DOWN" cut every session to that instance (on-marked-down shutdown-sessions).
            downs = [line for line in proxy.log().splitlines() if " is DOWN" in line]
        finally:
            for part in (proxy, b, a):
                if part is not None:
                    part.stop()
            drop_pg_schema(schema)

    cores = os.cpu_count() or 1
    print(f"trust bench: {args.devices} devices, {args.spooled} spooled events each "
          f"({BODY_BYTES // 1024} KiB), heartbeats for {args.seconds:g} s from "
          f"{min(args.devices, args.hb_concurrency)} of them back to back, medians of "
          f"{args.rounds} rounds, blob_store={args.blob_store}, haproxy checks "
          f"{args.checks!r} ({CHECKS[args.checks][1]}, timeout {CHECKS[args.checks][0]}), "
          f"{cores} cores shared by "
          f"clients, collectors, haproxy and PostgreSQL, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'target':<20}{'hb/s':>6}{'p50 ms':>8}{'p99 ms':>8}{'cpu ms/hb':>10}"
          f"{'drain s':>8}{'events/s':>9}{'cpu ms/ev':>10}{'lost':>5}{'dup':>4}")
    for name, label in (("one", "one instance"), ("two", "two behind haproxy")):
        rounds = results[name]
        print(f"{label:<20}{_median(rounds, 'heartbeats_per_s'):>6.0f}"
              f"{_median(rounds, 'p50_ms'):>8.0f}{_median(rounds, 'p99_ms'):>8.0f}"
              f"{_median(rounds, 'hb_cpu_ms'):>10.2f}"
              f"{_median(rounds, 'drain_s'):>8.2f}{_median(rounds, 'events_per_s'):>9.0f}"
              f"{_median(rounds, 'event_cpu_ms'):>10.2f}"
              f"{sum(r.lost for r in rounds):>5}{sum(r.duplicated for r in rounds):>4}")
    one, two = results["one"], results["two"]
    hb_ratio = _median(two, "heartbeats_per_s") / _median(one, "heartbeats_per_s")
    drain_ratio = _median(one, "drain_s") / _median(two, "drain_s")
    per_core = 1000 / _median(two, "hb_cpu_ms")
    print(f"ratio two/one: heartbeats {hb_ratio:.2f}x, drain speed {drain_ratio:.2f}x; "
          f"per collector core: {per_core:.0f} hb/s, "
          f"{1000 / _median(two, 'event_cpu_ms'):.0f} events/s (CPU time of the collector "
          f"processes; the load generator, haproxy and PostgreSQL share the same cores)")
    print(f"collectors' peak RSS: A {peak_mb[0]:.0f} MB, B {peak_mb[1]:.0f} MB (VmHWM; uploads "
          f"beyond the in-flight budget wait with 503, collector.body_limit)")
    print(f"haproxy marked an instance down {len(downs)} time(s)"
          + (f", first: {downs[0].strip()[:160]}" if downs else ""))
    reconnects = sum(r.reconnects for rounds in results.values() for r in rounds)
    print(f"heartbeats retried on a dropped connection (closed-loop phase): {reconnects}; "
          "storm uploads retried (503 busy, 429, errors): "
          f"one {sum(r.storm_retries for r in one)}, two {sum(r.storm_retries for r in two)}")
    for fresh, how in ((False, "kept-alive connection per device"),
                       (True, "a new TLS connection per heartbeat (as agents make)")):
        for name, label in (("one", "one instance"), ("two", "two behind haproxy")):
            if (name, fresh) in held:
                rate, steps, retried = held[name, fresh]
                ladder = ", ".join(f"{r:g}/s: {p:.0f} ms" for r, p in steps)
                print(f"held with p99 <= {P99_TARGET_MS:.0f} ms, {label}, {how}: {rate:g} hb/s "
                      f"(open loop, p99 per step: {ladder}; {retried} retried)")
    lost = sum(r.lost for rounds in results.values() for r in rounds)
    duplicated = sum(r.duplicated for rounds in results.values() for r in rounds)
    held_two = f"held_hb_per_s={held['two', True][0]:g} " if ("two", True) in held else ""
    print(f"heartbeats_per_s={_median(two, 'heartbeats_per_s'):.0f} {held_two}"
          f"drain_s={_median(two, 'drain_s'):.2f} lost={lost} duplicated={duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
