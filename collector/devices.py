"""Device queries the dashboard and the jobs share: silent devices, revocation."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, or_, select

from collector import audit
from collector.errors import NotFound
from collector.settings import Settings
from collector.store.models import Device, utcnow

__all__ = ["revoke", "silent"]


def silent(session: Session, settings: Settings) -> list[Device]:
    """Devices expected to be on that have not been heard from for silent_after_minutes.

    "Expected to be on": enrolled, not revoked, and the last heartbeat said a user was signed in
    (a machine shut down at the end of the day says nothing, and is not silent).
    """
    cutoff = utcnow() - timedelta(minutes=settings.silent_after_minutes)
    return list(session.exec(
        select(Device).where(col(Device.revoked_at).is_(None),
                             col(Device.user_signed_in).is_(True),
                             or_(col(Device.last_seen).is_(None), col(Device.last_seen) < cutoff))
        .order_by(col(Device.last_seen))
    ).all())


def revoke(session: Session, device_id: str, actor: str, reason: str = "") -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        device.revoked_reason = reason[:255]
        session.add(device)
        audit.record(session, actor, "device.revoke", target=device_id,
                     details={"reason": reason[:255]})
    return device
