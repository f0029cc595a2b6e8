"""Create and upgrade the schema with Alembic (collector/store/migrations)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, select, text
from sqlmodel import Session

from collector.store.models import AuditHead

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "schema_lock", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_SCHEMA_LOCK = 0x5649_4749_4C5F_5343  # "VIGIL_SC": one cluster-wide lock for migrations


def alembic_config(engine: Engine):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; idempotent, safe to call at every start, and safe when
    several instances start at once on one PostgreSQL (they take turns on an advisory lock)."""
    from alembic import command

    with schema_lock(engine):
        command.upgrade(alembic_config(engine), revision)
    with Session(engine) as session:
        if session.exec(select(AuditHead).where(AuditHead.id == 1)).first() is None:
            session.add(AuditHead(id=1))
            session.commit()


_PROCESS_LOCK = threading.Lock()  # alembic's command API keeps global state


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Migrations one at a time: in this process, and across processes (a PostgreSQL advisory
    lock, or on SQLite an exclusive lock on a file beside the database)."""
    with _PROCESS_LOCK:
        if engine.dialect.name == "postgresql":
            with _pg_lock(engine):
                yield
        else:
            with _sqlite_lock(engine):
                yield


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    import fcntl
    import os

    database = engine.url.database or ""
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.schema.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: the other process finishes, then we check
        yield
    finally:
        os.close(fd)


@contextmanager
def _pg_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
