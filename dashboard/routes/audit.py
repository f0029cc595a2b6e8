"""The audit log viewer, with the hash chain's verification status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from collector.audit import verify
from collector.store.models import AuditEntry
from dashboard.deps import KeyholderDep, SessionDep
from dashboard.rendering import render

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

PAGE = 100


@router.get("/audit", include_in_schema=False)
def audit_log(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    before_param = request.query_params.get("before", "")
    before = int(before_param) if before_param.isdigit() else None
    action = (request.query_params.get("action") or "").strip()[:64]
    target = (request.query_params.get("target") or "").strip()[:255]
    query = select(AuditEntry)
    if before is not None:
        query = query.where(col(AuditEntry.seq) < before)
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    rows = db.exec(query.order_by(col(AuditEntry.seq).desc()).limit(PAGE)).all()
    result = verify(db)
    older = rows[-1].seq if len(rows) == PAGE else None
    return render(
        request, "audit.html", who, rows=rows, result=result, older=older, action=action,
        target=target,
    )
