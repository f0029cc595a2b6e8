"""The blob store: strict keys, atomic durable writes, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.errors import BlobKeyError, BlobNotFound
from collector.store.blobs import TMP_PREFIX, BlobStore


def test_put_get_delete_round_trip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    store.put("ev/ab/abc-def.0123", b"sealed bytes")
    assert store.exists("ev/ab/abc-def.0123")
    assert store.get("ev/ab/abc-def.0123") == b"sealed bytes"
    assert list(store.keys()) == ["ev/ab/abc-def.0123"]
    assert store.delete("ev/ab/abc-def.0123") is True
    assert store.delete("ev/ab/abc-def.0123") is False
    with pytest.raises(BlobNotFound):
        store.get("ev/ab/abc-def.0123")


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put("k", b"a" * 100_000)
    store.put("k", b"b" * 10)
    assert store.get("k") == b"b" * 10
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("key", [
    "../etc/passwd", "..", "a/../../b", "/etc/passwd", "a//b", "a/./b", ".hidden", "a/.b",
    "a\\b", "a b", "", "a/b/c/d/e", "x" * 101, "a.b.c", "ev/%2e%2e/x", "a\x00b", "é",
])
def test_keys_that_could_escape_the_store_are_refused(tmp_path: Path, key: str) -> None:
    store = BlobStore(tmp_path / "blobs")
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key),
                 lambda: store.exists(key), lambda: store.delete(key)):
        with pytest.raises(BlobKeyError):
            call()
    assert not (tmp_path / "passwd").exists()
    assert list((tmp_path / "blobs").iterdir()) == []


def test_stale_temporaries_from_a_crash_are_removed(tmp_path: Path) -> None:
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
