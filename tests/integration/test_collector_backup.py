"""`vigil collector backup` and `restore`, on SQLite and PostgreSQL.

A running collector is backed up (online), gets one more event, and is lost; the backup is
restored into an empty data directory (and, on PostgreSQL, the emptied database), where a
keyholder opens a capture and the audit chain verifies against the restored log.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.collector import REPO, seal_event
from tests.fixtures.db import drop_pg_schema, pg_schema_url


def vigil(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args], input=stdin,
                          check=False, capture_output=True, cwd=REPO, timeout=300,
                          env=dict(os.environ))


def _post(server: Any, device: Any, body: bytes) -> str:
    event_id, data = seal_event(device.id, server.keys.publics, body=body)
    answer = server.client.post("/api/v1/events", headers=device.auth, json={
        "events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]})
    assert answer.status_code == 200, answer.text
    return event_id


def _lose_database(url: str) -> None:
    """The server is gone: on PostgreSQL its schema is dropped (the test's own schema)."""
    from sqlalchemy import text

    from collector.store.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("vt_")
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.commit()
    finally:
        engine.dispose()


def test_backup_online_then_restore_opens_a_capture_and_verifies(
        collector_server_db: Any, db_url: str, tmp_path: Path) -> None:
    _backup_restore_open_verify(collector_server_db, db_url, tmp_path)


@pytest.mark.postgres
def test_backup_and_restore_with_the_blobs_in_postgresql(collector_factory: Any,
                                                        tmp_path: Path) -> None:
    """blob_store = "postgresql": the captures travel inside the dump, none as files."""
    url, schema = pg_schema_url()
    try:
        server = collector_factory(database_url=url, blob_store="postgresql")
        names = _backup_restore_open_verify(server, url, tmp_path)
        assert not [n for n in names if n.startswith("blobs/")]
        assert not list((server.settings().blob_dir / "ev").rglob("*"))
    finally:
        drop_pg_schema(schema)  # ends the collector's connections first


def _backup_restore_open_verify(server: Any, db_url: str, tmp_path: Path) -> set[str]:
    """Back up a running collector, lose it, restore, open every capture, verify the audit
    chain; the names in the backup."""
    device = server.enrol("pc-1")
    bodies = {_post(server, device, f"capture {n} ".encode() * 40): f"capture {n} ".encode() * 40
              for n in range(3)}
    out = tmp_path / "vigil-backup.tar"
    made = vigil("backup", "--data", str(server.data_dir), "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert b"backup written: " in made.stdout and b"3 blobs" in made.stdout, made.stdout
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"vigil-backup.json", "data/settings.toml", "data/tls/cert.pem", "data/tls/key.pem",
            "data/secrets.key", "data/audit.log"} <= names
    assert again_refused(out, server)
    later = _post(server, device, b"after the backup")  # not in the backup
    server.stop()
    head = server.keys.head
    header = tmp_path / "header.json"
    viewed = vigil("event", "open", "--data", str(server.data_dir), later, "--keyholder",
                   head.name, "--password-stdin", "--header-out", str(header),
                   stdin=head.password.encode() + b"\n")
    assert viewed.returncode == 0, viewed.stderr  # an audit entry the backup lacks
    assert json.loads(header.read_text())["meta"]["event_id"] == later  # what the keyholder keeps

    target = tmp_path / "restored"
    extra: list[str] = []
    if db_url.startswith("postgresql"):
        _lose_database(db_url)
        extra = ["--database-url", db_url]
    restored = vigil("restore", "--data", str(target), "--from", str(out), *extra)
    assert restored.returncode == 0, (restored.stdout, restored.stderr)
    assert b"audit log intact" in restored.stdout and b"After restoring a backup" in \
        restored.stdout
    # The key that seals webhook URLs comes back with them, private.
    assert (target / "secrets.key").read_bytes() == server.settings().secrets_key.read_bytes()
    assert (target / "secrets.key").stat().st_mode & 0o077 == 0

    # The lost server's log (if it survives) holds the entries since the backup: checked
    # against it before anything is added, the restored database is truncated.
    against_old = vigil("audit", "verify", "--data", str(target), "--log",
                        str(server.settings().audit_log))
    assert against_old.returncode == 1 and b"truncated" in against_old.stderr, against_old.stderr

    busy = vigil("restore", "--data", str(target), "--from", str(out), *extra)
    assert busy.returncode == 1 and busy.stderr.count(b"\n") == 1, busy.stderr
    assert b"not empty" in busy.stderr and b"Traceback" not in busy.stderr

    for event_id, body in bodies.items():
        opened = vigil("event", "open", "--data", str(target), event_id, "--keyholder",
                       head.name, "--password-stdin", stdin=head.password.encode() + b"\n")
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout == body
    gone = vigil("event", "open", "--data", str(target), later, "--keyholder", head.name,
                 "--password-stdin", stdin=head.password.encode() + b"\n")
    assert gone.returncode == 1 and b"there is no event" in gone.stderr, gone.stderr
    verified = vigil("audit", "verify", "--data", str(target))
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    return names


def again_refused(out: Path, server: Any) -> bool:
    """A second backup to the same file name is refused in one line."""
    done = vigil("backup", "--data", str(server.data_dir), "--out", str(out))
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1, done.stderr
    return b"exists" in done.stderr
