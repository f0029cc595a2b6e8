"""The daily digest of unhealthy devices, to the alert recipients.

Silent devices and tamper reports are mailed as they happen (collector.alerts); the digest is
the technician's morning reminder of what is still wrong: how many devices are silent, run a
policy other than the published one, are behind it, detect with the word lists alone, or
reported tampering this week. Counts only, and the link to the Devices page: e-mail leaves the
school's control, so no hostname, user or group is in it. Nothing is sent when every device is
healthy. At most one digest in ``DIGEST_EVERY``, however often the job runs or however many
instances run it; each one sent is recorded in the audit log (``alert.health_digest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlmodel import Session, col, select

from collector import audit
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import AuditEntry, DetectionMode, Device, utcnow

__all__ = ["DIGEST_ACTION", "DIGEST_EVERY", "Digest", "count_unhealthy", "send_health_digest"]

DIGEST_ACTION = "alert.health_digest"
DIGEST_EVERY = timedelta(hours=23)  # daily, without drifting later each day by the job's interval


@dataclass(frozen=True)
class Digest:
    silent: int = 0
    other_policy: int = 0
    behind: int = 0
    lists_only: int = 0
    tampered: int = 0

    @property
    def total(self) -> int:
        return self.silent + self.other_policy + self.behind + self.lists_only + self.tampered

    def lines(self) -> list[str]:
        parts = [(self.silent, "silent (no heartbeat while they should be on)"),
                 (self.other_policy, "running a policy that was not published here"),
                 (self.behind, "behind the published policy"),
                 (self.lists_only, "detecting with the word lists alone (the model did not load)"),
                 (self.tampered, "reported tampering in the last week")]
        return [f"- {n} device{'s' if n != 1 else ''} {what}" for n, what in parts if n]


def count_unhealthy(session: Session, settings: Settings, now: datetime | None = None) -> Digest:
    from collector.device_health import health

    devices = list(session.exec(select(Device).where(col(Device.revoked_at).is_(None))).all())
    states = health(session, settings, devices, now)
    return Digest(
        silent=sum(1 for d in devices if states[d.id].state == "silent"),
        other_policy=sum(1 for d in devices if states[d.id].policy == "other"),
        behind=sum(1 for d in devices if states[d.id].policy == "behind"),
        lists_only=sum(1 for d in devices if d.detection == DetectionMode.MODEL_UNAVAILABLE),
        tampered=sum(1 for d in devices if states[d.id].tamper),
    )


def compose_digest(settings: Settings, digest: Digest) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp.sender
    msg["To"] = ", ".join(settings.alert_recipients)
    msg["Subject"] = "Vigil: devices that need attention today"
    msg.set_content(
        "Vigil's daily device check found:\n\n" + "\n".join(digest.lines()) +
        f"\n\nSee which on the Devices page: {settings.public_url}/devices\n"
        "This message deliberately names no device or user.\n")
    return msg


def send_health_digest(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Send the digest if one is due and something is unhealthy; how many problems it listed."""
    from collector.alerts import send_mail

    if not settings.smtp.host or not settings.alert_recipients:
        return 0
    now = now or utcnow()
    with db.session() as session:
        last = session.exec(select(AuditEntry).where(AuditEntry.action == DIGEST_ACTION)
                            .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
        if last is not None:
            from collector.device_health import as_utc

            sent_at = as_utc(last.at)
            if sent_at is not None and now - sent_at < DIGEST_EVERY:
                return 0
        digest = count_unhealthy(session, settings, now)
    if not digest.total:
        return 0
    send_mail(settings, compose_digest(settings, digest))
    db.write(lambda session: audit.record(
        session, "system", DIGEST_ACTION, target=f"{digest.total} device problems",
        details={"silent": digest.silent, "other_policy": digest.other_policy,
                 "behind": digest.behind, "lists_only": digest.lists_only,
                 "tampered": digest.tampered, "recipients": len(settings.alert_recipients)}))
    return digest.total
