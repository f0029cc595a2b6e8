"""The audit log viewer, with the hash chain's verification status.

Each view verifies incrementally from the last verified entry (dashboard.audit_chain); the whole
chain is walked on the first view in each server process and whenever a keyholder asks.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from collector.audit_log import log_for
from collector.deps import SettingsDep
from collector.store.models import AuditEntry
from dashboard.auditing import audit
from dashboard.deps import ChainVerifierDep, KeyholderDep, SessionDep
from dashboard.rendering import render
from dashboard.scope import trust_wide_only

__all__ = ["router"]

# A school-scoped account is refused (403) until this page is scoped per school (dashboard.scope).
router = APIRouter(tags=["dashboard"], dependencies=[trust_wide_only("The audit log")])

PAGE = 100


@router.get("/audit", include_in_schema=False)
def audit_log(
    request: Request, db: SessionDep, who: KeyholderDep, chain: ChainVerifierDep,
    settings: SettingsDep,
) -> Response:
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
    result = chain.check(db)
    anchors = chain.check_anchors(db, settings.audit_log)
    writer = log_for(db.get_bind())
    older = rows[-1].seq if len(rows) == PAGE else None
    return render(
        request, "audit.html", who, rows=rows, result=result, last_full=chain.last_full,
        older=older, action=action, target=target, anchors=anchors,
        log_problem=writer.problem if writer is not None else None,
    )


@router.post("/audit/verify", include_in_schema=False)
def verify_whole_chain(db: SessionDep, who: KeyholderDep, chain: ChainVerifierDep,
                       settings: SettingsDep) -> Response:
    result = chain.check(db, full=True)
    anchors = chain.check_anchors(db, settings.audit_log, full=True)
    audit(db, who.username, "audit.verify", "chain", ok=result.ok and anchors.ok,
          last=result.last, first_broken=result.first_broken_seq,
          findings=len(anchors.findings))
    return RedirectResponse("/audit", status_code=303)
