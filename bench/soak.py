"""Soak: many simulated agents against a real collector (uvicorn over TLS, SQLite) on loopback.

The engine is tests/hardening/soak.py (the same one the bounded soak test asserts with): each
agent has its own pinned HTTPS connection, heartbeats every ~4 s and posts a batch of 2 freshly
sealed 20 KB events every ~15 s. The baseline, in the same process against the same server, is
one agent alone for BASELINE_S seconds: the unloaded latency the loaded figures are divided by.
Prints one row per route (requests, median and p95 latency, ratio of median to the baseline's),
then the server's RSS at each quarter of the run, and last:

    soak_agents=<n> soak_req_per_s=<n> soak_rss_growth_pct=<last vs first quarter>

Run: .venv/bin/python bench/soak.py [--agents 200] [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.collector import prepare_collector
from tests.fixtures.keys import Keyholders, make_keyholder
from tests.hardening.soak import SoakResult, enrol_many, run_soak

BASELINE_S = 20.0
WARM_UP_S = 20.0
ROUTES = ("POST /api/v1/heartbeat", "POST /api/v1/events")


def _quarters(result: SoakResult) -> list[float]:
    values = [v for t, v in result.rss if t >= WARM_UP_S]
    size = max(1, len(values) // 4)
    return [statistics.median(values[i * size:(i + 1) * size] or values[-size:]) for i in range(4)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "keys").mkdir()
        keys = Keyholders(head=make_keyholder(base / "keys", "Ada Head", "head"),
                          technician=make_keyholder(base / "keys", "Tom Tech", "technician"),
                          recovery=make_keyholder(base / "keys", "Recovery", "recovery"))
        server = prepare_collector(base / "soak", "", keys, {"run_jobs": False})
        server.start()
        try:
            assert server.process is not None
            ctx = ssl.create_default_context(cafile=str(server.ca_cert))
            devices = asyncio.run(enrol_many(server.url, ctx, server.make_token(
                uses=args.agents + 1), args.agents + 1))
            baseline = run_soak(server.url, str(server.ca_cert), server.process.pid,
                                devices[:1], keys.publics, BASELINE_S, event_every_s=4.0)
            loaded = run_soak(server.url, str(server.ca_cert), server.process.pid, devices[1:],
                              keys.publics, args.seconds)
        finally:
            server.close()

    print(f"{'route':<24}{'agents':>7}{'requests':>10}{'p50 ms':>9}{'p95 ms':>9}{'x baseline':>12}")
    for route in ROUTES:
        base_p50 = baseline.percentile(route, 0.5)
        print(f"{route + ' (baseline)':<24}{1:>7}{len(baseline.latencies_ms.get(route, [])):>10}"
              f"{base_p50:>9.1f}{baseline.percentile(route, 0.95):>9.1f}{1.0:>12.1f}")
        p50 = loaded.percentile(route, 0.5)
        print(f"{route:<24}{args.agents:>7}{len(loaded.latencies_ms.get(route, [])):>10}"
              f"{p50:>9.1f}{loaded.percentile(route, 0.95):>9.1f}{p50 / base_p50:>12.1f}")
    quarters = _quarters(loaded)
    rss = "  ".join(f"{q / 2**20:.1f}" for q in quarters)
    print(f"server RSS by quarter (MiB, after a {WARM_UP_S:.0f} s warm-up): {rss}")
    bad = loaded.bad_statuses()
    print(f"non-200 answers: {bad or 'none'}; transport errors: {dict(loaded.errors) or 'none'}; "
          f"keep-alive races retried: {loaded.keepalive_races}; events stored: "
          f"{len(loaded.stored)}")
    growth = (quarters[-1] / quarters[0] - 1) * 100
    print(f"soak_agents={args.agents} soak_req_per_s={loaded.requests / args.seconds:.1f} "
          f"soak_rss_growth_pct={growth:.1f}")
    return 0 if not bad and not loaded.errors else 1


if __name__ == "__main__":
    sys.exit(main())
