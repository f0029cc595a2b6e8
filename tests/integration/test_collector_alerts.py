"""Alert e-mails for critical events, to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller
from sqlmodel import col, select

from collector.settings import SmtpSettings
from collector.store.models import AuditEntry, Event
from tests.fixtures.mail import Inbox, free_port
from tests.fixtures.x11 import wait_until


def test_a_critical_event_is_mailed_within_a_minute_without_content(
        collector_factory: Any, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    server = collector_factory(smtp=SmtpSettings(host="127.0.0.1", port=port,
                                                 sender="vigil@school.example"),
                               alert_recipients=("dsl@school.example", "head@school.example"))
    device = server.enrol()
    quiet = server.post_events(device, 1, severity=3, rule="drugs.weed", category="drugs")
    critical = server.post_events(device, 1, severity=5)
    assert quiet.status_code == critical.status_code == 200
    wait_until(lambda: inbox.messages, timeout=60, interval=0.5, what="the alert e-mail")
    recipients, mail = inbox.messages[0]
    assert sorted(recipients) == ["dsl@school.example", "head@school.example"]
    text = mail.get_payload(decode=True).decode()
    assert f"a critical event needs review at {server.url}/" in text
    for secret in ("suicide", "kill myself", "drugs", device.id, "test-pc", "pupil"):
        assert secret not in text and secret not in str(mail["Subject"])
    stored_critical = critical.json()["stored"][0]
    db = server.database()
    try:
        with db.session() as s:
            assert s.get(Event, stored_critical).alerted_at is not None  # type: ignore[union-attr]
            assert s.get(Event, quiet.json()["stored"][0]).alerted_at is None  # type: ignore[union-attr]
            sent = s.exec(select(AuditEntry).where(col(AuditEntry.action) == "alert.sent")).all()
            assert len(sent) == 1 and sent[0].details["event_ids"] == [stored_critical]
    finally:
        db.close()
    assert len(inbox.messages) == 1  # each event once


def test_alerts_wait_for_a_mail_server_that_is_down(collector_factory: Any) -> None:
    port = free_port()  # nothing listens here yet
    server = collector_factory(smtp=SmtpSettings(host="127.0.0.1", port=port, timeout_s=2),
                               alert_recipients=("dsl@school.example",))
    device = server.enrol()
    assert server.post_events(device, 1, severity=5).status_code == 200
    wait_until(lambda: "job failed" in server.log(), timeout=30, what="a failed alert run")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        wait_until(lambda: inbox.messages, timeout=60, interval=0.5, what="the retried alert")
    finally:
        controller.stop()
    assert "Traceback" not in server.log()


def test_security_refusals_are_mailed_once_without_details(
        database: Any, smtp: tuple[Inbox, int], tmp_path: Any) -> None:
    """Issue 14: a relabelled capture refused on opening, an event refused at ingest for its
    recipients: each is mailed once, the mail says where to look and nothing else."""
    from collector import audit
    from collector.alerts import send_all, send_security_alerts
    from collector.relabel import record_refusal
    from collector.settings import Settings
    from core.errors import MetadataMismatch

    inbox, port = smtp
    settings = Settings(data_dir=tmp_path, public_url="https://vigil.school.example",
                        smtp=SmtpSettings(host="127.0.0.1", port=port),
                        alert_recipients=("dsl@school.example",))
    refused = MetadataMismatch([("severity", 1, 5), ("category", "gambling", "suicide")])
    database.write(lambda s: record_refusal(s, "Ada Head", "ev-1", refused, "screenshot"))
    assert send_security_alerts(database, settings) == 1
    assert send_security_alerts(database, settings) == 0  # once
    database.write(lambda s: audit.record(s, "device:pc-7", "event.quarantined", "ev-2",
                                          {"severity": 5, "category": "suicide"}))
    assert send_all(database, settings) == 1
    assert [str(m["Subject"]) for _, m in inbox.messages] == [
        "Vigil: a security check needs your attention"] * 2
    for _, mail in inbox.messages:
        text = mail.get_payload(decode=True).decode()
        assert "https://vigil.school.example/audit" in text
        for secret in ("Ada Head", "ev-1", "ev-2", "pc-7", "suicide", "gambling", "severity"):
            assert secret not in text


def test_the_daily_digest_counts_unhealthy_devices_once_a_day_without_names(
        database: Any, smtp: tuple[Inbox, int], tmp_path: Any) -> None:
    """Issue 15: the technician's daily reminder of devices still unhealthy; counts and the link
    only; nothing when all is well; at most one a day."""
    from datetime import timedelta

    from collector.health_digest import send_health_digest
    from collector.settings import Settings
    from collector.store.models import Device, utcnow

    inbox, port = smtp
    settings = Settings(data_dir=tmp_path, public_url="https://vigil.school.example",
                        smtp=SmtpSettings(host="127.0.0.1", port=port),
                        alert_recipients=("ict@school.example",))
    now = utcnow()

    def device(s: Any, name: str, **fields: Any) -> None:
        s.add(Device(id=name, hostname=f"HOST-{name}", group="year-8", secret_hash="0" * 64,
                     last_seen=now, **fields))

    database.write(lambda s: device(s, "fine", user_signed_in=True))
    assert send_health_digest(database, settings, now) == 0  # all well: no mail
    database.write(lambda s: (
        device(s, "quiet", user_signed_in=True, enrolled_at=now - timedelta(days=1)),
        device(s, "degraded", detection="lists (model unavailable)")))

    def went_quiet(s: Any) -> None:
        row = s.get(Device, "quiet")
        row.last_seen = now - timedelta(hours=3)
        s.add(row)

    database.write(went_quiet)
    assert send_health_digest(database, settings, now) == 2
    assert send_health_digest(database, settings, now + timedelta(hours=5)) == 0  # once a day
    # A day later: due again, and the device that was fine has been quiet for a day since.
    assert send_health_digest(database, settings, now + timedelta(hours=24)) == 3
    assert [str(m["Subject"]) for _, m in inbox.messages] == [
        "Vigil: devices that need attention today"] * 2
    text = inbox.messages[0][1].get_payload(decode=True).decode()
    assert "- 1 device silent (no heartbeat while they should be on)" in text
    assert "- 1 device detecting with the word lists alone" in text
    assert "https://vigil.school.example/devices" in text
    for secret in ("HOST-", "quiet", "degraded", "year-8"):
        assert secret not in text
