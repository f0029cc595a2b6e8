"""Hand-off to the school's safeguarding record (issue 18): an incident as a file CPOMS or
MyConcern can take in, made where the record is opened.

Neither product publishes a fixed import layout, so Vigil writes two documented shapes
(docs/handoff.md): ``cpoms``, a CSV with one row per pupil involved, and ``myconcern``, a JSON
document with the concern, its subjects, the actions taken and the evidence. Both carry the
fields the seeds' "Online safety incident record" names (who reported it, when, where, who was
involved, the type of incident, the description, the immediate action, who was informed, the
outcome) and the evidence's SHA-256 hashes: each evidence zip exported for the incident (from
the audit log), and each capture's envelope and screenshot, as in the zip's manifest.

The incident record and the captures are sealed to the keyholders, so a hand-off needs an
unlocked key: it is built in memory in the keyholder's request, never by a scheduled job, and
never written to disk. Pupils are named from the roster by the login names in the opened
headers. Every cell that starts like a spreadsheet formula is defused (the login names and the
record's text may come from a desktop or be pasted from one).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from collector.store.models import AuditEntry, Event, Incident, RosterPupil
from dashboard.captures import has_screenshot, open_capture
from dashboard.errors import BadRequest, NotFound
from dashboard.incident_record import IncidentRecord
from dashboard.security import aware

__all__ = ["CSV_COLUMNS", "FORMATS", "Handoff", "build_handoff", "defuse"]

SCHEMA = "vigil-handoff/1"
LOCAL = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Format:
    name: str
    label: str
    media_type: str
    extension: str


FORMATS: dict[str, Format] = {
    "cpoms": Format("cpoms", "CPOMS (CSV)", "text/csv; charset=utf-8", "csv"),
    "myconcern": Format("myconcern", "MyConcern (JSON)", "application/json", "json"),
}

# The CSV's columns, in order; docs/handoff.md says what each holds and which field of the
# seeds' incident record it answers.
CSV_COLUMNS: tuple[str, ...] = (
    "vigil_reference", "student_surname", "student_forename", "upn", "admission_number",
    "year_group", "form", "login_name", "incident_date", "incident_time", "date_reported",
    "reported_by", "location", "categories", "vigil_categories", "highest_severity",
    "description", "online_services", "people_involved", "action_taken", "informed", "outcome", "status",
    "evidence", "evidence_zip_sha256", "capture_sha256", "exported_by", "exported_at", "link",
)


@dataclass(frozen=True)
class Handoff:
    data: bytes
    format: Format
    filename: str
    sha256: str
    pupils: int
    unknown_logins: int
    evidence_zips: list[str]


def defuse(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting with = + - @ or a control
    character gets a leading apostrophe (OWASP's advice for CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r", "\n") else text


def _clip(value: Any, limit: int = 200) -> str:
    return " ".join(str(value or "").split())[:limit]


def _services(captures: list[dict[str, Any]]) -> list[str]:
    """What was on screen, for the form's "name all social media involved": each distinct
    application and window title the desktops sealed, as the desktop wrote it."""
    seen = (" - ".join(x for x in (c["app"], c["window_title"]) if x) for c in captures)
    return list(dict.fromkeys(s for s in seen if s))


def _iso(moment: datetime | None) -> str:
    return aware(moment).isoformat() if moment else ""


def _local(moment: datetime | None, fmt: str) -> str:
    return aware(moment).astimezone(LOCAL).strftime(fmt) if moment else ""


def _evidence_zips(db: Session, incident: Incident) -> list[dict[str, Any]]:
    """Every evidence zip exported for the incident, oldest first, from the audit log."""
    rows = db.exec(select(AuditEntry).where(AuditEntry.action == "incident.export",
                                            AuditEntry.target == f"incident:{incident.id}")
                   .order_by(col(AuditEntry.seq))).all()
    return [{"sha256": (r.details or {}).get("zip_sha256", ""), "exported_at": _iso(r.at),
             "exported_by": r.actor, "audit_seq": r.seq} for r in rows
            if (r.details or {}).get("zip_sha256")]


def _pupil(login: str, row: RosterPupil | None) -> dict[str, Any]:
    if row is None:
        return {"login_name": login, "on_roster": False, "surname": "", "forename": "",
                "upn": "", "admission_number": "", "year_group": "", "form": ""}
    return {"login_name": login, "on_roster": True, "surname": row.family_name,
            "forename": row.given_name, "upn": row.upn, "admission_number": row.admission_no,
            "year_group": row.year, "form": row.form}


def _captures(db: Session, blobs: Any, key: Any, events: list[tuple[Event, str]],
              actor: str) -> tuple[list[dict[str, Any]], list[tuple[Event, str]]]:
    """Each event's clear metadata and hashes, and the login name each opened header names."""
    out, logins = [], []
    for event, hostname in events:
        try:
            capture = open_capture(blobs, event, key)
        except (NotFound, BadRequest) as exc:
            from dashboard.errors import Relabelled

            if isinstance(exc, Relabelled):
                exc.record(db, actor, "handoff")
            raise BadRequest(f"Hand-off stopped, nothing was exported: {exc}") from exc
        user = str(capture.header.get("user") or "").strip()
        if user:
            logins.append((event, user))
        shot = has_screenshot(capture.header)
        out.append({
            "event_id": event.id, "time": _iso(event.time), "device": hostname,
            "category": event.category, "severity": event.severity, "rule": event.rule,
            "source": event.source, "login_name": user,
            "app": _clip(capture.header.get("app")),
            "window_title": _clip(capture.header.get("title")),
            "envelope_sha256": event.sha256 or "",
            "screenshot": f"screenshots/{event.id}.{capture.extension}" if shot else None,
            "screenshot_sha256": hashlib.sha256(capture.body).hexdigest() if shot else None,
        })
    return out, logins


