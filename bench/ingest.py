"""Ingest throughput of a real collector (uvicorn over TLS on loopback), SQLite and PostgreSQL.

N concurrent fake agents each post batches of sealed events with 150 KB bodies (random bytes,
like a compressed screenshot), sealed beforehand so the clients spend their time sending. The
same run measures the ceiling: the disk work the collector does for those events and nothing
else (see ``ceiling_round``): the same envelope bytes, one new file each, fsynced, renamed, the
directory fsynced per batch, at the collector's blob-write concurrency, on the same disk.
Figures are medians of ROUNDS rounds.

Usage: .venv/bin/python bench/ingest.py [--agents 8] [--batch 10] [--events 800] [--rounds 3]
                                       [--thread-cpu]
Last line: sqlite_events_per_s=<n> ceiling_ratio=<n> postgres_events_per_s=<n>
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.collector import CollectorServer, prepare_collector, seal_event
from tests.fixtures.db import drop_pg_schema, pg_schema_url
from tests.fixtures.keys import Keyholders, make_keyholder

BODY_BYTES = 150 * 1024


def _run_threads(n: int, work: Callable[[int], None]) -> float:
    """Run ``work(i)`` in n threads at once; the wall time in seconds."""
    start_line = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start_line.wait()
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start_line.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return wall


def make_batches(server: CollectorServer, agents: int, batch: int, events: int
                 ) -> list[tuple[dict[str, str], list[bytes]]]:
    """Per agent: its auth header and its request bodies (JSON, ready to send)."""
    per_agent = events // agents
    out = []
    for i in range(agents):
        device = server.enrol(f"bench-{i}")
        bodies = []
        for _ in range(0, per_agent, batch):
            items = []
            for _ in range(batch):
                event_id, sealed = seal_event(device.id, server.keys.publics,
                                              body=os.urandom(BODY_BYTES))
                items.append({"id": event_id, "envelope": base64.b64encode(sealed).decode()})
            bodies.append(json.dumps({"events": items}).encode())
        out.append((device.auth, bodies))
    return out


def ingest_round(server: CollectorServer, work: list[tuple[dict[str, str], list[bytes]]]
                 ) -> tuple[float, list[float], int]:
    """(events/s, request latencies in ms, events stored)."""
    import httpx

    latencies: list[float] = []
    stored = [0] * len(work)

    def agent(i: int) -> None:
        auth, bodies = work[i]
        headers = {**auth, "Content-Type": "application/json"}
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=120) as c:
            for body in bodies:
                t0 = time.perf_counter()
                answer = c.post("/api/v1/events", content=body, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                answer.raise_for_status()
                stored[i] += len(answer.json()["stored"])

    wall = _run_threads(len(work), agent)
    return sum(stored) / wall, latencies, sum(stored)


def _envelopes(body: bytes) -> list[bytes]:
    """The decoded envelopes of one request body: the very bytes the collector stores."""
    return [base64.b64decode(e["envelope"]) for e in json.loads(body)["events"]]


def ceiling_round(directory: Path, work: list[tuple[dict[str, str], list[bytes]]]) -> float:
    """Events/s of the raw disk work the collector does for the same events, with nothing else:
    per agent thread and per batch, each envelope (the same bytes) written to a new temporary
    file and fsynced, all of a batch at once on a pool of as many threads as the collector's
    blob writers, then renamed into one directory, and that directory fsynced once per batch.
    No HTTP, TLS, parsing, checks or database: what is left when all of those cost nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from collector.store.blobs import WRITE_WORKERS, fsync_dir, write_synced

    day_dir = directory / "ev" / time.strftime("%Y%m%d")
    day_dir.mkdir(parents=True, exist_ok=True)
    batches = [[_envelopes(body) for body in bodies] for _auth, bodies in work]
    counts = [sum(len(b) for b in per_agent) for per_agent in batches]

    with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
        def agent(i: int) -> None:
            for n, envelopes in enumerate(batches[i]):
                jobs = [(day_dir / f".tmp-{i}-{n}-{k}", day_dir / f"{i}-{n}-{k}", data)
                        for k, data in enumerate(envelopes)]
                for _ in pool.map(lambda job: write_synced(job[0], job[2]), jobs):
                    pass
                for tmp, final, _data in jobs:
                    os.replace(tmp, final)
                fsync_dir(day_dir)

        wall = _run_threads(len(work), agent)
    for p in day_dir.iterdir():
        p.unlink()
    return sum(counts) / wall


