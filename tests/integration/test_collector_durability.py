"""Nothing half-written: a collector killed mid-ingest, orphan blobs, and a full disk."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from collector.ingest import sweep_orphans
from collector.store.blobs import BlobStore
from collector.store.models import Event
from tests.fixtures.collector import CollectorServer
from tests.fixtures.x11 import wait_until


def _rows_and_blobs(server: CollectorServer) -> tuple[dict[str, str], set[str]]:
    db = server.database()
    try:
        with db.session() as s:
            rows = {e.id: e.blob_key for e in s.exec(select(Event)).all()}
    finally:
        db.close()
    return rows, set(BlobStore(server.data_dir / "blobs").keys())


def test_kill_mid_ingest_loses_no_acknowledged_event_and_leaves_no_orphans(
        collector_server_db: CollectorServer) -> None:
    server = collector_server_db
    devices = [server.enrol(f"pc{i}") for i in range(3)]
    acknowledged: list[str] = []
    stop = threading.Event()

    def agent(device: Any) -> None:
        while not stop.is_set():
            try:
                answer = server.post_events(device, 5, body_size=30_000)
            except httpx.HTTPError:
                continue  # the server went away mid-request: the agent would retry later
            if answer.status_code == 200:
                acknowledged.extend(answer.json()["stored"])

    threads = [threading.Thread(target=agent, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 30, timeout=60, what="some stored events")
    server.kill()  # SIGKILL while requests are in flight
    stop.set()
    for t in threads:
        t.join(60)
    server.start()
    rows, blobs = _rows_and_blobs(server)
    assert set(acknowledged) <= set(rows)  # every "stored" answer was durable
    assert set(rows.values()) <= blobs  # never a row without its blob
    db = server.database()
    try:
        removed = sweep_orphans(db, BlobStore(server.data_dir / "blobs"), grace_s=0)
    finally:
        db.close()
    rows_after, blobs_after = _rows_and_blobs(server)
    assert rows_after == rows and blobs_after == set(rows.values())
    assert removed == len(blobs) - len(rows)


def test_startup_sweep_removes_old_orphans_only(collector_server: CollectorServer) -> None:
    server = collector_server
    device = server.enrol()
    stored = server.post_events(device, 2).json()["stored"]
    store = BlobStore(server.data_dir / "blobs")
    store.put("ev/aa/aaaaaaaa-0000-4000-8000-000000000000.0123456789abcdef", b"crash leftover")
    store.put("ev/bb/bbbbbbbb-0000-4000-8000-000000000000.0123456789abcdef", b"in flight")
    old = store.root / "ev/aa/aaaaaaaa-0000-4000-8000-000000000000.0123456789abcdef"
    os.utime(old, (1, 1))
    server.restart()
    wait_until(lambda: not old.exists(), timeout=30, what="the orphan sweep")
    rows, blobs = _rows_and_blobs(server)
    assert set(rows) == set(stored)
    assert blobs == set(rows.values()) | {
        "ev/bb/bbbbbbbb-0000-4000-8000-000000000000.0123456789abcdef"}


@pytest.fixture
def small_disk(tmpfs_dir: Callable[[str], Path]) -> Path:
    """A 4 MB tmpfs: a real file system that really fills up (needs root to mount)."""
    return tmpfs_dir("4m")


def test_full_disk_gives_507_and_loses_nothing(collector_factory: Any, db_url: str,
                                               small_disk: Path) -> None:
    server = collector_factory(database_url=db_url, base_dir=small_disk)
    device = server.enrol()
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 600_000))
    statuses: list[int] = []
    stored: list[str] = []
    for _ in range(40):
        answer = server.post_events(device, 2, body_size=60_000)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            stored += answer.json()["stored"]
        else:
            body = answer.json()
            assert answer.status_code == 507 and body["code"] == "storage-full", body
            assert "\n" not in body["detail"]
            break
    assert statuses[-1] == 507, statuses
    rows, blobs = _rows_and_blobs(server)
    assert set(rows) == set(stored) and blobs == set(rows.values())  # no half-written event
    filler.unlink()  # space again: the agent's retry succeeds
    assert server.post_events(device, 2, body_size=60_000).status_code == 200
    assert "Traceback" not in server.log()


def test_serve_database_url_option_selects_postgresql(tmp_path: Path, keyholders: Any) -> None:
    """`vigil collector serve --database-url` overrides the settings file; Alembic creates the
    schema on first start."""
    from tests.fixtures.collector import prepare_collector
    from tests.fixtures.db import drop_pg_schema, pg_schema_url

    url, schema = pg_schema_url()
    try:
        server = prepare_collector(tmp_path / "cli", url, keyholders, {})
        (server.data_dir / "vigil.db").unlink(missing_ok=True)
        settings = server.settings()
        # The file says SQLite; the option says PostgreSQL (where the keyholders already are).
        from collector.settings import SETTINGS_FILE, render_settings_file

        (server.data_dir / SETTINGS_FILE).write_text(
            render_settings_file(settings.with_overrides(database_url="")))
        server.serve_args = ["--database-url", url]
        server.start()
        try:
            device = server.enrol()
            assert server.post_events(device, 2).status_code == 200
            assert not (server.data_dir / "vigil.db").exists()
            db = server.database()  # the fixture's own handle is on the PostgreSQL URL
            try:
                with db.session() as s:
                    assert len(s.exec(select(Event)).all()) == 2
            finally:
                db.close()
        finally:
            server.close()
    finally:
        drop_pg_schema(schema)
