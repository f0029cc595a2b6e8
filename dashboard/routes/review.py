"""The head's view: escalated events first, then open incidents, then recent concerns."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from collector.store.models import Grade, Incident, IncidentStatus
from dashboard.deps import KeyholderDep, SessionDep
from dashboard.queue import QueueFilter, fetch_page
from dashboard.rendering import render
from dashboard.scope import ScopeDep

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

REVIEW_LIMIT = 100


@router.get("/review", include_in_schema=False)
def review(request: Request, db: SessionDep, who: KeyholderDep, scope: ScopeDep) -> Response:
    escalated = fetch_page(db, QueueFilter(status=Grade.ESCALATED.value), None, REVIEW_LIMIT,
                           where=scope.events())
    concerns = fetch_page(db, QueueFilter(status=Grade.CONCERN.value), None, 20,
                          where=scope.events())
    incidents = db.exec(
        select(Incident)
        .where(col(Incident.status) != IncidentStatus.CLOSED.value, *scope.incidents())
        .order_by(col(Incident.updated_at).desc())
        .limit(REVIEW_LIMIT)
    ).all()
    return render(
        request,
        "review.html",
        who,
        escalated=escalated.rows,
        concerns=concerns.rows,
        incidents=incidents,
    )
