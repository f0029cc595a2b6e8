"""Blobs in PostgreSQL: the second blob-store backend (settings: ``blob_store = "postgresql"``).

With the sealed envelopes in the same database as their rows, a trust backs up one system
(`vigil collector backup` runs pg_dump in one snapshot: rows and blobs agree), and several
collector instances share the blobs without a shared file system.

A blob is a row of ``vigil_blob`` (key, size, when it was stored) and its bytes are rows of
``vigil_blob_chunk``, CHUNK bytes each. Sealed bytes do not compress, so the chunks are stored
EXTERNAL (out of line, uncompressed: PostgreSQL does not try). ``chunks`` streams a blob one
chunk at a time (a server-side cursor), so backups and hash checks never hold a whole capture;
``get`` joins them for callers that need the bytes whole (opening an envelope does). Writes put
no more in memory than the caller already holds: chunks are views of its bytes. A put is one
transaction: a key holds all of its bytes or none, and overwriting replaces every chunk.

The two tables are created by the store at its first use (under the schema's advisory lock),
not by a migration: they exist only where this backend is chosen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from collector.errors import BlobNotFound, StorageError
from collector.store.blobs import check_key
from collector.store.db import storage_error

__all__ = ["CHUNK", "PgBlobStore"]

CHUNK = 256 * 1024
_DDL = (
    ("CREATE TABLE IF NOT EXISTS vigil_blob (key varchar(300) PRIMARY KEY,"
     " size bigint NOT NULL, stored_at timestamptz NOT NULL DEFAULT now())"),
    ("CREATE TABLE IF NOT EXISTS vigil_blob_chunk (key varchar(300) NOT NULL REFERENCES"
     " vigil_blob (key) ON DELETE CASCADE, seq integer NOT NULL, data bytea NOT NULL,"
     " PRIMARY KEY (key, seq))"),
    "ALTER TABLE vigil_blob_chunk ALTER COLUMN data SET STORAGE EXTERNAL",
    "CREATE INDEX IF NOT EXISTS vigil_blob_stored_at ON vigil_blob (stored_at)",
)
_READ = ("SELECT b.size, c.data FROM vigil_blob b LEFT JOIN vigil_blob_chunk c ON c.key = b.key"
         " WHERE b.key = :k ORDER BY c.seq")


class PgBlobStore:
    """put/get/chunks/delete/exists on two PostgreSQL tables (the BlobStore interface)."""

    def __init__(self, engine: Engine, chunk_size: int = CHUNK) -> None:
        if engine.dialect.name != "postgresql":
            raise StorageError('blob_store = "postgresql" needs a PostgreSQL database_url')
        self.engine = engine
        self.chunk_size = chunk_size
        self._ready = False
        self._lock = threading.Lock()

    def _tables(self) -> None:
        """Create the tables once, on first use (building the app must not touch the
        database); several instances starting at once take turns on the schema lock."""
        if self._ready:
            return
        from collector.store.schema import schema_lock

        with self._lock:
            if self._ready:
                return
            with schema_lock(self.engine), self.engine.begin() as conn:
                for ddl in _DDL:
                    conn.execute(text(ddl))
            self._ready = True

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store several blobs in one transaction (all or none)."""
        checked = [(check_key(key), memoryview(data)) for key, data in items]
        if not checked:
            return
        size = self.chunk_size
        chunks = [{"k": key, "s": n, "d": view[off:off + size]}
                  for key, view in checked
                  for n, off in enumerate(range(0, max(len(view), 1), size))]
        self._tables()
        try:
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM vigil_blob WHERE key = ANY(:keys)"),
                             {"keys": [key for key, _ in checked]})
                conn.execute(text("INSERT INTO vigil_blob (key, size) VALUES (:k, :n)"),
                             [{"k": key, "n": len(view)} for key, view in checked])
                conn.execute(text("INSERT INTO vigil_blob_chunk (key, seq, data) "
                                  "VALUES (:k, :s, :d)"), chunks)
        except DBAPIError as exc:
            raise storage_error(exc) from None

    def get(self, key: str) -> bytes:
        return b"".join(self.chunks(key))

    def chunks(self, key: str) -> Iterator[bytes]:
        """The blob's bytes, a chunk at a time, from one consistent read."""
        check_key(key)
        self._tables()
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=4).execute(text(_READ), {"k": key})
            expected, seen = -1, 0
            for size, data in rows:
                expected = size
                if data is not None:
                    seen += len(data)
                    yield bytes(data)
            if expected < 0:
                raise BlobNotFound(f"blob {key!r} not found")
            if seen != expected:
                raise StorageError(f"blob {key!r} is incomplete in the database")

    def exists(self, key: str) -> bool:
        check_key(key)
        self._tables()
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM vigil_blob WHERE key = :k"),
                                {"k": key}).first() is not None

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        check_key(key)
        self._tables()
        try:
            with self.engine.begin() as conn:
                return conn.execute(text("DELETE FROM vigil_blob WHERE key = :k RETURNING key"),
                                    {"k": key}).first() is not None
        except DBAPIError as exc:
            raise storage_error(exc) from None

    def keys(self) -> Iterator[str]:
        yield from self.keys_older_than(None)

    def keys_older_than(self, cutoff: float | None, prefix: str = "") -> Iterator[str]:
        """Stored keys beginning with ``prefix``, stored before ``cutoff`` (epoch seconds)."""
        self._tables()
        query = "SELECT key FROM vigil_blob WHERE key LIKE :p"
        if cutoff is not None:
            query += " AND stored_at < to_timestamp(:c)"
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=1000).execute(
                text(query), {"p": pattern, "c": cutoff})
            for (key,) in rows:
                yield key

    def mtime(self, key: str) -> float:
        check_key(key)
        self._tables()
        with self.engine.connect() as conn:
            when = conn.execute(text("SELECT extract(epoch FROM stored_at) FROM vigil_blob "
                                     "WHERE key = :k"), {"k": key}).scalar()
        if when is None:
            raise BlobNotFound(f"blob {key!r} not found")
        return float(when)

    def remove_stale_temporaries(self, older_than_s: float) -> int:
        """Nothing to do: an interrupted put is a rolled-back transaction."""
        return 0
