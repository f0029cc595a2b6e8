"""Online safety incidents: created from events, with a sealed record, a status and a history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from collector.store.models import (
    Device,
    Event,
    Incident,
    IncidentEvent,
    IncidentHistory,
    IncidentStatus,
    utcnow,
)
from dashboard.auditing import audit
from dashboard.deps import DashSettingsDep, KeyholderDep, KeyRingDep, SessionDep, UnlockedDep
from dashboard.errors import BadRequest, NotFound
from dashboard.incident_record import (
    INCIDENT_TYPES,
    INFORMED,
    IncidentRecord,
    open_record,
    seal_record,
)
from dashboard.keyplace import key_here
from dashboard.rendering import render
from dashboard.scope import Scope, ScopeDep, event_school

__all__ = ["get_incident", "incident_events", "record_history", "router"]

router = APIRouter(tags=["dashboard"])

STATUSES = tuple(s.value for s in IncidentStatus)
Text = Annotated[str, Form(max_length=8000)]


def get_incident(db: Session, scope: Scope, incident_id: int) -> Incident:
    """The incident, if it is in the account's school (dashboard.scope); otherwise 404."""
    return scope.incident(db, incident_id, f"There is no incident #{incident_id}.")


def _events_in_scope(db: Session, scope: Scope, ids: list[str]) -> list[Event]:
    """The events named that exist and are in the account's school; others are left out, as if
    they did not exist."""
    found = []
    for event_id in ids:
        try:
            found.append(scope.event(db, event_id, ""))
        except NotFound:
            continue
    return found


def _school_of(db: Session, scope: Scope, events: list[Event]) -> int | None:
    """A new incident's school: the account's; for a trust-wide account, its events' school when
    they share one (else none: only trust-wide accounts see it)."""
    if scope.school_id is not None:
        return scope.school_id
    schools = {event_school(db, e) for e in events}
    return schools.pop() if len(schools) == 1 else None


def incident_events(db: Session, incident_id: int) -> list[tuple[Event, str]]:
    rows = db.exec(
        select(Event, Device.hostname)
        .join(IncidentEvent, col(IncidentEvent.event_id) == Event.id)
        .join(Device, col(Device.id) == Event.device_id, isouter=True)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(col(Event.time))
    ).all()
    return [(event, hostname or event.device_id) for event, hostname in rows]


def record_history(db: Session, incident: Incident, actor: str, change: str) -> None:
    db.add(IncidentHistory(incident_id=incident.id or 0, actor=actor, change=change[:500]))


_history = record_history


def _record(
    reported_by: str, involved: str, description: str, action: str, informed: list[str],
    outcome: str,
) -> IncidentRecord:
    chosen = set(informed)
    return IncidentRecord(
        reported_by=reported_by, involved=involved, description=description, action=action,
        informed=[x for x in INFORMED if x in chosen], outcome=outcome,
    ).check()


def _clean_types(types: list[str]) -> list[str]:
    return [t for t in INCIDENT_TYPES if t in set(types)]


@router.get("/incidents", include_in_schema=False)
def incident_list(request: Request, db: SessionDep, who: KeyholderDep,
                  scope: ScopeDep) -> Response:
    counts = dict(
        db.exec(
            select(IncidentEvent.incident_id, func.count()).group_by(IncidentEvent.incident_id)
        ).all()
    )
    incidents = db.exec(
        select(Incident).where(*scope.incidents())
        .order_by(col(Incident.status) != IncidentStatus.OPEN.value,
                                  col(Incident.updated_at).desc()).limit(500)
    ).all()
    return render(request, "incidents.html", who, incidents=incidents, counts=counts)


@router.get("/incidents/new", include_in_schema=False)
def incident_form(request: Request, db: SessionDep, who: KeyholderDep,
                  scope: ScopeDep) -> Response:
    ids = request.query_params.getlist("event")[:200]
    events = _events_in_scope(db, scope, ids)
    return render(
        request,
        "incident_new.html",
        who,
        events=events,
        types=INCIDENT_TYPES,
        informed=INFORMED,
        record=IncidentRecord(reported_by=who.username),
    )


@router.post("/incidents", include_in_schema=False)
def incident_create(
    db: SessionDep,
    who: KeyholderDep,
    scope: ScopeDep,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    event: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI form default
    types: Annotated[list[str], Form()] = [],  # noqa: B006
    informed: Annotated[list[str], Form()] = [],  # noqa: B006
    reported_by: Text = "",
    involved: Text = "",
    description: Text = "",
    action: Text = "",
    outcome: Text = "",
) -> Response:
    events = _events_in_scope(db, scope, list(dict.fromkeys(event)))
    if not events:
        raise BadRequest("An incident is created from at least one event.")
    record = _record(reported_by, involved, description, action, informed, outcome)
    incident = Incident(title=title.strip(), incident_types=_clean_types(types), created_by=who.username,
                        school_id=_school_of(db, scope, events))
    db.add(incident)
    db.flush()  # the id is part of the sealed record's metadata
    incident.sealed_record = seal_record(db, incident, record)
    for e in events:
        db.add(IncidentEvent(incident_id=incident.id or 0, event_id=e.id))
    _history(db, incident, who.username, f"created from {len(events)} event(s)")
    audit(db, who.username, "incident.create", f"incident:{incident.id}",
          events=[e.id for e in events])
    return RedirectResponse(f"/incidents/{incident.id}", status_code=303)


