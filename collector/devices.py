"""Revoking a device. (Which devices are silent: collector.device_health.)"""

from __future__ import annotations

from sqlmodel import Session

from collector import audit
from collector.errors import NotFound
from collector.store.models import Device, utcnow

__all__ = ["revoke"]


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
