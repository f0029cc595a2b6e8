"""The blob store: sealed envelopes by key, in a directory (the default) or in PostgreSQL.

``open_blobs(settings, engine)`` gives the store the settings choose (``blob_store``): this
module's :class:`BlobStore` on ``blob_dir``, or collector.store.pgblobs.PgBlobStore in the
collector's PostgreSQL database. Both have the interface :class:`Blobs` describes.

Keys are checked against a strict pattern before they touch the filesystem, so no key can name
a path outside the store. Writes are atomic and durable: a temporary file is written and fsynced,
renamed into place, and the directory fsynced, so after a crash a key holds all of its bytes or
does not exist.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from collector.settings import Settings

from collector.errors import BlobKeyError, BlobNotFound, StorageError, StorageFull

__all__ = [
    "BLOB_STORES",
    "KEY_PATTERN",
    "WRITE_WORKERS",
    "BlobStore",
    "Blobs",
    "check_key",
    "fsync_dir",
    "open_blobs",
    "write_synced",
]

# Up to four "/"-separated segments of letters, digits, "_" and "-", each with one optional
# ".suffix": no "..", no absolute paths, no hidden files, no backslashes.
KEY_PATTERN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}(?:\.[A-Za-z0-9_-]{1,32})?"
    r"(?:/[A-Za-z0-9][A-Za-z0-9_-]{0,99}(?:\.[A-Za-z0-9_-]{1,32})?){0,3}"
)
TMP_PREFIX = ".tmp-"
# Threads that write and fsync blobs at once (all requests share them): bench/ingest.py uses
# the same number for its raw ceiling.
WRITE_WORKERS = 32
READ_CHUNK = 1 << 20
BLOB_STORES = ("files", "postgresql")  # settings: blob_store


class Blobs(Protocol):
    """What every blob store offers; a put is atomic (a key holds all its bytes or none)."""

    def put(self, key: str, data: bytes) -> None: ...
    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...
    def get(self, key: str) -> bytes: ...
    def chunks(self, key: str) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def keys(self) -> Iterator[str]: ...
    def keys_older_than(self, cutoff: float | None, prefix: str = "") -> Iterator[str]: ...
    def mtime(self, key: str) -> float: ...
    def remove_stale_temporaries(self, older_than_s: float) -> int: ...


def open_blobs(settings: Settings, engine: Engine) -> Blobs:
    """The blob store ``settings`` choose; ``engine`` is the collector's database."""
    if settings.blob_store == "postgresql":
        from collector.store.pgblobs import PgBlobStore

        return PgBlobStore(engine)
    return BlobStore(settings.blob_dir)


def check_key(key: str) -> str:
    if not isinstance(key, str) or len(key) > 300 or not KEY_PATTERN.fullmatch(key):
        raise BlobKeyError(f"invalid blob key {key[:60]!r}" if isinstance(key, str)
                           else "invalid blob key")
    return key


class BlobStore:
    """put/get/delete/exists on a directory tree."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store several blobs durably, each atomically: every file is written and fsynced
        under a temporary name and renamed into place, then each directory touched is fsynced
        once (not once per blob). The fsyncs of a batch run at once, so the file system can
        commit them together instead of one after another. On failure the temporaries are
        removed; blobs already renamed stay, as after a crash, for the caller to delete or the
        orphan sweep."""
        paths = [(self._path(key), data) for key, data in items]  # check every key first
        pending: list[tuple[Path, Path]] = []
        attempt = secrets.token_hex(6)  # one getrandom per call, not per blob
        try:
            for path in {p.parent for p, _data in paths}:
                path.mkdir(parents=True, exist_ok=True)
            for n, (path, _data) in enumerate(paths):
                pending.append((path.parent / f"{TMP_PREFIX}{path.name}.{attempt}{n:x}", path))
            jobs = [(tmp, data) for (tmp, _path), (_p, data) in zip(pending, paths, strict=True)]
            if len(jobs) == 1:
                write_synced(*jobs[0])
            else:
                for _ in _fsync_pool().map(lambda job: write_synced(*job), jobs):
                    pass  # re-raises the first OSError
            for tmp, path in pending:
                os.replace(tmp, path)
            for directory in {path.parent for _tmp, path in pending}:
                fsync_dir(directory)
        except OSError as exc:
            for tmp, _path in pending:
                tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull("the blob store is full: free disk space") from None
            raise StorageError(f"cannot write to the blob store: {exc.strerror}") from None

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {key!r} not found") from None

    def chunks(self, key: str) -> Iterator[bytes]:
        """The blob's bytes a piece at a time (a capture need not be held whole)."""
        try:
            with open(self._path(key), "rb") as fh:
                while block := fh.read(READ_CHUNK):
                    yield block
        except FileNotFoundError:
            raise BlobNotFound(f"blob {key!r} not found") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def keys(self) -> Iterator[str]:
        """Every stored key (not temporaries), in no particular order."""
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in files:
                if not name.startswith(TMP_PREFIX):
                    key = (rel / name).as_posix()
                    if KEY_PATTERN.fullmatch(key):
                        yield key

    def keys_older_than(self, cutoff: float | None, prefix: str = "") -> Iterator[str]:
        """Stored keys beginning with ``prefix``, written before ``cutoff`` (epoch seconds)."""
        for key in self.keys():
            if key.startswith(prefix):
                try:
                    if cutoff is None or self.mtime(key) < cutoff:
                        yield key
                except FileNotFoundError:
                    continue  # deleted meanwhile

    def mtime(self, key: str) -> float:
        return self._path(key).stat().st_mtime

    def remove_stale_temporaries(self, older_than_s: float) -> int:
        """Delete temporaries left by a crash mid-write."""
        cutoff = time.time() - older_than_s
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                if name.startswith(TMP_PREFIX) and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _fsync_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=WRITE_WORKERS, thread_name_prefix="vigil-blob-write")
        return _POOL


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (bench/ingest.py's ceiling runs this too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