def _thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """tid -> (user s, system s) of every thread of process ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended
            continue
        out[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def _thread_names(pid: int) -> dict[int, str]:
    """tid -> Python thread name (pool threads without their number), from ``py-spy dump``:
    CPython 3.11 does not name its OS threads."""
    import re
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                          check=True).stdout
    return {int(m[1], 0): re.sub(r"_\d+$", "", m[2])
            for m in re.finditer(r'Thread (\S+) \(\w+\): "([^"]+)"', dump)}


def print_thread_cpu(pid: int, before: dict[int, tuple[float, float]], events: int) -> None:
    """CPU per stored event of each kind of server thread over one round."""
    after = _thread_cpu(pid)
    names = _thread_names(pid)
    total: dict[str, list[float]] = {}
    for tid, (user, system) in after.items():
        user0, system0 = before.get(tid, (0.0, 0.0))
        row = total.setdefault("MainThread" if tid == pid else names.get(tid, "?"), [0.0, 0.0])
        row[0] += user - user0
        row[1] += system - system0
    for name, (user, system) in sorted(total.items(), key=lambda kv: -sum(kv[1])):
        print(f"    {name:<26} user {user / events * 1000:.2f} ms/event, "
              f"sys {system / events * 1000:.2f} ms/event")


def fresh_work(server: CollectorServer, args: argparse.Namespace) -> Any:
    return make_batches(server, args.agents, args.batch, args.events)


def bench_database(name: str, database_url: str, keys: Keyholders, base: Path,
                   args: argparse.Namespace) -> dict[str, float]:
    server = prepare_collector(base / name, database_url, keys, {"run_jobs": False})
    server.start()
    try:
        rates, lat, ceilings, ratios = [], [], [], []
        for _ in range(args.rounds):
            work = fresh_work(server, args)  # new ids each round (no duplicates)
            # The ceiling right before its round: the shared disk's speed drifts by the minute.
            ceiling = ceiling_round(server.data_dir / "ceiling", work)
            before = _thread_cpu(server.process.pid) if args.thread_cpu else {}
            rate, latencies, stored = ingest_round(server, work)
            print(f"  {name} round {len(rates) + 1}: {rate:.0f} events/s, raw ceiling "
                  f"{ceiling:.0f}/s, ratio {rate / ceiling:.2f}, load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            if args.thread_cpu:
                print_thread_cpu(server.process.pid, before, stored)
            rates.append(rate)
            lat += latencies
            ceilings.append(ceiling)
            ratios.append(rate / ceiling)
    finally:
        server.close()
    lat.sort()
    result = {"events_per_s": statistics.median(rates), "p50_ms": statistics.median(lat),
              "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}
    result["ceiling_per_s"] = statistics.median(ceilings)
    result["ratio"] = statistics.median(ratios)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--events", type=int, default=800, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--thread-cpu", action="store_true",
                        help="after each round, the server's CPU per event by thread "
                             "(needs py-spy: .venv/bin/pip install py-spy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        base = Path(tmp)
        keys_dir = base / "keys"
        keys_dir.mkdir()
        keys = Keyholders(make_keyholder(keys_dir, "Bench Head", "head"),
                          make_keyholder(keys_dir, "Bench Tech", "technician"),
                          make_keyholder(keys_dir, "Bench Recovery", "recovery"))
        sqlite = bench_database("sqlite", "", keys, base, args)
        pg_url, schema = pg_schema_url()
        try:
            postgres = bench_database("postgres", pg_url, keys, base, args)
        finally:
            drop_pg_schema(schema)
    ratio = sqlite["ratio"]
    print(f"{args.agents} agents, batches of {args.batch}, {BODY_BYTES // 1024} KB bodies, "
          f"{args.events} events per round, median of {args.rounds} rounds; x ceiling is the "
          "median of each round's ratio to the raw write+fsync measured just before it")
    print(f"{'store':<26}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'x ceiling':>11}")
    for name, r in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        print(f"{'raw write+fsync (' + name + ')':<26}{r['ceiling_per_s']:>10.0f}{'':>20}"
              f"{1.0:>11.2f}")
        print(f"{'collector, ' + name:<26}{r['events_per_s']:>10.0f}{r['p50_ms']:>10.1f}"
              f"{r['p99_ms']:>10.1f}{r['ratio']:>11.2f}")
    print(f"sqlite_events_per_s={sqlite['events_per_s']:.0f} ceiling_ratio={ratio:.2f} "
          f"postgres_events_per_s={postgres['events_per_s']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
