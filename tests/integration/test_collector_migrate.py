"""`vigil collector migrate`: a real school on SQLite moved to the real PostgreSQL.

A collector on SQLite gets devices, events, an incident and audit entries over its real API;
it is stopped and migrated, first interrupted (the test hook stops after some rows, as a crash
would), then resumed; the copy must equal the source row for row. Then a collector is started
on the PostgreSQL copy: a keyholder opens a capture and the audit chain verifies.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fixtures.collector import REPO, seal_event
from tests.fixtures.db import drop_pg_schema, pg_schema_url

pytestmark = pytest.mark.postgres


def vigil(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args], input=stdin, check=False,
                          capture_output=True, cwd=REPO, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def pg_target() -> Iterator[str]:
    url, schema = pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


def _utc(value: Any) -> Any:
    """SQLite gives naive UTC times, PostgreSQL's timestamptz columns aware ones."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key (for comparing source and copy)."""
    from sqlalchemy import MetaData, select

    from collector.store.db import make_engine

    engine = make_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        out = {}
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                cols = sorted(c.name for c in table.columns)
                query = select(*[table.c[c] for c in cols]).order_by(*table.primary_key.columns)
                out[table.name] = [tuple(_utc(v) for v in row) for row in conn.execute(query)]
        return out
    finally:
        engine.dispose()


def test_migrate_interrupted_then_resumed_equals_the_source_and_serves(
        collector_factory: Any, pg_target: str) -> None:
    from collector.store.models import Incident, IncidentEvent

    server = collector_factory()
    devices = [server.enrol(f"pc-{n}") for n in range(3)]
    bodies: dict[str, bytes] = {}
    for n, device in enumerate(devices):
        events = []
        for k in range(4):
            body = f"capture {n}.{k} ".encode() * 50
            event_id, data = seal_event(device.id, server.keys.publics, body=body)
            bodies[event_id] = body
            events.append({"id": event_id, "envelope": base64.b64encode(data).decode()})
        answer = server.client.post("/api/v1/events", json={"events": events},
                                    headers=device.auth)
        assert answer.status_code == 200, answer.text
        assert server.client.post("/api/v1/heartbeat", json={"spool_depth": n},
                                  headers=device.auth).status_code == 200
    first_event = next(iter(bodies))
    db = server.database()
    try:
        def make_incident(session: Any) -> None:
            from collector.audit import record

            incident = Incident(title="Concern raised", created_by=server.keys.head.name)
            session.add(incident)
            session.flush()
            session.add(IncidentEvent(incident_id=incident.id, event_id=first_event))
            record(session, server.keys.head.name, "incident.create", str(incident.id))

        db.write(make_incident)
    finally:
        db.close()
    server.stop()
    source_url = server.database_url
    data = str(server.data_dir)

    # An empty target that is not PostgreSQL, and a target holding someone else's rows: refused.
    bad = vigil("migrate", "--data", data, "--to", "sqlite:////tmp/x.db")
    assert bad.returncode == 1 and bad.stderr.decode().count("\n") == 1, bad.stderr
    assert b"PostgreSQL" in bad.stderr and b"Traceback" not in bad.stderr

    # Interrupted after 7 rows (inside the first table, the audit chain), then resumed.
    cut = vigil("migrate", "--data", data, "--to", pg_target,
                env={"VIGIL_TEST_MIGRATE_STOP_AFTER": "7"})
    assert cut.returncode == 1, cut.stderr
    assert b"stopped after 7 rows" in cut.stderr and b"Traceback" not in cut.stderr
    done = vigil("migrate", "--data", data, "--to", pg_target)
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode())
    assert "resuming a previous partial run" in out
    assert "auditentry:" in out and "7 already there" in out, out
    assert "event: 12 rows, 12 copied" in out, out
    assert "migrated: " in out and "12 blobs match" in out and "database_url = " in out
    assert _rows(source_url) == _rows(pg_target)

    # A third run copies nothing and still verifies.
    again = vigil("migrate", "--data", data, "--to", pg_target)
    assert again.returncode == 0 and "event: 12 rows, 0 copied, 12 already there" in \
        again.stdout.decode(), again.stdout.decode()

    # Another collector's partial copy is refused: a target whose first audit entry differs.
    other_url, other_schema = pg_schema_url()
    try:
        from collector.audit import record
        from collector.store.db import Database, make_engine
        from collector.store.schema import upgrade

        engine = make_engine(other_url)
        upgrade(engine)
        other = Database(engine)
        other.write(lambda s: record(s, "someone", "elsewhere"))
        other.close()
        refused = vigil("migrate", "--data", data, "--to", other_url)
        assert refused.returncode == 1, refused.stdout
        err = refused.stderr.decode()
        assert err.count("\n") == 1 and "not a partial copy of this collector" in err, err
    finally:
        drop_pg_schema(other_schema)

    # Switch the collector to the copy, as the printed hint says, and use it.
    settings_file = server.data_dir / "settings.toml"
    settings_file.write_text(settings_file.read_text().replace(
        'database_url = ""', f"database_url = {pg_target!r}".replace("'", '"')))
    server.database_url = pg_target
    server.start()
    new = server.enrol("pc-after")  # new rows: the sequences were moved past the copied ids
    assert server.post_events(new, 2).status_code == 200
    server.stop()
    opened = vigil("event", "open", "--data", data, first_event, "--keyholder",
                   server.keys.head.name, "--password-stdin",
                   stdin=server.keys.head.password.encode() + b"\n")
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == bodies[first_event]
    verified = vigil("audit", "verify", "--data", data)
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    assert b"audit log intact" in verified.stdout


def test_migrate_with_the_blobs_into_postgresql_serves_without_blob_dir(
        collector_factory: Any, pg_target: str) -> None:
    """--blobs-to-database: the captures are copied into the target's blob tables and verified
    there; with blob_store = "postgresql" the collector opens them with blob_dir gone."""
    server = collector_factory()
    device = server.enrol("pc-1")
    bodies: dict[str, bytes] = {}
    for k in range(4):
        body = f"capture {k} ".encode() * 50
        event_id, data = seal_event(device.id, server.keys.publics, body=body)
        bodies[event_id] = body
        answer = server.client.post("/api/v1/events", headers=device.auth, json={
            "events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]})
        assert answer.status_code == 200, answer.text
    server.stop()
    data = str(server.data_dir)

    done = vigil("migrate", "--data", data, "--to", pg_target, "--blobs-to-database")
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode())
    assert "blobs: 4 copied into the database, 0 already there" in out, out
    assert "4 blobs match" in out and 'blob_store = "postgresql"' in out, out
    again = vigil("migrate", "--data", data, "--to", pg_target, "--blobs-to-database")
    assert "blobs: 0 copied into the database, 4 already there" in again.stdout.decode()

    settings_file = server.data_dir / "settings.toml"
    settings_file.write_text(settings_file.read_text()
                             .replace('database_url = ""', f'database_url = "{pg_target}"')
                             .replace('blob_store = "files"', 'blob_store = "postgresql"'))
    (server.data_dir / "blobs").rename(server.data_dir / "blobs.moved")
    server.database_url = pg_target
    server.start()
    assert server.post_events(server.enrol("pc-after"), 1).status_code == 200
    server.stop()
    assert not list((server.data_dir / "blobs").rglob("*.*"))  # the new capture went in too
    for event_id, body in bodies.items():
        opened = vigil("event", "open", "--data", data, event_id, "--keyholder",
                       server.keys.head.name, "--password-stdin",
                       stdin=server.keys.head.password.encode() + b"\n")
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout == body
