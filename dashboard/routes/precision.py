"""Rule precision: what the technician's grades say about each rule and category (issue 18).

Counts from clear metadata only (rule, category, grade, time), so nothing needs unlocking; the
technician and the head see it, scoped to their school. See dashboard/precision.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector.store.models import utcnow
from dashboard.deps import KeyholderDep, SessionDep
from dashboard.precision import NOISY_MIN_GRADED, NOISY_PRECISION, precision
from dashboard.rendering import render
from dashboard.scope import ScopeDep

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

WINDOWS = (30, 90, 180, 365)


@router.get("/precision", include_in_schema=False)
def precision_page(request: Request, db: SessionDep, who: KeyholderDep,
                   scope: ScopeDep) -> Response:
    raw = request.query_params.get("days", "90")
    days = int(raw) if raw.isdigit() and int(raw) in WINDOWS else 90
    figures = precision(db, utcnow(), days, where=scope.events())
    return render(request, "precision.html", who, figures=figures, windows=WINDOWS,
                  noisy_min=NOISY_MIN_GRADED, noisy_precision=NOISY_PRECISION)
