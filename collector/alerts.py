"""E-mail alerts for events at or above the configured severity.

The message says only that a critical event needs review and where: no category, rule, device,
user or content, since e-mail leaves the school's control. Each event is alerted once
(Event.alerted_at); if the mail server is down, the next run tries again.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import update
from sqlmodel import Session, col, select

from collector import audit
from collector.errors import CollectorError
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import Event, utcnow

__all__ = ["AlertError", "compose", "pending_alerts", "send_alerts"]

# Events received longer ago than this are not alerted (e.g. when alerts are first switched on).
LOOKBACK = timedelta(days=1)


class AlertError(CollectorError):
    code = "alert-failed"


def pending_alerts(session: Session, settings: Settings) -> list[str]:
    return list(session.exec(
        select(Event.id).where(col(Event.severity) >= settings.alert_min_severity,
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


def _send(settings: Settings, msg: EmailMessage) -> None:
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
    _send(settings, compose(settings, len(ids)))

    def mark(session: Session) -> None:
        session.execute(update(Event).where(col(Event.id).in_(ids)).values(alerted_at=utcnow()))
        audit.record(session, "system", "alert.sent", target=f"{len(ids)} events",
                     details={"event_ids": ids, "recipients": len(settings.alert_recipients)})

    db.write(mark)
    return len(ids)
