"""The blob stores: strict keys, atomic durable writes, clear errors.

Every test taking ``blob_store`` runs on both backends (the filesystem and PostgreSQL,
tests/fixtures/blobs.py); the rest are about what only the filesystem store has (temporaries,
file modes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from collector.errors import BlobKeyError, BlobNotFound
from collector.store.blobs import TMP_PREFIX, BlobStore
from tests.fixtures.blobs import SMALL_CHUNK


def test_put_get_delete_round_trip(blob_store: Any) -> None:
    store = blob_store
    store.put("ev/ab/abc-def.0123", b"sealed bytes")
    assert store.exists("ev/ab/abc-def.0123")
    assert store.get("ev/ab/abc-def.0123") == b"sealed bytes"
    assert list(store.keys()) == ["ev/ab/abc-def.0123"]
    assert store.delete("ev/ab/abc-def.0123") is True
    assert store.delete("ev/ab/abc-def.0123") is False
    assert not store.exists("ev/ab/abc-def.0123")
    with pytest.raises(BlobNotFound):
        store.get("ev/ab/abc-def.0123")
    with pytest.raises(BlobNotFound):
        list(store.chunks("ev/ab/abc-def.0123"))


def test_overwrite_replaces_every_byte(blob_store: Any) -> None:
    blob_store.put("k", b"a" * (SMALL_CHUNK * 5 + 7))
    blob_store.put("k", b"b" * 10)
    assert blob_store.get("k") == b"b" * 10
    assert list(blob_store.keys()) == ["k"]


def test_large_blobs_stream_in_pieces_and_empty_ones_round_trip(blob_store: Any) -> None:
    data = os.urandom(SMALL_CHUNK * 7 + 123)
    blob_store.put_many([("ev/1/a", data), ("ev/1/empty", b"")])
    pieces = list(blob_store.chunks("ev/1/a"))
    assert b"".join(pieces) == data and blob_store.get("ev/1/a") == data
    assert blob_store.get("ev/1/empty") == b""
    assert sorted(blob_store.keys()) == ["ev/1/a", "ev/1/empty"]


def test_a_batch_with_a_bad_key_stores_nothing(blob_store: Any) -> None:
    with pytest.raises(BlobKeyError):
        blob_store.put_many([("ev/1/good", b"x"), ("../bad", b"y")])
    assert list(blob_store.keys()) == []


def test_keys_older_than_a_cutoff(blob_store: Any) -> None:
    blob_store.put("ev/old", b"1")
    blob_store.put("other/old", b"2")
    assert abs(blob_store.mtime("ev/old") - time.time()) < 60
    future, past = time.time() + 60, time.time() - 60
    assert sorted(blob_store.keys_older_than(future)) == ["ev/old", "other/old"]
    assert list(blob_store.keys_older_than(future, prefix="ev/")) == ["ev/old"]
    assert list(blob_store.keys_older_than(past)) == []


@pytest.mark.parametrize("key", [
    "../etc/passwd", "..", "a/../../b", "/etc/passwd", "a//b", "a/./b", ".hidden", "a/.b",
    "a\\b", "a b", "", "a/b/c/d/e", "x" * 101, "a.b.c", "ev/%2e%2e/x", "a\x00b", "é",
])
def test_keys_that_could_escape_the_store_are_refused(blob_store: Any, tmp_path: Path,
                                                      key: str) -> None:
    store = blob_store
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key),
                 lambda: store.exists(key), lambda: store.delete(key)):
        with pytest.raises(BlobKeyError):
            call()
    assert not (tmp_path / "passwd").exists()
    assert list(store.keys()) == []


def test_files_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put("k", b"a" * 100_000)
    store.put("k", b"b" * 10)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"


def test_files_stale_temporaries_from_a_crash_are_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    (tmp_path / "ev").mkdir()
    stale = tmp_path / "ev" / f"{TMP_PREFIX}x.123"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    fresh = tmp_path / "ev" / f"{TMP_PREFIX}y.456"
    fresh.write_bytes(b"in flight")
    assert store.remove_stale_temporaries(older_than_s=60) == 1
    assert not stale.exists() and fresh.exists()
    assert list(store.keys()) == []  # temporaries are never listed as blobs


def test_the_orphan_sweep_removes_only_old_blobs_no_row_names(blob_store: Any,
                                                              tmp_path: Path) -> None:
    """On each store, with the database it goes with (PostgreSQL blobs: the same database)."""
    from datetime import UTC, datetime

    from collector.ingest import sweep_orphans
    from collector.store.db import Database, make_engine
    from collector.store.models import Device, Event
    from collector.store.schema import upgrade

    engine = getattr(blob_store, "engine", None) or make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    upgrade(engine)
    db = Database(engine)
    try:
        def rows(session: Any) -> None:
            session.add(Device(id="d1", hostname="pc", secret_hash="x"))
            session.flush()
            session.add(Event(id="e1", device_id="d1", time=datetime.now(UTC), category="suicide",
                              severity=5, rule="r", blob_key="ev/1/kept", size=1, sha256="0" * 64))

        db.write(rows)
        for key in ("ev/1/kept", "ev/1/orphan", "other/not-an-event"):
            blob_store.put(key, b"sealed")
        assert sweep_orphans(db, blob_store, grace_s=3600) == 0  # too young: maybe in flight
        assert sweep_orphans(db, blob_store, grace_s=-60) == 1
        assert sorted(blob_store.keys()) == ["ev/1/kept", "other/not-an-event"]
    finally:
        db.close()
