"""Database engine, sessions, schema, and the single writer for SQLite.

SQLite allows one writer at a time; many threads racing for its lock turn into "database is
locked" errors and wasted fsyncs. Following datasette, writes that matter for throughput (event
ingest) go through one writer thread with its own connection, in WAL mode, while reads use the
pool. PostgreSQL has no such limit, so there ``Database.write`` runs the job in the caller.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from collector.errors import StorageError, StorageFull

__all__ = ["Database", "advisory_lock", "is_sqlite", "make_engine", "storage_error"]

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
GROUP_COMMIT_MAX = 16


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


SQLITE_CACHE_KIB = 256  # per connection; 40 connections at most (pool_size + max_overflow)


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with full fsync, or PostgreSQL in UTC."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=20,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    event.listen(engine, "connect", _postgres_utc)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the agent is told "stored" and deletes its copy.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Each pooled connection keeps its own page cache (SQLite's default: 2 MiB), filled as the
    # database grows: 40 connections could hold 80 MiB, and the soak test saw the collector's
    # RSS climb 9 MiB a minute from it, a bounded cache that reads as a leak. The OS page cache
    # holds the file anyway, so a miss here is a read from memory, not from disk.
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def _postgres_utc(dbapi_conn: Any, _record: Any) -> None:
    # Timestamps are stored as naive UTC; the session time zone must not shift them.
    with dbapi_conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    dbapi_conn.commit()


def storage_error(exc: DBAPIError) -> StorageError:
    """The agent-facing error for a database that cannot write (507 when the disk is full)."""
    message = str(exc.orig).lower()
    if "full" in message or "no space" in message:
        return StorageFull("the database disk is full: free disk space")
    return StorageError("the database cannot take writes now; retry later")


class Database:
    """The engine plus a ``write`` that serialises write jobs on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[tuple[Callable[[Session], Any], Future[Any]] | None] = (
            queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def write(self, job: Callable[[Session], T]) -> T:
        """Run ``job(session)`` and commit; on SQLite in the one writer thread, possibly in one
        transaction with other queued jobs (and run again alone if one of them fails), so a job
        must only touch the database through ``session``."""
        if not self.is_sqlite:
            return self._run(job)
        self._ensure_thread()
        done: Future[T] = Future()
        self._queue.put((job, done))
        return done.result()

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)
        self.engine.dispose()

    def _run(self, job: Callable[[Session], T]) -> T:
        with self.session() as session:
            try:
                result = job(session)
                session.commit()
            except OperationalError as exc:
                session.rollback()
                raise storage_error(exc) from None
            except BaseException:
                session.rollback()
                raise
            return result

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="vigil-sqlite-writer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            # Group commit: jobs that queued up meanwhile share one transaction, so one fsync
            # of the WAL serves several requests.
            while len(group) < GROUP_COMMIT_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(more)
            self._run_group([(job, done) for job, done in group
                             if done.set_running_or_notify_cancel()])

    def _run_group(self, group: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        if len(group) > 1:
            try:
                results = self._run(lambda session: [job(session) for job, _done in group])
            except BaseException:  # noqa: BLE001, S110 - one job failed: run each on its own below
                pass
            else:
                for (_job, done), result in zip(group, results, strict=True):
                    done.set_result(result)
                return
        for job, done in group:
            try:
                done.set_result(self._run(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                done.set_exception(exc)


@contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True if this process now holds the lock ``name``, False if another holder has it.

    With several collector instances on one PostgreSQL, exactly one runs each scheduled job
    (a session-level advisory lock). On SQLite an exclusive lock on a file beside the database
    does the same for the processes sharing it (the server and a `vigil collector` command).
    """
    if is_sqlite(engine):
        with _file_lock(engine, name) as got:
            yield got
        return
    key = _lock_key(name)
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


@contextmanager
def _file_lock(engine: Engine, name: str) -> Iterator[bool]:
    import fcntl
    import re

    database = engine.url.database or ""
    if not database or database == ":memory:":
        yield True  # a private database: nobody else to exclude
        return
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    fd = os.open(f"{database}.{safe}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
