"""The silent-device job: each device that goes silent is recorded once, and so alerted once.

Which devices are silent is collector.device_health's to say. This job runs every
``silent_check_interval_s`` under the scheduler's advisory lock; for each silent device not yet
recorded for this silence it writes ``device.silent`` to the audit log (hostname, why, last
heartbeat) and stamps ``Device.silent_alerted_at``, in one transaction. The alert job mails
``device.silent`` entries like the security refusals, without details. A device heard from
again after the stamp starts a new silence: if it goes quiet again, it is recorded again.
"""

from __future__ import annotations

from sqlmodel import Session

from collector import audit
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import Device, utcnow

__all__ = ["SILENT", "flag_silent"]

SILENT = "device.silent"  # the audit action


def _new_silence(device: Device) -> bool:
    from collector.device_health import as_utc

    alerted, seen = as_utc(device.silent_alerted_at), as_utc(device.last_seen)
    return alerted is None or (seen is not None and seen > alerted)


def flag_silent(db: Database, settings: Settings) -> int:
    """Record each device that went silent since the last run; returns how many."""
    from collector.device_health import health, silent

    now = utcnow()
    with db.session() as session:  # read first: most runs find nothing to write
        waiting = [d.id for d in silent(session, settings, now) if _new_silence(d)]
    if not waiting:
        return 0

    def job(session: Session) -> int:
        recorded = 0
        devices = [d for i in waiting if (d := session.get(Device, i)) is not None]
        states = health(session, settings, devices, now)
        for device in devices:
            state = states[device.id]
            if state.state != "silent" or not _new_silence(device):
                continue  # heard from, or recorded by another instance, since the read
            device.silent_alerted_at = now
            session.add(device)
            audit.record(session, "system", SILENT, target=device.id, details={
                "hostname": device.hostname, "why": state.why,
                "last_seen": device.last_seen.isoformat() if device.last_seen else None,
                "user_signed_in": device.user_signed_in})
            recorded += 1
        return recorded

    return db.write(job)
