"""Retention and silent devices, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from collector.retention import run_retention
from collector.settings import Settings
from collector.store.blobs import BlobStore
from collector.store.db import Database
from collector.store.models import (
    AuditEntry,
    Device,
    Event,
    EventNote,
    Incident,
    IncidentEvent,
    RetentionRun,
    utcnow,
)


def _device(session: Session, name: str, **fields: object) -> Device:
    device = Device(id=name, hostname=name, secret_hash="0" * 64, **fields)
    session.add(device)
    return device


def _event(session: Session, blobs: BlobStore, event_id: str, age_days: float) -> Event:
    key = f"ev/{event_id[:2]}/{event_id}.00"
    blobs.put(key, b"sealed")
    event = Event(id=event_id, device_id="pc", time=utcnow() - timedelta(days=age_days),
                  category="bullying", severity=3, rule="r", blob_key=key, size=6,
                  sha256=hashlib.sha256(b"sealed").hexdigest())
    session.add(event)
    return event


def test_old_events_go_with_their_blobs_and_incident_evidence_stays(
        database: Database, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    settings = Settings(data_dir=tmp_path, retention_days=30)

    def setup(s: Session) -> None:
        _device(s, "pc")
        for i in range(3):
            _event(s, blobs, f"old{i}", 31 + i)
        _event(s, blobs, "evidence", 400)
        _event(s, blobs, "recent", 29)
        s.flush()
        s.add(EventNote(event_id="old0", author="tech", text="looked at it"))
        incident = Incident(title="case", created_by="head")
        s.add(incident)
        s.flush()
        s.add(IncidentEvent(incident_id=incident.id, event_id="evidence"))

    database.write(setup)
    result = run_retention(database, blobs, settings, actor="test")
    assert (result.deleted, result.kept_for_incidents) == (3, 1)
    with database.session() as s:
        assert sorted(s.exec(select(Event.id)).all()) == ["evidence", "recent"]
        assert s.exec(select(EventNote)).all() == []
        entry = s.exec(select(AuditEntry).where(
            col(AuditEntry.action) == "retention.delete")).one()
        assert sorted(entry.details["event_ids"]) == ["old0", "old1", "old2"]
        run = s.exec(select(RetentionRun)).one()
        assert (run.deleted, run.kept_for_incidents) == (3, 1)
    assert sorted(blobs.keys()) == ["ev/ev/evidence.00", "ev/re/recent.00"]
    assert run_retention(database, blobs, settings).deleted == 0  # nothing left to do