@router.get("/incidents/{incident_id}", include_in_schema=False)
def incident_page(
    request: Request, incident_id: int, db: SessionDep, settings: DashSettingsDep,
    ring: KeyRingDep, who: KeyholderDep, scope: ScopeDep,
) -> Response:
    incident = get_incident(db, scope, incident_id)
    key = key_here(request, settings, ring, who)
    record = open_record(incident, key.key) if key else None
    if record is not None:
        audit(db, who.username, "incident.view", f"incident:{incident.id}", decrypted=True)
    history = db.exec(
        select(IncidentHistory).where(IncidentHistory.incident_id == incident.id)
        .order_by(col(IncidentHistory.at))
    ).all()
    return render(
        request,
        "incident.html",
        who,
        incident=incident,
        record=record,
        events=incident_events(db, incident.id or 0),
        history=history,
        statuses=STATUSES,
        types=INCIDENT_TYPES,
        informed=INFORMED,
    )


@router.post("/incidents/{incident_id}/status", include_in_schema=False)
def incident_status(
    incident_id: int,
    db: SessionDep,
    who: KeyholderDep,
    scope: ScopeDep,
    status: Annotated[str, Form(max_length=16)],
) -> Response:
    if status not in STATUSES:
        raise BadRequest(f"Status must be one of: {', '.join(STATUSES)}.")
    incident = get_incident(db, scope, incident_id)
    before = incident.status
    incident.status = status
    incident.updated_at = utcnow()
    incident.closed_at = utcnow() if status == IncidentStatus.CLOSED.value else None
    db.add(incident)
    _history(db, incident, who.username, f"status {before} -> {status}")
    audit(db, who.username, "incident.status", f"incident:{incident.id}", previous=before,
          status=status)
    return RedirectResponse(f"/incidents/{incident.id}", status_code=303)


@router.post("/incidents/{incident_id}/record", include_in_schema=False)
def incident_record_update(
    incident_id: int,
    db: SessionDep,
    unlocked: UnlockedDep,
    scope: ScopeDep,
    types: Annotated[list[str], Form()] = [],  # noqa: B006
    informed: Annotated[list[str], Form()] = [],  # noqa: B006
    reported_by: Text = "",
    involved: Text = "",
    description: Text = "",
    action: Text = "",
    outcome: Text = "",
) -> Response:
    incident = get_incident(db, scope, incident_id)
    old = open_record(incident, unlocked.private_key)
    new = _record(reported_by, involved, description, action, informed, outcome)
    changed = [name for name, value in new.as_dict().items() if old.as_dict()[name] != value]
    new_types = _clean_types(types)
    if new_types != list(incident.incident_types or []):
        changed.append("types")
        incident.incident_types = new_types
    if changed:
        incident.sealed_record = seal_record(db, incident, new)
        incident.updated_at = utcnow()
        db.add(incident)
        # The history names the fields that changed, never their sealed contents.
        _history(db, incident, unlocked.username, "updated " + ", ".join(changed))
        audit(db, unlocked.username, "incident.update", f"incident:{incident.id}", fields=changed)
    return RedirectResponse(f"/incidents/{incident.id}", status_code=303)


@router.post("/incidents/{incident_id}/events", include_in_schema=False)
def incident_add_event(
    incident_id: int,
    db: SessionDep,
    who: KeyholderDep,
    scope: ScopeDep,
    event: Annotated[str, Form(max_length=36)],
) -> Response:
    incident = get_incident(db, scope, incident_id)
    found = scope.event(db, event.strip(), "There is no such event.")
    if incident.school_id is not None and event_school(db, found) != incident.school_id:
        # A trust-wide account could otherwise show a school's staff another school's event.
        raise BadRequest("That event is from another school than this incident.")
    if db.get(IncidentEvent, (incident.id, found.id)) is None:
        db.add(IncidentEvent(incident_id=incident.id or 0, event_id=found.id))
        _history(db, incident, who.username, f"added event {found.id}")
        audit(db, who.username, "incident.add_event", f"incident:{incident.id}", event=found.id)
    return RedirectResponse(f"/incidents/{incident.id}", status_code=303)
