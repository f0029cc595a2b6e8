"""Benchmark: the dashboard's triage list with 1,000,000 events, on SQLite and on PostgreSQL.

Bulk-inserts event rows (clear metadata only; the list page never opens envelopes while the key
is locked) through the collector's real schema (Alembic migrations, composite indexes), then
times GET /triage through the real app (collector + dashboard, signed-in session, CSRF, role
check, query, Jinja2 rendering) in this process, with no network in between: server-side time.

Pages measured: the newest page, a page deep in the queue (after a cursor half-way down), and
each filter (severity, category, device, status, date range). The baseline, measured in the
same process on the same data, is the same deep page fetched with OFFSET pagination, which is
what keyset pagination replaces. The last rows time the unlocked queue (50 real
envelopes per view, whose headers alone are decrypted) and one screenshot, on a small database of
real sealed events, with what the page pays in crypto: 50 header-only opens against 50 full
opens (what the queue did before it used envelope.open_header); they are not part of the figure
below, which is the list page itself. Prints a table of median and
p95 milliseconds, and last:

    triage_p95_ms=<worst p95 over pages and databases> events=<n>

Run: .venv/bin/python bench/dashboard.py [--events N] [--rounds N] [--skip-postgres|--skip-sqlite]
PostgreSQL: VIGIL_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test); the
bench works in a schema of its own and drops it afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_URL = os.environ.get("VIGIL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CATEGORIES = ("bullying", "discrimination", "drugs", "extremism", "filter_bypass", "gambling",
              "grooming", "pornography", "self_harm", "suicide", "violence")
SEVERITY_WEIGHTS = (30, 30, 25, 10, 5)
STATUSES = ("new", "false_positive", "no_concern", "concern", "escalated")
STATUS_WEIGHTS = (20, 45, 25, 8, 2)
DEVICES = 300
BATCH = 10_000


def _rows(n: int, device_ids: list[str], seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    span = 365 * 24 * 3600
    batch: list[dict[str, Any]] = []
    for _ in range(n):
        category = rnd.choice(CATEGORIES)
        event_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        at = now - timedelta(seconds=rnd.random() * span)
        status = rnd.choices(STATUSES, STATUS_WEIGHTS)[0]
        batch.append({
            "id": event_id, "device_id": rnd.choice(device_ids), "time": at,
            "received_at": at + timedelta(seconds=2), "category": category,
            "severity": rnd.choices((1, 2, 3, 4, 5), SEVERITY_WEIGHTS)[0],
            "rule": f"{category}.rule_{rnd.randrange(60)}", "source": "typed", "repeat_count": 1,
            "last_repeat_at": None, "blob_key": f"ev/{event_id[:2]}/{event_id}",
            "size": 300_000, "sha256": hashlib.sha256(event_id.encode()).hexdigest(),
            "recipients": [], "status": status,
            "graded_by": None if status == "new" else "tech",
            "graded_at": None if status == "new" else at + timedelta(hours=rnd.random() * 48),
        })
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def populate(engine: Any, n: int) -> list[str]:
    from sqlalchemy import insert, text

    from collector.store.models import Device, Event

    device_ids = [str(uuid.uuid4()) for _ in range(DEVICES)]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Device), [
            {"id": d, "hostname": f"PC-{i:04d}", "os": "windows", "group": f"year-{7 + i % 7}",
             "agent_version": "0.1.0", "secret_hash": "0" * 64, "enrolled_at": now,
             "last_seen": now, "user_signed_in": False, "spool_depth": 0, "dropped": 0,
             "quarantined": 0, "listener_restarts": 0, "policy_serial": 1}
            for i, d in enumerate(device_ids)
        ])
    started = time.perf_counter()
    done = 0
    for batch in _rows(n, device_ids):
        with engine.begin() as conn:
            conn.execute(insert(Event), batch)
        done += len(batch)
        if done % 200_000 == 0:
            print(f"  inserted {done:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    # A live database is vacuumed and analysed by autovacuum; do it now so that the measurement
    # does not race autovacuum's first pass over a freshly loaded table.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    return device_ids


def _time(call: Callable[[], Any], rounds: int) -> tuple[float, float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


@contextmanager
def signed_in_client(database_url: str, data_dir: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    import dashboard
    from collector.app import create_app
    from collector.settings import Settings
    from collector.store.models import Account
    from dashboard import sessions
    from dashboard.security import hash_password
    from dashboard.settings import DashboardSettings

    settings = Settings(data_dir=data_dir, database_url=database_url, run_jobs=False)
    app = create_app(settings, [dashboard.install])
    with TestClient(app, base_url="https://bench.invalid") as client:
        with app.state.db.session() as db:
            account = Account(username=f"bench-{secrets.token_hex(4)}", role="technician",
                              password_hash=hash_password(secrets.token_urlsafe(16)))
            db.add(account)
            db.commit()
            db.refresh(account)
            sessions.ensure_table(db.get_bind())
            token, _ = sessions.start(db, account, "bench", verified=True)
        cookie, _ = sessions.cookie_names(DashboardSettings.from_collector(settings))
        client.cookies.set(cookie, token)
        yield client


def deep_cursor(engine: Any, depth: int) -> tuple[datetime, str]:
    from sqlmodel import Session, col, select

    from collector.store.models import Event

    with Session(engine) as s:
        row = s.exec(select(Event.time, Event.id)
                     .order_by(col(Event.time).desc(), col(Event.id).desc())
                     .offset(depth).limit(1)).one()
    return row[0], row[1]


def offset_page(engine: Any, depth: int, limit: int) -> Callable[[], Any]:
    from sqlmodel import Session, col, select

    from collector.store.models import Device, Event

    def run() -> Any:
        with Session(engine) as s:
            return s.exec(
                select(Event, Device.hostname)
                .join(Device, col(Device.id) == Event.device_id, isouter=True)
                .order_by(col(Event.time).desc(), col(Event.id).desc())
                .offset(depth).limit(limit)
            ).all()

    return run


def bench_database(label: str, url: str, events: int, rounds: int) -> list[tuple[str, str, float, float]]:
    from sqlalchemy import func, select

    from collector.store.db import make_engine
    from collector.store.models import Event
    from collector.store.schema import upgrade
    from dashboard.queue import Cursor

    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        present = conn.execute(select(func.count()).select_from(Event)).scalar_one()
    if present == 0:
        started = time.perf_counter()
        device_ids = populate(engine, events)
        print(f"{label}: inserted {events:,} events in {time.perf_counter() - started:.0f} s",
              flush=True)
    else:
        from collector.store.models import Device

        with engine.connect() as conn:
            device_ids = [r[0] for r in conn.execute(select(Device.id))]
    at, event_id = deep_cursor(engine, events // 2)
    cursor = Cursor(at, event_id).encode()
    today = datetime.now(UTC).date()
    pages = {
        "newest page": "/triage",
        "deep page (keyset)": f"/triage?after={quote(cursor)}",
        "severity=5": "/triage?severity=5",
        "category=grooming": "/triage?category=grooming",
        "device": f"/triage?device={device_ids[0]}",
        "status=new": "/triage?status=new",
        "last 7 days": f"/triage?since={today - timedelta(days=7)}&until={today}",
        "severity=5 + status=new": "/triage?severity=5&status=new",
        "deep severity=5 (keyset)": f"/triage?severity=5&after={quote(cursor)}",
    }
    results = []
    with tempfile.TemporaryDirectory() as data, signed_in_client(url, Path(data)) as client:
        first = client.get("/triage")
        assert first.status_code == 200 and first.text.count('class="row"') == 50, first.text[:300]
        # Round-robin over the pages, so that a burst of load from elsewhere on the machine
        # lands on every page alike instead of on whichever was being measured.
        samples: dict[str, list[float]] = {name: [] for name in pages}
        for round_ in range(rounds + 5):
            for name, path in pages.items():
                start = time.perf_counter()
                answer = client.get(path)
                elapsed = (time.perf_counter() - start) * 1000
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
                if round_ >= 5:  # the first rounds warm caches and connections
                    samples[name].append(elapsed)
        for name, times in samples.items():
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            results.append((label, name, statistics.median(times), p95))
    median, p95 = _time(offset_page(engine, events // 2, 50), max(5, rounds // 4))
    results.append((label, "baseline: deep page by OFFSET (query only)", median, p95))
    engine.dispose()
    return results


def bench_unlocked(rounds: int) -> list[tuple[str, str, float, float]]:
    """The unlocked queue: 50 real envelopes (300 KB bodies, hybrid KEM, 3 recipients) opened
    per page view, plus one screenshot; SQLite and the directory blob store."""
    from collector.store.models import Device, Event
    from core import envelope
    from core.keys import PrivateKey
    from dashboard.keysessions import KeyRing
    from dashboard.security import token_hash

    key = PrivateKey.generate("Bench Technician", "technician")
    others = [PrivateKey.generate(f"Other {i}", "head").public for i in range(2)]
    results = []
    with (
        tempfile.TemporaryDirectory() as data,
        signed_in_client(f"sqlite:///{data}/unlocked.db", Path(data)) as client,
    ):
        app = client.app
        with app.state.db.session() as db:
            db.add(Device(id="bench-device", hostname="LAB-01", secret_hash="0" * 64))
            db.commit()
            now = datetime.now(UTC)
            sealed_all: list[bytes] = []
            for i in range(50):
                event_id = str(uuid.uuid4())
                meta = envelope.Metadata(event_id, "bench-device", now - timedelta(minutes=i),
                                         "bullying", 3, "bullying.go_die", "typed")
                header = {"user": "pupil", "host": "LAB-01", "title": "Chat - Browser",
                          "app": "browser", "context": "nobody likes you go die now",
                          "match": {"start": 18, "end": 24, "text": "go die"},
                          "source": "typed", "count": 1, "media_type": "image/webp"}
                sealed = envelope.seal(meta, header, os.urandom(300 * 1024),
                                       [key.public, *others])
                app.state.blobs.put(f"ev/{event_id}", sealed)
                sealed_all.append(sealed)
                db.add(Event(id=event_id, device_id="bench-device", time=meta.time,
                             category="bullying", severity=3, rule="bullying.go_die",
                             blob_key=f"ev/{event_id}", size=len(sealed),
                             sha256=hashlib.sha256(sealed).hexdigest()))
            db.commit()
            first = db.exec(select_first_event()).one()
        ring = KeyRing(900)
        app.state.dashboard_keys = ring
        cookie = next(iter(client.cookies.values()))
        ring.put(token_hash(cookie), key, 1, key.fingerprint)
        page = client.get("/triage")
        assert page.status_code == 200 and page.text.count("<mark>go die</mark>") == 50
        for name, path in (("unlocked page (50 headers opened)", "/triage"),
                           ("one screenshot (300 KB opened)", f"/events/{first}/screenshot")):
            def get(path: str = path) -> None:
                assert client.get(path).status_code == 200

            median, p95 = _time(get, rounds)
            results.append(("sqlite", name, median, p95))
        for name, opener in (("50 envelope.open_header (the queue now)", envelope.open_header),
                             ("50 envelope.open (the queue before)", envelope.open)):
            def open_all(opener: Any = opener) -> None:
                for sealed in sealed_all:
                    opener(sealed, key)

            median, p95 = _time(open_all, rounds)
            results.append(("(crypto)", name, median, p95))
    return results


def select_first_event() -> Any:
    from sqlmodel import select

    from collector.store.models import Event

    return select(Event.id).limit(1)


@contextmanager
def pg_schema(keep: str | None) -> Iterator[str]:
    """A schema of the bench's own: a fresh one dropped afterwards, or ``keep`` (made if missing,
    filled on first use and left in place so that a rerun skips the load)."""
    import psycopg

    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = keep or f"bench_dash_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-unlocked", action="store_true")
    parser.add_argument("--sqlite-path", help="reuse this SQLite file (filled on first use)")
    parser.add_argument("--pg-schema", help="reuse this PostgreSQL schema (filled on first use)")
    args = parser.parse_args()

    results: list[tuple[str, str, float, float]] = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_path = args.sqlite_path or str(Path(tmp) / "bench.db")
            results += bench_database("sqlite", f"sqlite:///{sqlite_path}", args.events,
                                      args.rounds)
    unlocked = [] if args.skip_unlocked else bench_unlocked(max(5, args.rounds // 2))
    if not args.skip_postgres:
        with pg_schema(args.pg_schema) as url:
            results += bench_database("postgresql", url, args.events, args.rounds)

    print()
    print(f"{'database':<11} {'page':<44} {'median ms':>10} {'p95 ms':>8} {'x baseline':>11}")
    worst = 0.0
    for db in dict.fromkeys(r[0] for r in results):
        rows = [r for r in results if r[0] == db]
        baseline = next(r[2] for r in rows if r[1].startswith("baseline"))
        for _, name, median, p95 in rows:
            print(f"{db:<11} {name:<44} {median:>10.1f} {p95:>8.1f} {median / baseline:>11.2f}")
            if not name.startswith("baseline"):
                worst = max(worst, p95)
    for db, name, median, p95 in unlocked:
        print(f"{db:<11} {name:<44} {median:>10.1f} {p95:>8.1f} {'':>11}")
    measured = args.events if not (args.skip_sqlite and args.skip_postgres) else 0
    print(f"triage_p95_ms={worst:.1f} events={measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
