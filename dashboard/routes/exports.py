"""Evidence export (an incident's zip) and the hand-off to CPOMS or MyConcern: both made with the
keyholder's unlocked key, in memory, audited with the SHA-256 of what was exported."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from collector.store.models import utcnow
from dashboard.auditing import audit
from dashboard.deps import BlobsDep, SessionDep, SettingsDep, UnlockedDep
from dashboard.evidence import build_evidence_zip
from dashboard.handoff import build_handoff
from dashboard.incident_record import open_record
from dashboard.routes.incidents import get_incident, incident_events, record_history
from dashboard.scope import ScopeDep

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])


@router.post("/incidents/{incident_id}/export", include_in_schema=False)
def export(incident_id: int, db: SessionDep, blobs: BlobsDep, unlocked: UnlockedDep,
           scope: ScopeDep) -> Response:
    incident = get_incident(db, scope, incident_id)
    record = open_record(incident, unlocked.private_key)
    events = incident_events(db, incident.id or 0)
    now = utcnow()
    data = build_evidence_zip(
        db, blobs, unlocked.private_key, incident, record, events, unlocked.username, now
    )
    digest = hashlib.sha256(data).hexdigest()
    audit(
        db,
        unlocked.username,
        "incident.export",
        f"incident:{incident.id}",
        events=[e.id for e, _ in events],
        zip_sha256=digest,
    )
    name = f"vigil-incident-{incident.id}-{now.strftime('%Y%m%dT%H%M%SZ')}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store, private",
            "X-Evidence-SHA256": digest,
        },
    )


@router.post("/incidents/{incident_id}/handoff", include_in_schema=False)
def handoff(incident_id: int, db: SessionDep, blobs: BlobsDep, settings: SettingsDep,
            unlocked: UnlockedDep, scope: ScopeDep,
            fmt: Annotated[str, Form(alias="format", max_length=16)] = "cpoms",
            ) -> Response:
    """The incident as a CPOMS CSV or MyConcern JSON file (dashboard.handoff), made here with
    the keyholder's unlocked key; the hand-off is in the audit log with the file's SHA-256."""
    incident = get_incident(db, scope, incident_id)
    record = open_record(incident, unlocked.private_key)
    events = incident_events(db, incident.id or 0)
    now = utcnow()
    made = build_handoff(db, blobs, unlocked.private_key, incident, record, events, fmt,
                         unlocked.username, now, f"{settings.public_url}/incidents/{incident.id}")
    record_history(db, incident, unlocked.username, f"handed off as {made.format.label}")
    audit(db, unlocked.username, "incident.handoff", f"incident:{incident.id}",
          format=made.format.name, sha256=made.sha256, events=[e.id for e, _ in events],
          pupils=made.pupils, unknown_logins=made.unknown_logins,
          evidence_zips=made.evidence_zips)
    return Response(made.data, media_type=made.format.media_type, headers={
        "Content-Disposition": f'attachment; filename="{made.filename}"',
        "Cache-Control": "no-store, private",
        "X-Handoff-SHA256": made.sha256,
    })
