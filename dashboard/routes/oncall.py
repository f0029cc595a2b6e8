"""Working hours and the out-of-hours rota, on the Routing page (issue 18; collector.oncall).

The head sets them, as the rest of routing; the technician can look (the page itself is
dashboard.routes.routing); governors are refused. A school's head sets their school's hours and
rota; a trust-wide account sets the trust's, which a school without its own follows. Closed
days (bank holidays, holidays, INSET days) are set with the hours, and an on-call line can be
for closed days. Each on-call line gets its own routing targets (its e-mail, and webhook if
given) in the same school, so what it is sent is sent, retried, masked and audited like any target's; removing the
line removes them. Every change is audited (``routing.hours_set``, ``routing.oncall_add``,
``routing.oncall_remove``), a webhook by fingerprint, never by URL.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from collector import schools
from collector.oncall import (
    RotaError,
    Span,
    check_closed,
    check_days,
    check_time,
    describe,
    describe_closed,
)
from collector.routing import RouteError, check_target, stored_address
from collector.store.models import OnCallShift, RouteTarget, WorkingHours, utcnow
from dashboard.auditing import audit
from dashboard.deps import HeadDep, SessionDep, SettingsDep
from dashboard.errors import BadRequest
from dashboard.routes.routing import WHOLE_SCHOOL, fingerprint
from dashboard.scope import Scope, ScopeDep

__all__ = ["hours_row", "router"]

router = APIRouter(tags=["dashboard"])

DaysForm = Annotated[list[int], Form()]


def hours_row(db: Session, scope: Scope) -> WorkingHours | None:
    """The account's own working hours row (its school's, or the trust's), if one was set."""
    return db.exec(select(WorkingHours).where(schools.hours_of(scope.school_id))).first()


def _span(days: list[int], start: str, end: str, closed_day: bool = False
          ) -> tuple[list[int], str, str]:
    try:
        return check_days(days, closed_day), check_time(start), check_time(end)
    except RotaError as exc:
        raise BadRequest(str(exc)) from None


@router.post("/routing/hours", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def set_hours(db: SessionDep, who: HeadDep, scope: ScopeDep,
              start: Annotated[str, Form(max_length=8)],
              end: Annotated[str, Form(max_length=8)],
              closed: Annotated[str, Form(max_length=8000)] = "",
              days: DaysForm = []) -> Response:  # noqa: B006 - form default
    days, start, end = _span(days, start, end)
    if start == end:
        raise BadRequest("Working hours need an end after their start.")
    try:
        closed_days = check_closed(closed)
    except RotaError as exc:
        raise BadRequest(f"Closed days: {exc}") from None
    row = hours_row(db, scope) or WorkingHours(school_id=scope.school_id, start=start, end=end,
                                               updated_by=who.username)
    row.days, row.start, row.end = days, start, end
    row.closed = closed_days or None
    row.updated_by, row.updated_at = who.username, utcnow()
    db.add(row)
    db.flush()
    audit(db, who.username, "routing.hours_set", f"working_hours:{row.id}",
          hours=describe(Span.of(days, start, end)), closed=describe_closed(closed_days))
    return RedirectResponse("/routing#hours", status_code=303)


@router.post("/routing/oncall", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def add_shift(db: SessionDep, settings: SettingsDep, who: HeadDep, scope: ScopeDep,
              name: Annotated[str, Form(min_length=1, max_length=48)],
              email: Annotated[str, Form(min_length=1, max_length=320)],
              start: Annotated[str, Form(max_length=8)],
              end: Annotated[str, Form(max_length=8)],
              webhook: Annotated[str, Form(max_length=2000)] = "",
              days: DaysForm = []) -> Response:  # noqa: B006 - form default
    days, start, end = _span(days, start, end, closed_day=True)
    name = name.strip()
    try:
        email = check_target("email", email)
        webhook = check_target("webhook", webhook) if webhook.strip() else ""
    except RouteError as exc:
        raise BadRequest(str(exc)) from None

    def target(kind: str, address: str) -> int:
        row = RouteTarget(kind=kind, label=f"On call: {name}",
                          address=stored_address(settings, kind, address),
                          created_by=who.username, school_id=scope.school_id)
        db.add(row)
        db.flush()
        return row.id or 0

    shift = OnCallShift(school_id=scope.school_id, name=name, days=days, start=start, end=end,
                        email_target_id=target("email", email),
                        webhook_target_id=target("webhook", webhook) if webhook else None,
                        created_by=who.username)
    db.add(shift)
    db.flush()
    audit(db, who.username, "routing.oncall_add", f"oncall_shift:{shift.id}", name=name,
          when=describe(Span.of(days, start, end)), address=email,
          **({"url_sha256": fingerprint(webhook)} if webhook else {}))
    return RedirectResponse("/routing#rota", status_code=303)


@router.post("/routing/oncall/{shift_id}/remove", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def remove_shift(shift_id: int, db: SessionDep, who: HeadDep, scope: ScopeDep) -> Response:
    shift = scope.oncall_shift(db, shift_id, f"There is no on-call line #{shift_id}.")
    now = utcnow()
    shift.removed_at = now
    db.add(shift)
    for target_id in (shift.email_target_id, shift.webhook_target_id):
        target = db.get(RouteTarget, target_id) if target_id is not None else None
        if target is not None and target.removed_at is None:
            target.removed_at = now
            db.add(target)
    audit(db, who.username, "routing.oncall_remove", f"oncall_shift:{shift.id}",
          name=shift.name)
    return RedirectResponse("/routing#rota", status_code=303)
