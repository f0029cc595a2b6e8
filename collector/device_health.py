"""Device health the technician can trust: silent devices, the policy each runs, tamper reports.

One place decides, for the devices page and the scheduled silent-device job alike:

- **silent**: no heartbeat for ``silent_after_minutes`` while the last one said a user was
  signed in (the agent was stopped, or the machine cut off, during a lesson), or for
  ``silent_idle_days`` when no one was (a device that has been away longer than a holiday), or
  never heard from that long since enrolment. A machine shut down at the end of the day says
  "nobody signed in" in its last heartbeat, and is not silent overnight.
- **policy**: ``current`` when the device runs the published policy (serial and digest);
  ``behind`` when it reports an older serial although it has been heard from since the new one
  was published plus two heartbeats' grace; ``other`` when it reports the published serial with
  another digest, or a serial the collector never published (a forged or foreign policy: the
  agent would refuse it, so a device saying so has been tampered with);
  ``unknown`` before it reports.
- **tamper**: the supervisor's tamper reports (category ``tamper``) in the last week.

Heartbeats are authenticated with the device credential, which on supervised Linux desktops only
root can read (agent.supervisor), so a pupil cannot keep a stopped device green with a loop of
their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, or_, select

from collector.settings import Settings
from collector.store.models import Device, Event, PolicyRecord, utcnow

__all__ = [
    "POLICY_GRACE", "TAMPER_CATEGORY", "TAMPER_WINDOW", "Health", "as_utc", "health", "silent",
]

TAMPER_CATEGORY = "tamper"
TAMPER_WINDOW = timedelta(days=7)
POLICY_GRACE = timedelta(minutes=10)  # agents fetch a new policy at their next heartbeat


@dataclass(frozen=True)
class Health:
    state: str  # ok | silent | revoked
    why: str  # one line for the page and the alert log, "" when ok
    policy: str  # current | behind | other | unknown
    tamper: int  # tamper reports in the last TAMPER_WINDOW

    @property
    def healthy(self) -> bool:
        return self.state == "ok" and self.policy in ("current", "unknown") and not self.tamper


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _silence(device: Device, settings: Settings, now: datetime) -> str:
    """Why ``device`` counts as silent, or ""."""
    if device.revoked_at is not None:
        return ""
    seen = as_utc(device.last_seen)
    if seen is None:
        enrolled = as_utc(device.enrolled_at) or now
        if now - enrolled > timedelta(minutes=settings.silent_after_minutes):
            return "never heard from since it was enrolled"
        return ""
    quiet = now - seen
    if device.user_signed_in and quiet > timedelta(minutes=settings.silent_after_minutes):
        return (f"no heartbeat for {_span(quiet)} while a user was signed in: the agent may "
                "have been stopped")
    if not device.user_signed_in and quiet > timedelta(days=settings.silent_idle_days):
        return f"not heard from for {_span(quiet)}"
    return ""


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 72 else f"{hours // 24} days"


def silent(session: Session, settings: Settings, now: datetime | None = None) -> list[Device]:
    """The silent devices (see the module's docstring), longest silent first."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.silent_after_minutes)
    candidates = session.exec(
        select(Device).where(col(Device.revoked_at).is_(None),
                             or_(col(Device.last_seen).is_(None), col(Device.last_seen) < cutoff))
        .order_by(col(Device.last_seen).asc().nulls_first())  # same order on both databases
    ).all()
    return [d for d in candidates if _silence(d, settings, now)]


def _published(session: Session) -> dict[int, tuple[str, datetime | None]]:
    """serial -> (ETag, when it was stored) of every published policy."""
    rows = session.exec(select(PolicyRecord.serial, PolicyRecord.etag,
                               PolicyRecord.created_at)).all()
    return {int(serial): (str(etag), as_utc(at)) for serial, etag, at in rows}


def _policy_state(device: Device, published: dict[int, tuple[str, datetime | None]]
                  ) -> str:
    if not device.policy_serial:
        return "unknown"
    known = published.get(device.policy_serial)
    if known is None:
        return "other"
    if device.policy_digest and device.policy_digest != known[0]:
        return "other"
    latest = max(published)
    if device.policy_serial < latest:
        issued = published[latest][1]
        seen = as_utc(device.last_seen)
        if issued is None or (seen is not None and seen > issued + POLICY_GRACE):
            return "behind"
    return "current"


def _tamper_counts(session: Session, now: datetime, where: tuple[Any, ...]) -> dict[str, int]:
    rows = session.exec(
        select(Event.device_id, func.count())
        .where(Event.category == TAMPER_CATEGORY, col(Event.time) > now - TAMPER_WINDOW, *where)
        .group_by(Event.device_id)
    ).all()
    return {str(device_id): int(n) for device_id, n in rows}


def health(session: Session, settings: Settings, devices: list[Device],
           now: datetime | None = None, events_where: tuple[Any, ...] = ()) -> dict[str, Health]:
    """Each device's Health, by device id; ``events_where``: the events its figures may count
    (a dashboard account's scope: a deputy for Year 7 counts Year 7's tamper reports only)."""
    now = now or utcnow()
    published = _published(session)
    tamper = _tamper_counts(session, now, events_where)
    out: dict[str, Health] = {}
    for device in devices:
        why = _silence(device, settings, now)
        state = "revoked" if device.revoked_at is not None else ("silent" if why else "ok")
        policy = _policy_state(device, published) if published else "unknown"
        out[device.id] = Health(state, why, policy, tamper.get(device.id, 0))
    return out
