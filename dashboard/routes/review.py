"""The head's view: escalated events first, then open incidents, then recent concerns."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from collector.store.models import Grade, Incident, IncidentStatus
from dashboard.deps import KeyholderDep, SessionDep
from dashboard.queue import QueueFilter, fetch_page
from dashboard.rendering import render

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

REVIEW_LIMIT = 100


@router.get("/review", include_in_schema=False)
def review(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    escalated = fetch_page(db, QueueFilter(status=Grade.ESCALATED.value), None, REVIEW_LIMIT)
    concerns = fetch_page(db, QueueFilter(status=Grade.CONCERN.value), None, 20)
    incidents = db.exec(
        select(Incident)
        .where(col(Incident.status) != IncidentStatus.CLOSED.value)
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
