"""The routing page (issue 18): the head decides who is told about which events
(collector.routing); the technician can look; governors are refused. A school's head sees and
changes their school's targets and rules only, and those rules match their school's events only
(dashboard.scope); another school's target or rule by id is 404.

Working hours and the out-of-hours rota are set on this page too (dashboard.routes.oncall).

Targets are e-mail addresses and Teams/Slack incoming webhooks. A webhook URL is a secret: it is
shown masked (host and last four characters), and the audit log names a target by id, label and
a short fingerprint of its URL, never the URL itself.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import col, select

from collector.oncall import (
    DAY_NAMES,
    LONDON,
    MODES,
    SHIFT_DAY_NAMES,
    Rota,
    Span,
    describe,
    describe_closed,
)
from collector.routing import KINDS, RouteError, check_target, mask, stored_address
from collector.store.models import (
    Device,
    OnCallShift,
    RosterPupil,
    RouteDelivery,
    RouteRule,
    RouteTarget,
    WorkingHours,
    utcnow,
)
from core.cohort import YEAR_MAX, check_tag, normal_year
from core.rules import CATEGORIES
from dashboard.auditing import audit
from dashboard.deps import HeadDep, KeyholderDep, SessionDep, SettingsDep
from dashboard.errors import BadRequest
from dashboard.rendering import render
from dashboard.scope import Scope, ScopeDep, whole_school_only

__all__ = ["WHOLE_SCHOOL", "fingerprint", "router"]

router = APIRouter(tags=["dashboard"])
# Rules and the rota tell people about every year's events: not a deputy's for some years.
WHOLE_SCHOOL = whole_school_only("Routing")


def fingerprint(address: str) -> str:
    """What the audit log records of a webhook URL: enough to tell two apart, not to post."""
    return hashlib.sha256(address.encode()).hexdigest()[:12]


def _live_target(db: SessionDep, scope: Scope, target_id: int) -> RouteTarget:
    return scope.route_target(db, target_id, f"There is no routing target #{target_id}.")


@router.get("/routing", include_in_schema=False)
def routing_page(request: Request, db: SessionDep, who: KeyholderDep,
                 scope: ScopeDep) -> Response:
    targets = db.exec(select(RouteTarget).where(col(RouteTarget.removed_at).is_(None),
                                                *scope.route_targets())
                      .order_by(col(RouteTarget.id))).all()
    rules = db.exec(select(RouteRule).where(col(RouteRule.removed_at).is_(None),
                                            *scope.route_rules())
                    .order_by(col(RouteRule.id))).all()
    groups = sorted(g for g in db.exec(select(Device.group).where(*scope.devices())
                                       .distinct()).all() if g)
    # Suggestions for a rule's year: the year groups on the roster (no names are read).
    years = sorted((y for y in db.exec(select(RosterPupil.year).where(
        col(RosterPupil.missing_since).is_(None), *scope.pupils()).distinct()).all() if y),
        key=lambda y: (not y.isdigit(), int(y) if y.isdigit() else 0, y))
    states = {(t, s): n for t, s, n in db.exec(
        select(RouteDelivery.target_id, RouteDelivery.status, func.count())
        .group_by(RouteDelivery.target_id, RouteDelivery.status)).all()}
    errors = {}
    for target in targets:
        last = db.exec(select(RouteDelivery.last_error).where(
            RouteDelivery.target_id == target.id, RouteDelivery.last_error != "")
            .order_by(col(RouteDelivery.id).desc()).limit(1)).first()
        if last:
            errors[target.id] = last
    shifts = db.exec(select(OnCallShift).where(col(OnCallShift.removed_at).is_(None),
                                               *scope.oncall_shifts())
                     .order_by(col(OnCallShift.id))).all()
    # The hours and who is on call now, as the routing job would judge an event arriving now.
    hour_rows = db.exec(select(WorkingHours)).all()
    rota = Rota.of(hour_rows, db.exec(select(OnCallShift).where(
        col(OnCallShift.removed_at).is_(None))).all())
    now = utcnow()
    hours = rota.working_hours(scope.school_id)
    owner = rota.follows(scope.school_id)
    closed = next((h.closed for h in hour_rows if h.school_id == owner), None) or []
    return render(request, "routing.html", who, targets=targets, rules=rules, groups=groups,
                  years=years, can_change=who.role == "head" and not scope.years,
                  categories=CATEGORIES, kinds=KINDS, shown={t.id: mask(t) for t in targets},
                  labels={t.id: t.label for t in targets}, states=states, errors=errors,
                  shifts=shifts, hours=hours, hours_text=describe(hours),
                  hours_from=("own" if scope.school_id in rota.hours else
                              "trust" if None in rota.hours else "default"),
                  days=DAY_NAMES, shift_days=SHIFT_DAY_NAMES,
                  closed_text=describe_closed(closed),
                  closed_lines="\n".join(a if a == b else f"{a} to {b}" for a, b in closed),
                  shift_text={s.id: describe(Span.of(s.days or [], s.start, s.end))
                              for s in shifts},
                  now_local=now.astimezone(LONDON), out_now=rota.out_of_hours(scope.school_id, now),
                  on_call_now=[s.name for s in rota.on_call(scope.school_id, now)])


@router.post("/routing/targets", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def add_target(db: SessionDep, settings: SettingsDep, who: HeadDep, scope: ScopeDep,
               kind: Annotated[str, Form(max_length=16)],
               label: Annotated[str, Form(min_length=1, max_length=64)],
               address: Annotated[str, Form(min_length=1, max_length=2000)],
               digest: Annotated[bool, Form()] = False) -> Response:
    try:
        address = check_target(kind, address)
    except RouteError as exc:
        raise BadRequest(str(exc)) from None
    target = RouteTarget(kind=kind, label=label.strip(),
                         address=stored_address(settings, kind, address),
                         digest=digest and kind == "email", created_by=who.username,
                         school_id=scope.school_id)
    db.add(target)
    db.flush()
    audit(db, who.username, "routing.target_add", f"route_target:{target.id}", kind=kind,
          label=target.label, digest=target.digest,
          **({"address": address} if kind == "email" else {"url_sha256": fingerprint(address)}))
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/targets/{target_id}/remove", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def remove_target(target_id: int, db: SessionDep, who: HeadDep, scope: ScopeDep) -> Response:
    target = _live_target(db, scope, target_id)
    target.removed_at = utcnow()
    db.add(target)
    audit(db, who.username, "routing.target_remove", f"route_target:{target.id}",
          kind=target.kind, label=target.label)
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/targets/{target_id}/test", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def test_target(target_id: int, db: SessionDep, settings: SettingsDep, who: HeadDep,
                scope: ScopeDep) -> Response:
    """Send the no-content alert to one target now, to check the address or webhook works."""
    from collector.routing import send_test

    target = _live_target(db, scope, target_id)
    try:
        send_test(settings, target)
    except RouteError as exc:
        audit(db, who.username, "routing.target_test", f"route_target:{target.id}", ok=False,
              error=str(exc)[:200])
        raise BadRequest(f"The test to {target.label} failed: {exc}") from None
    audit(db, who.username, "routing.target_test", f"route_target:{target.id}", ok=True)
    return RedirectResponse(f"/routing?tested={target.id}", status_code=303)


@router.post("/routing/rules", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def add_rule(db: SessionDep, who: HeadDep, scope: ScopeDep,
             name: Annotated[str, Form(min_length=1, max_length=64)],
             min_severity: Annotated[int, Form(ge=1, le=5)],
             category: Annotated[str, Form(max_length=32)] = "",
             group: Annotated[str, Form(max_length=64)] = "",
             year: Annotated[str, Form(max_length=YEAR_MAX)] = "",
             out_of_hours: Annotated[str, Form(max_length=8)] = "",
             targets: Annotated[list[int], Form()] = []) -> Response:  # noqa: B006 - form default
    if category and category not in CATEGORIES:
        raise BadRequest(f"Category must be one of: {', '.join(CATEGORIES)} (or any).")
    if out_of_hours not in MODES:
        raise BadRequest("Out of hours is one of: the rule's targets only, the on-call DSL "
                         "as well, or the on-call DSL instead.")
    year = normal_year(year) if year.strip() else ""  # "Year 7" as events carry it: "7"
    if check_tag(year, "") is not None:
        raise BadRequest("Year is a year group as the roster has it (7, or Reception), or empty "
                         "for any year.")
    chosen = list(dict.fromkeys(targets))
    if not chosen:
        raise BadRequest("Choose at least one target for the rule.")
    for target_id in chosen:
        _live_target(db, scope, target_id)
    rule = RouteRule(name=name.strip(), category=category, min_severity=min_severity,
                     group=group.strip(), year=year, targets=chosen, created_by=who.username,
                     school_id=scope.school_id, out_of_hours=out_of_hours)
    db.add(rule)
    db.flush()
    audit(db, who.username, "routing.rule_add", f"route_rule:{rule.id}", name=rule.name,
          category=category or "any", min_severity=min_severity, group=rule.group or "any",
          year=year or "any", targets=chosen, out_of_hours=out_of_hours or "targets only")
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/rules/{rule_id}/remove", include_in_schema=False, dependencies=[WHOLE_SCHOOL])
def remove_rule(rule_id: int, db: SessionDep, who: HeadDep, scope: ScopeDep) -> Response:
    rule = scope.route_rule(db, rule_id, f"There is no routing rule #{rule_id}.")
    rule.removed_at = utcnow()
    db.add(rule)
    audit(db, who.username, "routing.rule_remove", f"route_rule:{rule.id}", name=rule.name)
    return RedirectResponse("/routing", status_code=303)
