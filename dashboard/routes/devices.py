"""Enrolled devices with their health (collector.device_health: silent, policy, tamper
reports, detection) and enrolment tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from collector.api.enrol import token_hash
from collector.store.models import DetectionMode, Device, EnrolToken, School, utcnow
from dashboard.auditing import audit
from dashboard.deps import KeyholderDep, SessionDep, SettingsDep, TechnicianDep
from dashboard.errors import NotFound
from dashboard.rendering import render
from dashboard.scope import Scope, ScopeDep
from dashboard.security import aware

__all__ = ["detection_label", "router", "screen_label"]

router = APIRouter(tags=["dashboard"])


def detection_label(mode: str, note: str) -> tuple[str, str]:
    """(text, kind) for the Detection column; kind is "" (normal), "off" (switched off by the
    agent's settings) or "degraded" (the model failed to load). The note came from a desktop:
    it stays plain text for the template to escape."""
    if mode == DetectionMode.LISTS_AND_MODEL:
        return "lists + model", ""
    if mode == DetectionMode.LISTS:
        return (f"lists only: {note}" if note else "lists only (model switched off)"), "off"
    if mode == DetectionMode.MODEL_UNAVAILABLE:
        return f"lists only: {note or 'the sentence model did not load'}", "degraded"
    return mode, ""  # "" until the agent reports (older agents)


def screen_label(state: str, note: str) -> tuple[str, str]:
    """(text, kind) for the screen-reading line of the Detection column; kind "degraded" when
    the policy asks for screen reading and the engine did not load there. Desktop text stays
    plain for the template to escape."""
    if not state:
        return "", ""
    if "unavailable" in state:
        return f"screen reading: {note or state}", "degraded"
    if state.startswith("off"):
        return "screen reading off", "off"
    return f"screen reading {state}", ""


POLICY_LABELS = {
    "current": ("published", ""),
    "behind": ("behind: has not taken the published policy", "behind"),
    "other": ("NOT the published policy: check this device", "other"),
    "unknown": ("not reported", ""),
}


def _devices_page(
    request: Request, db: SessionDep, settings: SettingsDep, who: KeyholderDep, scope: Scope,
    new_token: str = "",
) -> Response:
    from collector.device_health import health

    now = utcnow()
    devices = list(db.exec(select(Device).where(*scope.devices())
                           .order_by(col(Device.hostname))).all())
    states = health(db, settings, devices, now, events_where=scope.events())
    detection = {d.id: detection_label(d.detection, d.detection_note) for d in devices}
    screen = {d.id: screen_label(d.screen, d.screen_note) for d in devices}
    live = [d for d in devices if d.revoked_at is None]
    degraded = sum(1 for d in live if detection[d.id][1] == "degraded")
    tokens = db.exec(
        select(EnrolToken).where(*scope.tokens())
        .order_by(col(EnrolToken.created_at).desc()).limit(100)
    ).all()
    schools = list(db.exec(select(School).order_by(col(School.code))).all())
    return render(
        request,
        "devices.html",
        who,
        devices=devices,
        health=states,
        policy_labels=POLICY_LABELS,
        detection=detection,
        screen=screen,
        degraded=degraded,
        silent_count=sum(1 for d in live if states[d.id].state == "silent"),
        other_policy=sum(1 for d in live if states[d.id].policy == "other"),
        tampered=sum(1 for d in live if states[d.id].tamper),
        tokens=tokens,
        now=now,
        aware=aware,
        new_token=new_token,
        collector_url=settings.public_url,
        silent_minutes=settings.silent_after_minutes,
        silent_days=settings.silent_idle_days,
        schools=schools,
        school_codes={s.id: s.code for s in schools},
        my_school=scope.school,
    )


@router.get("/devices", include_in_schema=False)
def devices(
    request: Request, db: SessionDep, settings: SettingsDep, who: KeyholderDep, scope: ScopeDep
) -> Response:
    return _devices_page(request, db, settings, who, scope)


@router.post("/devices/tokens", include_in_schema=False)
def create_token(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    who: TechnicianDep,
    scope: ScopeDep,
    group: Annotated[str, Form(max_length=64)] = "",
    max_uses: Annotated[int, Form(ge=1, le=10000)] = 1,
    days: Annotated[int, Form(ge=1, le=90)] = 7,
    school: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    token = secrets.token_urlsafe(24)
    # A school's technician enrols into their school whatever the form says; a trust-wide one
    # chooses (none: the devices are seen by trust-wide accounts only).
    chosen = scope.school
    if chosen is None and school.strip():
        chosen = db.exec(select(School).where(School.code == school.strip().upper())).first()
        if chosen is None:
            raise NotFound(f"There is no school with code {school.strip().upper()!r}.")
    row = EnrolToken(
        token_hash=token_hash(token),
        group=group.strip(),
        school_id=chosen.id if chosen is not None else None,
        max_uses=max_uses,
        expires_at=utcnow() + timedelta(days=days),
        created_by=who.username,
    )
    db.add(row)
    db.flush()
    extra = {"school": chosen.code} if chosen is not None else {}
    audit(db, who.username, "enrol_token.create", f"token:{row.id}", group=row.group,
          max_uses=max_uses, days=days, **extra)
    # Shown once, on this answer only; the database keeps its hash.
    return _devices_page(request, db, settings, who, scope, new_token=token)


@router.post("/devices/tokens/{token_id}/revoke", include_in_schema=False)
def revoke_token(token_id: int, db: SessionDep, who: TechnicianDep, scope: ScopeDep) -> Response:
    row = scope.token(db, token_id, "There is no such enrolment token.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.add(row)
        audit(db, who.username, "enrol_token.revoke", f"token:{row.id}")
    return RedirectResponse("/devices", status_code=303)
