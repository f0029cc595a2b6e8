"""The Alembic migrations build exactly the tables the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from collector.store.db import Database
from collector.store.schema import current_revision, upgrade


def test_migrations_match_the_models(database: Database) -> None:
    if importlib.util.find_spec("dashboard.models") is not None:
        import dashboard.models  # noqa: F401  (its table is created by migration 0002)
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []


def test_upgrade_is_idempotent(database: Database) -> None:
    before = current_revision(database.engine)
    upgrade(database.engine)
    assert current_revision(database.engine) == before is not None


def test_advisory_lock_lets_one_instance_run_a_job(database: Database) -> None:
    from collector.store.db import advisory_lock

    with advisory_lock(database.engine, "vigil-job:test") as first:
        assert first
        with advisory_lock(database.engine, "vigil-job:test") as second:
            assert second is False  # as another instance (or a CLI run) would be told
        with advisory_lock(database.engine, "vigil-job:other") as other:
            assert other
    with advisory_lock(database.engine, "vigil-job:test") as again:
        assert again


def test_instances_starting_together_migrate_once(db_url: str) -> None:
    """Several collectors starting at the same moment on one fresh database all come up."""
    import threading

    from collector.store.db import make_engine

    engines = [make_engine(db_url) for _ in range(3)]
    errors: list[BaseException] = []

    def start(engine: object) -> None:
        try:
            upgrade(engine)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert {current_revision(e) for e in engines} == {current_revision(engines[0])} != {None}
    for e in engines:
        e.dispose()