def build_handoff(db: Session, blobs: Any, key: Any, incident: Incident, record: IncidentRecord,
                  events: list[tuple[Event, str]], fmt: str, exported_by: str,
                  exported_at: datetime, link: str) -> Handoff:
    """The hand-off file for ``incident`` in format ``fmt``; BadRequest (one line) if it cannot
    be made. ``key`` is the keyholder's unlocked key; ``link`` the incident's dashboard URL."""
    from dashboard import roster

    chosen = FORMATS.get(fmt)
    if chosen is None:
        raise BadRequest(f"Hand-off format must be one of: {', '.join(FORMATS)}.")
    captures, logins = _captures(db, blobs, key, events, exported_by)
    known = roster.pupils_for(db, logins)
    seen: dict[str, dict[str, Any]] = {}
    for event, login in logins:
        folded = roster.login_key(login)
        if folded and folded not in seen:
            seen[folded] = _pupil(login, known.get(event.id))
    pupils = list(seen.values())
    zips = _evidence_zips(db, incident)
    first = min((e.time for e, _ in events), default=None)
    devices = sorted({c["device"] for c in captures})
    concern = {
        "reference": f"VIGIL-{incident.id}",
        "title": incident.title,
        "status": incident.status,
        "incident_at": _iso(first),
        "reported_at": _iso(incident.created_at),
        "reported_by": record.reported_by or incident.created_by,
        "location": ("Inside school: a school-managed device (" + ", ".join(devices) + ")"
                     if devices else "Inside school: a school-managed device"),
        "categories": list(incident.incident_types or []),
        "vigil_categories": sorted({c["category"] for c in captures}),
        "highest_severity": max((c["severity"] for c in captures), default=None),
        "description": record.description,
        "online_services": _services(captures),
        "people_involved": record.involved,
        "action_taken": record.action,
        "informed": list(record.informed),
        "outcome": record.outcome,
        "link": link,
    }
    if chosen.name == "myconcern":
        document = {
            "schema": SCHEMA, "format": "myconcern", "concern": concern, "subjects": pupils,
            "evidence": {"zips": zips, "captures": captures,
                         "note": "Attach the evidence zip whose SHA-256 is listed; "
                                 "`sha256sum` of the file must match."},
            "exported_by": exported_by, "exported_at": _iso(exported_at),
        }
        data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    else:
        data = _csv(concern, pupils, captures, zips, exported_by, exported_at, first)
    stamp = exported_at.strftime("%Y%m%dT%H%M%SZ")
    return Handoff(
        data=data, format=chosen, sha256=hashlib.sha256(data).hexdigest(),
        filename=f"vigil-incident-{incident.id}-{chosen.name}-{stamp}.{chosen.extension}",
        pupils=sum(1 for p in pupils if p["on_roster"]),
        unknown_logins=sum(1 for p in pupils if not p["on_roster"]),
        evidence_zips=[z["sha256"] for z in zips])


def _csv(concern: dict[str, Any], pupils: list[dict[str, Any]], captures: list[dict[str, Any]],
         zips: list[dict[str, Any]], exported_by: str, exported_at: datetime,
         first: datetime | None) -> bytes:
    evidence = (f"{len(captures)} capture(s) in Vigil; evidence zip(s) exported: {len(zips)}"
                if zips else f"{len(captures)} capture(s) in Vigil; no evidence zip exported yet")
    common = {
        "vigil_reference": concern["reference"],
        "incident_date": _local(first, "%d/%m/%Y"),
        "incident_time": _local(first, "%H:%M"),
        "date_reported": _local(datetime.fromisoformat(concern["reported_at"])
                                if concern["reported_at"] else None, "%d/%m/%Y %H:%M"),
        "reported_by": concern["reported_by"],
        "location": concern["location"],
        "categories": "; ".join(concern["categories"]),
        "vigil_categories": "; ".join(concern["vigil_categories"]),
        "highest_severity": concern["highest_severity"] or "",
        "description": concern["description"],
        "online_services": "; ".join(concern["online_services"]),
        "people_involved": concern["people_involved"],
        "action_taken": concern["action_taken"],
        "informed": "; ".join(concern["informed"]),
        "outcome": concern["outcome"],
        "status": concern["status"],
        "evidence": evidence,
        "evidence_zip_sha256": "; ".join(z["sha256"] for z in zips),
        "capture_sha256": "; ".join(
            f"{c['event_id']} envelope={c['envelope_sha256']}"
            + (f" screenshot={c['screenshot_sha256']}" if c["screenshot_sha256"] else "")
            for c in captures),
        "exported_by": exported_by,
        "exported_at": _iso(exported_at),
        "link": concern["link"],
    }
    rows = []
    for pupil in pupils or [None]:
        row = dict(common)
        if pupil is not None:
            row.update({"student_surname": pupil["surname"], "student_forename": pupil["forename"],
                        "upn": pupil["upn"], "admission_number": pupil["admission_number"],
                        "year_group": pupil["year_group"], "form": pupil["form"],
                        "login_name": pupil["login_name"]})
        rows.append([defuse(row.get(name, "")) for name in CSV_COLUMNS])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    # A BOM so Excel (and CPOMS's importer, which schools open in Excel first) reads UTF-8.
    return ("\ufeff" + out.getvalue()).encode()
