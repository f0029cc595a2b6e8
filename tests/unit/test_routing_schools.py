"""A school's routing rule matches that school's events only, and a school's digest counts that
school's events and incidents only (collector.routing with collector.schools; issue 18)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import select

from collector.routing import _digest, plan
from collector.store.models import (
    Device,
    Event,
    Incident,
    RouteDelivery,
    RouteRule,
    RouteTarget,
    School,
    utcnow,
)


def _event(device_id: str, severity: int = 5) -> Event:
    return Event(id=str(uuid.uuid4()), device_id=device_id, time=utcnow(), category="suicide",
                 severity=severity, rule="suicide.x", blob_key="k", size=1, sha256="0" * 64)


def test_a_schools_rule_routes_its_schools_events_only(database: Any) -> None:
    with database.session() as s:
        nha, shb = School(code="NHA", name="North Hill"), School(code="SHB", name="South Bank")
        s.add(nha)
        s.add(shb)
        s.flush()
        devices = {code: Device(id=str(uuid.uuid4()), hostname=f"{code}-PC", secret_hash="h",
                                school_id=school_id)
                   for code, school_id in (("NHA", nha.id), ("SHB", shb.id), ("none", None))}
        for d in devices.values():
            s.add(d)
        s.flush()
        events = {code: _event(d.id) for code, d in devices.items()}
        for e in events.values():
            s.add(e)
        t_nha = RouteTarget(kind="email", label="NHA", address="a@nha.example", digest=True,
                            created_by="t", school_id=nha.id)
        t_trust = RouteTarget(kind="email", label="Trust", address="t@trust.example",
                              digest=True, created_by="t")
        s.add(t_nha)
        s.add(t_trust)
        s.flush()
        s.add(RouteRule(name="NHA", min_severity=4, targets=[t_nha.id], created_by="t",
                        school_id=nha.id))
        s.add(RouteRule(name="Trust", min_severity=4, targets=[t_trust.id], created_by="t"))
        s.add(Incident(title="NHA", created_by="t", school_id=nha.id))
        s.add(Incident(title="SHB", created_by="t", school_id=shb.id))
        s.commit()
        ids = {code: e.id for code, e in events.items()}
        t_nha_id, t_trust_id = t_nha.id, t_trust.id
    assert plan(database) == 4  # NHA's event twice (both rules), SHB's and none's to the trust
    with database.session() as s:
        sent = {(d.event_id, d.target_id) for d in s.exec(select(RouteDelivery)).all()}
        assert sent == {(ids["NHA"], t_nha_id), (ids["NHA"], t_trust_id),
                        (ids["SHB"], t_trust_id), (ids["none"], t_trust_id)}
        now = utcnow() + timedelta(seconds=1)
        school = _digest(s, s.get(RouteTarget, t_nha_id), now)
        trust = _digest(s, s.get(RouteTarget, t_trust_id), now)
    assert (school.received, school.serious, school.awaiting, school.open_incidents) == (1, 1, 1, 1)
    assert (trust.received, trust.serious, trust.awaiting, trust.open_incidents) == (3, 3, 3, 2)
