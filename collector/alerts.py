"""E-mail alerts for events at or above the configured severity.

The message says only that a critical event needs review and where: no category, rule, device,
user or content, since e-mail leaves the school's control. Each event is alerted once
(Event.alerted_at); if the mail server is down, the next run tries again.

Security refusals are alerted the same way: an event refused at ingest because it was not sealed
to the school's keyholders (``event.quarantined``) and a capture not opened because its database
row was changed (``capture.relabel_refused``). They are found in the audit log; each mail records
the last entry it covered (``alert.security_sent``), so each refusal is mailed once.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import update
from sqlmodel import Session, col, or_, select

from collector import audit
from collector.errors import CollectorError
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import AuditEntry, Event, utcnow

__all__ = [
    "SECURITY_ACTIONS",
    "AlertError",
    "compose",
    "compose_security",
    "pending_alerts",
    "pending_security_alerts",
    "send_alerts",
    "send_all",
    "send_mail",
    "send_security_alerts",
]

# Events received longer ago than this are not alerted (e.g. when alerts are first switched on).
LOOKBACK = timedelta(days=1)


class AlertError(CollectorError):
    code = "alert-failed"


def pending_alerts(session: Session, settings: Settings) -> list[str]:
    """Events to mail: at or above the alert severity, and every tamper report (a desktop's
    supervisor saying the agent was stopped or its files changed) whatever its severity."""
    from collector.device_health import TAMPER_CATEGORY

    return list(session.exec(
        select(Event.id).where(or_(col(Event.severity) >= settings.alert_min_severity,
                                   col(Event.category) == TAMPER_CATEGORY),
                               col(Event.alerted_at).is_(None),
                               col(Event.received_at) > utcnow() - LOOKBACK)
        .order_by(col(Event.received_at))
    ).all())


def compose(settings: Settings, count: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp.sender
    msg["To"] = ", ".join(settings.alert_recipients)
    noun = "a critical event needs" if count == 1 else f"{count} critical events need"
    msg["Subject"] = f"Vigil: {noun} review"
    msg.set_content(
        f"Vigil: {noun} review at {settings.public_url}/\n\n"
        "Sign in to the dashboard to see it. This message deliberately holds no details.\n"
    )
    return msg


def send_mail(settings: Settings, msg: EmailMessage) -> None:
    """Send ``msg`` through the configured SMTP server; AlertError in one line if it cannot."""
    smtp = settings.smtp
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertError(f"cannot send the alert e-mail via {smtp.host}:{smtp.port}: "
                         f"{type(exc).__name__}") from None


def send_alerts(db: Database, settings: Settings) -> int:
    """Send one e-mail for the events not yet alerted; return how many events it covered."""
    if not settings.smtp.host or not settings.alert_recipients:
        return 0
    with db.session() as session:
        ids = pending_alerts(session, settings)
    if not ids:
        return 0
    send_mail(settings, compose(settings, len(ids)))

    def mark(session: Session) -> None:
        session.execute(update(Event).where(col(Event.id).in_(ids)).values(alerted_at=utcnow()))
        audit.record(session, "system", "alert.sent", target=f"{len(ids)} events",
                     details={"event_ids": ids, "recipients": len(settings.alert_recipients)})

    db.write(mark)
    return len(ids)


# device.silent: collector.silent_devices, a device that stopped reporting (its agent or
# supervisor stopped, or the machine cut off) while it should be on. keyholder.unapproved:
# collector.keyholders.flag_unapproved, a key no keyholder signed for.
SECURITY_ACTIONS = ("event.quarantined", "capture.relabel_refused", "device.silent",
                    "keyholder.unapproved")
SECURITY_SENT = "alert.security_sent"


def pending_security_alerts(session: Session) -> list[AuditEntry]:
    """Refusals in the audit log after the last one mailed (and within LOOKBACK)."""
    last = session.exec(select(AuditEntry).where(AuditEntry.action == SECURITY_SENT)
                        .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    through = int((last.details or {}).get("through_seq", 0)) if last is not None else 0
    return list(session.exec(
        select(AuditEntry).where(col(AuditEntry.action).in_(SECURITY_ACTIONS),
                                 col(AuditEntry.seq) > through,
                                 col(AuditEntry.at) > utcnow() - LOOKBACK)
        .order_by(col(AuditEntry.seq))
    ).all())


def compose_security(settings: Settings, count: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp.sender
    msg["To"] = ", ".join(settings.alert_recipients)
    noun = "a security check needs your attention" if count == 1 else \
        f"{count} security checks need your attention"
    msg["Subject"] = f"Vigil: {noun}"
    msg.set_content(
        f"Vigil: {noun}. See the audit log at {settings.public_url}/audit\n\n"
        "Either a desktop sent an event that was not sealed to the school's keyholders (it was "
        "refused and is kept on that desktop), or someone changed a capture's record in the "
        "database and it was not opened, or a device stopped reporting while a user was signed "
        "in (or for a long time), or a key appeared in the keyholder list that no keyholder has "
        "approved (it can read nothing until one does). Each may mean someone is tampering with "
        "Vigil.\n"
        "This message deliberately holds no details.\n"
    )
    return msg


def send_security_alerts(db: Database, settings: Settings) -> int:
    """One e-mail for the refusals not yet mailed; returns how many it covered."""
    if not settings.smtp.host or not settings.alert_recipients:
        return 0
    with db.session() as session:
        entries = [(e.seq, e.action, e.target) for e in pending_security_alerts(session)]
    if not entries:
        return 0
    send_mail(settings, compose_security(settings, len(entries)))
    db.write(lambda session: audit.record(
        session, "system", SECURITY_SENT, target=f"{len(entries)} refusals",
        details={"through_seq": entries[-1][0], "entries": [e[0] for e in entries],
                 "recipients": len(settings.alert_recipients)}))
    return len(entries)


def send_all(db: Database, settings: Settings) -> int:
    """The alert job: critical events, then security refusals (one failing does not stop the
    other; the first error is raised afterwards so the job is logged as failed)."""
    sent, error = 0, None
    for job in (send_alerts, send_security_alerts):
        try:
            sent += job(db, settings)
        except AlertError as exc:
            error = error or exc
    if error is not None:
        raise error
    return sent
