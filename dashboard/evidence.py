"""Build an incident's evidence bundle: a zip made in memory, never written to disk.

It holds the decrypted screenshots, a JSON summary, a readable HTML summary, the audit trail of
the incident and its events, and MANIFEST.sha256 (``sha256sum -c`` format) over all of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from collector.store.models import AuditEntry, Event, Incident
from dashboard.captures import Detected, detected, has_screenshot, open_capture
from dashboard.errors import BadRequest, NotFound
from dashboard.incident_record import IncidentRecord
from dashboard.rendering import templates
from dashboard.security import aware

__all__ = ["MANIFEST_NAME", "build_evidence_zip"]

MANIFEST_NAME = "MANIFEST.sha256"


def _iso(moment: datetime | None) -> str | None:
    return aware(moment).isoformat() if moment else None


def _audit_trail(db: Session, incident: Incident, events: list[Event]) -> list[dict[str, Any]]:
    """Every entry about the incident or one of its events: those naming it as their target, and
    the queue views that decrypted its header (one entry per page, listing the events)."""
    ids = {e.id for e in events}
    targets = [f"incident:{incident.id}", *ids]
    rows = list(db.exec(select(AuditEntry).where(col(AuditEntry.target).in_(targets))).all())
    if events:
        since = min(e.received_at for e in events)
        rows += [
            r
            for r in db.exec(
                select(AuditEntry)
                .where(AuditEntry.action == "event.headers_decrypted")
                .where(col(AuditEntry.at) >= since)
            ).all()
            if ids & set((r.details or {}).get("events", []))
        ]
    rows.sort(key=lambda r: r.seq or 0)
    return [
        {
            "seq": r.seq,
            "at": _iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "details": r.details,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        for r in rows
    ]


def build_evidence_zip(
    db: Session,
    blobs: Any,
    key: Any,
    incident: Incident,
    record: IncidentRecord,
    events: list[tuple[Event, str]],
    exported_by: str,
    exported_at: datetime,
) -> bytes:
    files: dict[str, bytes] = {}
    summary_events: list[dict[str, Any]] = []
    detections: dict[str, Detected] = {}  # for the HTML summary; summary.json has the header
    for event, hostname in events:
        try:
            capture = open_capture(blobs, event, key)
        except (NotFound, BadRequest) as exc:
            from dashboard.errors import Relabelled

            if isinstance(exc, Relabelled):  # the row was changed: on the record, then refused
                exc.record(db, exported_by, "export")
            raise BadRequest(f"Export stopped, nothing was exported: {exc}") from exc
        # A tamper report seals no picture: no file, and the summary says so (None).
        shot = (f"screenshots/{event.id}.{capture.extension}"
                if has_screenshot(capture.header) else None)
        detections[event.id] = detected(capture.header)
        if shot is not None:
            files[shot] = capture.body
        summary_events.append(
            {
                "id": event.id,
                "time": _iso(event.time),
                "received_at": _iso(event.received_at),
                "device_id": event.device_id,
                "device": hostname,
                "category": event.category,
                "severity": event.severity,
                "rule": event.rule,
                "source": event.source,
                "repeat_count": event.repeat_count,
                "status": event.status,
                "graded_by": event.graded_by,
                "graded_at": _iso(event.graded_at),
                "envelope_sha256": event.sha256,
                "header": capture.header,
                "screenshot": shot,
                "screenshot_sha256": (hashlib.sha256(capture.body).hexdigest()
                                      if shot is not None else None),
            }
        )
    summary = {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status,
            "types": list(incident.incident_types or []),
            "created_by": incident.created_by,
            "created_at": _iso(incident.created_at),
            "updated_at": _iso(incident.updated_at),
            "closed_at": _iso(incident.closed_at),
            "record": record.as_dict(),
        },
        "events": summary_events,
        "exported_by": exported_by,
        "exported_at": _iso(exported_at),
    }
    trail = _audit_trail(db, incident, [e for e, _ in events])
    files["summary.json"] = json.dumps(summary, indent=2, ensure_ascii=False).encode()
    files["audit.json"] = json.dumps(trail, indent=2, ensure_ascii=False).encode()
    # Rendered with the dashboard's autoescaping environment: desktop text stays text.
    html = templates.get_template("export_summary.html").render(summary=summary, trail=trail,
                                                                detected=detections)
    files["summary.html"] = html.encode()
    manifest = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    )
    files[MANIFEST_NAME] = manifest.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
