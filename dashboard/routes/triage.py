"""The triage queue, an event's page, its screenshot, its sealed download, its grade and its
notes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import col, select

from collector.store.models import Device, Event, EventNote, Grade, Incident, IncidentEvent, utcnow
from dashboard.auditing import audit
from dashboard.captures import (
    detected,
    has_screenshot,
    highlight,
    open_capture,
    open_header,
    report_details,
)
from dashboard.deps import (
    BlobsDep,
    DashSettingsDep,
    KeyholderDep,
    KeyRingDep,
    SessionDep,
    UnlockedDep,
)
from dashboard.errors import BadRequest, NotFound, Relabelled
from dashboard.keyplace import key_here
from dashboard.queue import Cursor, QueueFilter, fetch_page
from dashboard.rendering import render
from dashboard.scope import Scope, ScopeDep
from dashboard.sessions import SignedIn
from dashboard.settings import DashboardSettings

__all__ = ["GRADES", "get_event", "router"]

router = APIRouter(tags=["dashboard"])

# The grades a keyholder can give, in shortcut order (keys 1-4).
GRADES: tuple[str, ...] = (
    Grade.FALSE_POSITIVE.value,
    Grade.NO_CONCERN.value,
    Grade.CONCERN.value,
    Grade.ESCALATED.value,
)
CATEGORIES_SEEN_LIMIT = 100


def get_event(db: SessionDep, scope: Scope, event_id: str) -> Event:
    """The event, if it is in the account's school (dashboard.scope); otherwise 404."""
    return scope.event(db, event_id, "There is no such event; it may have been deleted by the "
                       "retention policy.")


def _headers_for(
    rows: list[tuple[Event, str]], blobs: Any, key: Any, db: SessionDep, actor: str, via: str
) -> dict[str, dict[str, Any]]:
    """Open each row's sealed header (not its screenshot); a row that cannot be opened shows
    why instead (a relabelled row also goes into the audit log)."""
    headers: dict[str, dict[str, Any]] = {}
    for event, _ in rows:
        try:
            header = open_header(blobs, event, key)
        except (NotFound, BadRequest) as exc:
            if isinstance(exc, Relabelled):
                exc.record(db, actor, via)
            headers[event.id] = {"error": str(exc)}
            continue
        before, matched, after = highlight(header)
        headers[event.id] = {
            "user": str(header.get("user") or ""),
            "title": str(header.get("title") or ""),
            "app": str(header.get("app") or ""),
            "before": before,
            "matched": matched,
            "after": after,
            "detected": detected(header),
            "shot": has_screenshot(header),
            "details": report_details(header),
        }
    _add_pupils(db, rows, headers)
    return headers


def _add_pupils(db: SessionDep, rows: list[tuple[Event, str]],
                headers: dict[str, dict[str, Any]]) -> None:
    """Beside each opened login name, the roster's pupil (name, year, form) of the event's
    school (dashboard.roster.pupils_for), or ``None`` when it has none; no key at all when the
    trust has no roster. This runs only in the request that has just opened the headers: the
    server never stores the match."""
    from dashboard import roster

    if not roster.has_roster(db):
        return
    opened = [(event, headers[event.id].get("user", "")) for event, _ in rows
              if event.id in headers]
    known = roster.pupils_for(db, opened)
    for event_id, h in headers.items():
        if "error" not in h and h["user"]:
            h["pupil"] = known.get(event_id)


@router.get("/triage", include_in_schema=False)
def queue(
    request: Request,
    db: SessionDep,
    blobs: BlobsDep,
    settings: DashSettingsDep,
    ring: KeyRingDep,
    who: KeyholderDep,
    scope: ScopeDep,
) -> Response:
    key = key_here(request, settings, ring, who)
    flt = QueueFilter.from_query(request.query_params)
    after = request.query_params.get("after")
    cursor = Cursor.decode(after) if after else None
    page = fetch_page(db, flt, cursor, settings.page_size, where=scope.events())
    headers: dict[str, dict[str, Any]] = {}
    if key is not None and page.rows:
        headers = _headers_for(page.rows, blobs, key.key, db, who.username, "queue")
        audit(
            db,
            who.username,
            "event.headers_decrypted",
            "triage",
            events=[event.id for event, _ in page.rows],
        )
    devices = db.exec(select(Device.id, Device.hostname).where(*scope.devices())
                      .order_by(Device.hostname)).all()
    next_link = (
        "/triage?" + flt.as_query(after=page.next_cursor.encode()) if page.next_cursor else ""
    )
    return render(
        request,
        "triage.html",
        who,
        rows=page.rows,
        headers=headers,
        flt=flt,
        devices=devices,
        next_link=next_link,
        first_link="/triage?" + flt.as_query() if cursor else "",
        grades=GRADES,
    )


