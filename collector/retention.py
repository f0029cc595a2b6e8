"""Retention: delete events older than the configured period, with their blobs and notes.

Events attached to an incident are evidence and are kept. Each run is recorded (RetentionRun)
and every deleted event id goes into the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from collector import audit
from collector.settings import Settings
from collector.store.blobs import Blobs
from collector.store.db import Database
from collector.store.models import Event, EventNote, IncidentEvent, RetentionRun, utcnow

__all__ = ["RetentionResult", "run_retention"]

CHUNK = 500


@dataclass(frozen=True)
class RetentionResult:
    deleted: int
    kept_for_incidents: int
    cutoff: datetime


def run_retention(db: Database, blobs: Blobs, settings: Settings, actor: str = "system",
                  now: datetime | None = None) -> RetentionResult:
    cutoff = (now or utcnow()) - timedelta(days=settings.retention_days)
    in_incident = select(IncidentEvent.event_id)
    deleted = 0
    while True:
        def job(session: Session) -> list[tuple[str, str]]:
            rows = session.exec(
                select(Event.id, Event.blob_key)
                .where(col(Event.time) < cutoff, col(Event.id).not_in(in_incident))
                .order_by(col(Event.time)).limit(CHUNK)
            ).all()
            ids = [r[0] for r in rows]
            if ids:
                session.execute(delete(EventNote).where(col(EventNote.event_id).in_(ids)))
                session.execute(delete(Event).where(col(Event.id).in_(ids)))
                audit.record(session, actor, "retention.delete", target=f"{len(ids)} events",
                             details={"event_ids": ids, "cutoff": cutoff.isoformat()})
            return [(r[0], r[1]) for r in rows]

        batch = db.write(job)
        # Blobs go after their rows are gone: a crash here leaves orphans the sweep removes,
        # never a row without its blob.
        for _event_id, key in batch:
            blobs.delete(key)
        deleted += len(batch)
        if len(batch) < CHUNK:
            break

    def finish(session: Session) -> int:
        kept = len(session.exec(
            select(Event.id).where(col(Event.time) < cutoff, col(Event.id).in_(in_incident))
        ).all())
        session.add(RetentionRun(deleted=deleted, kept_for_incidents=kept))
        return kept

    kept = db.write(finish)
    return RetentionResult(deleted=deleted, kept_for_incidents=kept, cutoff=cutoff)
