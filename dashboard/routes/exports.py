"""Evidence export: an incident's zip, decrypted with the keyholder's unlocked key, audited."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter
from fastapi.responses import Response

from collector.store.models import utcnow
from dashboard.auditing import audit
from dashboard.deps import BlobsDep, SessionDep, UnlockedDep
from dashboard.evidence import build_evidence_zip
from dashboard.incident_record import open_record
from dashboard.routes.incidents import get_incident, incident_events

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])


@router.post("/incidents/{incident_id}/export", include_in_schema=False)
def export(incident_id: int, db: SessionDep, blobs: BlobsDep, unlocked: UnlockedDep) -> Response:
    incident = get_incident(db, incident_id)
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