def _event_page(
    request: Request, db: SessionDep, blobs: BlobsDep, settings: DashboardSettings,
    ring: KeyRingDep, who: SignedIn, scope: Scope, event: Event,
) -> Response:
    key = key_here(request, settings, ring, who)
    device = db.get(Device, event.device_id)
    notes = db.exec(
        select(EventNote).where(EventNote.event_id == event.id).order_by(col(EventNote.created_at))
    ).all()
    incidents = db.exec(
        select(IncidentEvent.incident_id)
        .join(Incident, col(Incident.id) == IncidentEvent.incident_id)
        .where(IncidentEvent.event_id == event.id, *scope.incidents())
    ).all()
    header: dict[str, Any] | None = None
    if key is not None:
        header = _headers_for([(event, "")], blobs, key.key, db, who.username,
                              "event page")[event.id]
        audit(db, who.username, "event.view", event.id, decrypted="error" not in header)
    else:
        audit(db, who.username, "event.view", event.id, decrypted=False)
    return render(
        request,
        "event.html",
        who,
        event=event,
        device=device,
        notes=notes,
        incidents=incidents,
        header=header,
        grades=GRADES,
        back=request.query_params.get("back", ""),
    )


@router.get("/events/{event_id}", include_in_schema=False)
def event_page(
    request: Request,
    event_id: str,
    db: SessionDep,
    blobs: BlobsDep,
    settings: DashSettingsDep,
    ring: KeyRingDep,
    who: KeyholderDep,
    scope: ScopeDep,
) -> Response:
    return _event_page(request, db, blobs, settings, ring, who, scope,
                       get_event(db, scope, event_id))


@router.get("/events/{event_id}/screenshot", include_in_schema=False)
def screenshot(event_id: str, db: SessionDep, blobs: BlobsDep, unlocked: UnlockedDep,
               scope: ScopeDep) -> Response:
    event = get_event(db, scope, event_id)
    try:
        capture = open_capture(blobs, event, unlocked.private_key)
    except Relabelled as exc:
        exc.record(db, unlocked.username, "screenshot")
        raise
    if not has_screenshot(capture.header):
        raise NotFound(f"Event {event.id} has no screenshot: the desktop sealed none with it.")
    audit(db, unlocked.username, "capture.view", event.id, bytes=len(capture.body))
    return Response(
        capture.body,
        media_type=capture.media_type,
        headers={
            "Cache-Control": "no-store, private",
            "Pragma": "no-cache",
            "Content-Disposition": "inline",
        },
    )


@router.get("/events/{event_id}/sealed", include_in_schema=False)
def sealed(event_id: str, db: SessionDep, blobs: BlobsDep, who: KeyholderDep,
           scope: ScopeDep) -> Response:
    """The capture as stored: ciphertext, for a keyholder to open on their own machine with
    `vigil open --expect`, so that neither their password nor the capture is ever in the
    server's memory (docs/crypto.md, "Threat model"). No key is needed to hand it out."""
    from dashboard.captures import sealed_bytes

    event = get_event(db, scope, event_id)
    data = sealed_bytes(blobs, event)
    audit(db, who.username, "capture.download_sealed", event.id, bytes=len(data))
    return Response(data, media_type="application/vnd.vigil.envelope", headers={
        "Cache-Control": "no-store, private",
        "Content-Disposition": f'attachment; filename="vigil-{event.id}.vgl"',
    })


def _done(request: Request, payload: dict[str, Any], target: str) -> Response:
    """Scripts (the keyboard shortcuts) get JSON; forms get a redirect back."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(payload)
    return RedirectResponse(target, status_code=303)


@router.post("/events/{event_id}/grade", include_in_schema=False)
def grade(
    request: Request,
    event_id: str,
    db: SessionDep,
    who: KeyholderDep,
    scope: ScopeDep,
    grade: Annotated[str, Form(max_length=16)],
) -> Response:
    if grade not in GRADES:
        raise BadRequest("Grade must be false positive, no concern, concern or escalate.")
    event = get_event(db, scope, event_id)
    before = event.status
    event.status = grade
    event.graded_by = who.username
    event.graded_at = utcnow()
    db.add(event)
    audit(db, who.username, "event.grade", event.id, previous=before, grade=grade)
    return _done(request, {"id": event.id, "status": grade}, f"/events/{event.id}")


@router.post("/events/{event_id}/notes", include_in_schema=False)
def add_note(
    request: Request,
    event_id: str,
    db: SessionDep,
    who: KeyholderDep,
    scope: ScopeDep,
    text: Annotated[str, Form(min_length=1, max_length=4000)],
) -> Response:
    event = get_event(db, scope, event_id)
    db.add(EventNote(event_id=event.id, author=who.username, text=text.strip()))
    audit(db, who.username, "event.note", event.id)
    return _done(request, {"id": event.id}, f"/events/{event.id}#notes")
