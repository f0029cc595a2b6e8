"""Rule precision: what the technician's grades say about each rule and category (issue 18).

Counts from clear metadata only (rule, category, grade, time), so nothing needs unlocking; the
technician and the head see it, scoped to their school. See dashboard/precision.py.

Exclusion suggestions (dashboard/exclusions.py) come from the device group, which is clear, for
everyone who sees the page; and, with ``?windows=1`` and only for a keyholder whose key is
unlocked here, from the application and window title sealed in the graded events' headers.
Those headers are opened in this request, the values shown on this page and dropped with it:
nothing is stored or logged but the audit entry naming the events opened
(``event.headers_decrypted``, target ``precision``), as the triage queue records its own.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from collector.store.models import Event, utcnow
from dashboard.auditing import audit
from dashboard.captures import opener
from dashboard.deps import BlobsDep, DashSettingsDep, KeyholderDep, KeyRingDep, SessionDep
from dashboard.exclusions import (
    MAX_OPENED,
    MIN_FALSE_POSITIVES,
    MIN_SHARE,
    from_headers,
    from_metadata,
    graded_events,
    suggest,
    to_open,
)
from dashboard.keyplace import key_here
from dashboard.precision import NOISY_MIN_GRADED, NOISY_PRECISION, precision
from dashboard.rendering import render
from dashboard.scope import ScopeDep

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

WINDOWS = (30, 90, 180, 365)


@router.get("/precision", include_in_schema=False)
def precision_page(request: Request, db: SessionDep, blobs: BlobsDep,
                   settings: DashSettingsDep, ring: KeyRingDep, who: KeyholderDep,
                   scope: ScopeDep) -> Response:
    raw = request.query_params.get("days", "90")
    days = int(raw) if raw.isdigit() and int(raw) in WINDOWS else 90
    now = utcnow()
    figures = precision(db, now, days, where=scope.events())
    rows = graded_events(db, figures.since, where=scope.events())
    suggestions = suggest(from_metadata(rows), ("group",))
    windows = request.query_params.get("windows") == "1"
    key = key_here(request, settings, ring, who) if windows else None
    opened: list[str] = []
    if key is not None:
        wanted = to_open(rows)
        events = {e.id: e for e in db.exec(select(Event).where(
            col(Event.id).in_([r.id for r in wanted])))}
        opened = [r.id for r in wanted if r.id in events]
        graded = from_headers(wanted, events,
                              opener(blobs, key.key, db, who.username, "precision"))
        suggestions = suggest(graded, ("app", "title", "group"))
        if opened:
            audit(db, who.username, "event.headers_decrypted", "precision", events=opened)
    return render(request, "precision.html", who, figures=figures, windows=WINDOWS,
                  noisy_min=NOISY_MIN_GRADED, noisy_precision=NOISY_PRECISION,
                  suggestions=suggestions, looked=key is not None, opened=len(opened),
                  want_windows=windows, max_opened=MAX_OPENED, min_fp=MIN_FALSE_POSITIVES,
                  min_share=MIN_SHARE)
