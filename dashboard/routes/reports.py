"""Reports: weekly charts by category and severity, and the governors' termly summary.

Every figure is an anonymised count; no hostname, user or capture appears, so all roles may see
these pages. A trust-wide account's termly summary also has a row per school (issue 18:
governors' reports gain the false-positive rate and response times per school), and
``?school=CODE`` prints one school's summary for that school's governors.
"""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from collector import schools
from collector.store.models import School, utcnow
from dashboard.deps import AnyRoleDep, DashSettingsDep, SessionDep
from dashboard.errors import BadRequest, NotFound
from dashboard.rendering import render
from dashboard.scope import Scope, ScopeDep
from dashboard.stats import Span, term_for, term_summary, weekly_series

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

MAX_WEEKS = 104
PALETTE = ("#3b6ea5", "#d9822b", "#5a9e4b", "#b0413e", "#7d5ba6", "#2a9d8f", "#8a6d3b",
           "#c2185b", "#607d8b", "#9e9d24", "#00838f", "#6d4c41")
SEVERITY_COLOURS = {1: "#9bb7d4", 2: "#6aa5c9", 3: "#e0b341", 4: "#e07b39", 5: "#b0222a"}


def _date_param(request: Request, name: str) -> date | None:
    value = (request.query_params.get(name) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise BadRequest(f"{name} must be a date like 2026-09-01.") from exc


@router.get("/reports", include_in_schema=False)
def reports(request: Request, db: SessionDep, who: AnyRoleDep, scope: ScopeDep) -> Response:
    weeks_param = request.query_params.get("weeks", "12")
    weeks = int(weeks_param) if weeks_param.isdigit() else 12
    weeks = max(1, min(MAX_WEEKS, weeks))
    today = utcnow().date()
    span = Span(today - timedelta(days=7 * weeks - 1), today)
    series = weekly_series(db, span, where=scope.events())
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(series.by_category)}
    return render(
        request,
        "reports.html",
        who,
        series=series,
        weeks=weeks,
        colours=colours,
        severity_colours=SEVERITY_COLOURS,
        peak=max(series.totals or [0]) or 1,
    )


@router.get("/reports/termly", include_in_schema=False)
def termly(
    request: Request, db: SessionDep, settings: DashSettingsDep, who: AnyRoleDep,
    scope: ScopeDep,
) -> Response:
    default = term_for(utcnow().date())
    start = _date_param(request, "start") or default.start
    end = _date_param(request, "end") or default.end
    if end < start:
        raise BadRequest("The end of the term is before its start.")
    span = Span(start, end)
    code = (request.query_params.get("school") or "").strip()
    if code:
        # One school's summary for its own governors, printed by the trust's lead; a school's
        # account may name only its own school.
        one = db.exec(select(School).where(School.code == code)).first()
        if one is None or not (scope.trust_wide or one.id == scope.school_id):
            raise NotFound(f"There is no school {code!r}.")
        scope = Scope(one, scope.years)
    summary = term_summary(db, span, where=scope.events(), incidents_where=scope.incidents())
    school = scope.school.name if scope.school is not None else settings.school_name
    # A trust's board compares its schools: the same figures, one row per school.
    by_school = [] if not scope.trust_wide else [
        (row, term_summary(db, span, where=(schools.events_of(row.id),),
                           incidents_where=(schools.incidents_of(row.id),)))
        for row in db.exec(select(School).order_by(col(School.code))).all()]
    return render(request, "termly.html", who, summary=summary, school=school,
                  by_school=by_school)
