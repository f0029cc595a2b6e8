"""The routing page (issue 18): the head decides who is told about which events
(collector.routing); the technician can look; governors are refused.

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

from collector.routing import KINDS, RouteError, check_target, mask
from collector.store.models import Device, RouteDelivery, RouteRule, RouteTarget, utcnow
from core.rules import CATEGORIES
from dashboard.auditing import audit
from dashboard.deps import HeadDep, KeyholderDep, SessionDep, SettingsDep
from dashboard.errors import BadRequest, NotFound
from dashboard.rendering import render
from dashboard.scope import trust_wide_only

__all__ = ["router"]

# A school-scoped account is refused (403) until this page is scoped per school (dashboard.scope).
router = APIRouter(tags=["dashboard"], dependencies=[trust_wide_only("Routing")])


def _fingerprint(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()[:12]


def _live_target(db: SessionDep, target_id: int) -> RouteTarget:
    target = db.get(RouteTarget, target_id)
    if target is None or target.removed_at is not None:
        raise NotFound(f"There is no routing target #{target_id}.")
    return target


@router.get("/routing", include_in_schema=False)
def routing_page(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    targets = db.exec(select(RouteTarget).where(col(RouteTarget.removed_at).is_(None))
                      .order_by(col(RouteTarget.id))).all()
    rules = db.exec(select(RouteRule).where(col(RouteRule.removed_at).is_(None))
                    .order_by(col(RouteRule.id))).all()
    groups = sorted(g for g in db.exec(select(Device.group).distinct()).all() if g)
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
    return render(request, "routing.html", who, targets=targets, rules=rules, groups=groups,
                  categories=CATEGORIES, kinds=KINDS, shown={t.id: mask(t) for t in targets},
                  labels={t.id: t.label for t in targets}, states=states, errors=errors)


@router.post("/routing/targets", include_in_schema=False)
def add_target(db: SessionDep, who: HeadDep,
               kind: Annotated[str, Form(max_length=16)],
               label: Annotated[str, Form(min_length=1, max_length=64)],
               address: Annotated[str, Form(min_length=1, max_length=2000)],
               digest: Annotated[bool, Form()] = False) -> Response:
    try:
        address = check_target(kind, address)
    except RouteError as exc:
        raise BadRequest(str(exc)) from None
    target = RouteTarget(kind=kind, label=label.strip(), address=address,
                         digest=digest and kind == "email", created_by=who.username)
    db.add(target)
    db.flush()
    audit(db, who.username, "routing.target_add", f"route_target:{target.id}", kind=kind,
          label=target.label, digest=target.digest,
          **({"address": address} if kind == "email" else {"url_sha256": _fingerprint(address)}))
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/targets/{target_id}/remove", include_in_schema=False)
def remove_target(target_id: int, db: SessionDep, who: HeadDep) -> Response:
    target = _live_target(db, target_id)
    target.removed_at = utcnow()
    db.add(target)
    audit(db, who.username, "routing.target_remove", f"route_target:{target.id}",
          kind=target.kind, label=target.label)
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/targets/{target_id}/test", include_in_schema=False)
def test_target(target_id: int, db: SessionDep, settings: SettingsDep, who: HeadDep) -> Response:
    """Send the no-content alert to one target now, to check the address or webhook works."""
    from collector.routing import send_test

    target = _live_target(db, target_id)
    try:
        send_test(settings, target)
    except RouteError as exc:
        audit(db, who.username, "routing.target_test", f"route_target:{target.id}", ok=False,
              error=str(exc)[:200])
        raise BadRequest(f"The test to {target.label} failed: {exc}") from None
    audit(db, who.username, "routing.target_test", f"route_target:{target.id}", ok=True)
    return RedirectResponse(f"/routing?tested={target.id}", status_code=303)


@router.post("/routing/rules", include_in_schema=False)
def add_rule(db: SessionDep, who: HeadDep,
             name: Annotated[str, Form(min_length=1, max_length=64)],
             min_severity: Annotated[int, Form(ge=1, le=5)],
             category: Annotated[str, Form(max_length=32)] = "",
             group: Annotated[str, Form(max_length=64)] = "",
             targets: Annotated[list[int], Form()] = []) -> Response:  # noqa: B006 - form default
    if category and category not in CATEGORIES:
        raise BadRequest(f"Category must be one of: {', '.join(CATEGORIES)} (or any).")
    chosen = list(dict.fromkeys(targets))
    if not chosen:
        raise BadRequest("Choose at least one target for the rule.")
    for target_id in chosen:
        _live_target(db, target_id)
    rule = RouteRule(name=name.strip(), category=category, min_severity=min_severity,
                     group=group.strip(), targets=chosen, created_by=who.username)
    db.add(rule)
    db.flush()
    audit(db, who.username, "routing.rule_add", f"route_rule:{rule.id}", name=rule.name,
          category=category or "any", min_severity=min_severity, group=rule.group or "any",
          targets=chosen)
    return RedirectResponse("/routing", status_code=303)


@router.post("/routing/rules/{rule_id}/remove", include_in_schema=False)
def remove_rule(rule_id: int, db: SessionDep, who: HeadDep) -> Response:
    rule = db.get(RouteRule, rule_id)
    if rule is None or rule.removed_at is not None:
        raise NotFound(f"There is no routing rule #{rule_id}.")
    rule.removed_at = utcnow()
    db.add(rule)
    audit(db, who.username, "routing.rule_remove", f"route_rule:{rule.id}", name=rule.name)
    return RedirectResponse("/routing", status_code=303)
