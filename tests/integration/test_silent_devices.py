"""Issue 15: the silent-device check runs on a schedule and alerts, with a real collector, a
real agent on Xvfb and a real SMTP server (aiosmtpd) on loopback.

The agent sends heartbeats saying a user is signed in; it is then killed as a pupil would kill
it (SIGKILL, no goodbye). With ``silent_after_minutes`` cut to 0.1 (6 s) and the job every
second, the collector records ``device.silent`` once, mails the alert recipients once without
any detail, and the devices page flags it. A negative ("no second mail") is proved by a
positive that follows it: a critical event posted afterwards is mailed, and the silent device
is still mailed only once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import col, select

from collector.settings import SmtpSettings
from collector.store.models import AuditEntry
from tests.fixtures.faults import AgentRun, device_row
from tests.fixtures.mail import Inbox  # the smtp fixture: tests/fixtures/mail.py
from tests.fixtures.x11 import wait_until
from tests.hardening.clients import sign_in

pytestmark = [pytest.mark.x11, pytest.mark.slow]

SUBJECT = "Vigil: a security check needs your attention"


def _silent_entries(server: Any) -> list[AuditEntry]:
    db = server.database()
    try:
        with db.session() as session:
            return list(session.exec(select(AuditEntry).where(
                AuditEntry.action == "device.silent").order_by(col(AuditEntry.seq))).all())
    finally:
        db.close()


def test_a_killed_agent_is_found_silent_on_schedule_and_alerted_once(
        collector_factory: Any, agent_factory: Callable[..., AgentRun],
        smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    server = collector_factory(
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="vigil@school.example"),
        alert_recipients=("ict@school.example",), silent_after_minutes=0.1,
        silent_check_interval_s=1.0)  # the fixture runs the alert job every second
    agent = agent_factory()
    device_id = agent.enrol(server)
    agent.start()
    wait_until(lambda: (d := device_row(server, device_id)) is not None and d.user_signed_in, 60,
               what="a heartbeat saying a user is signed in")
    assert _silent_entries(server) == []
    agent.kill()

    mail = wait_until(lambda: [m for _, m in inbox.messages if str(m["Subject"]) == SUBJECT],
                      60, interval=0.2, what="the silent-device alert")
    text = mail[0].get_payload(decode=True).decode()
    assert f"{server.url}/audit" in text
    for secret in (device_id, "test-pc", "silent", "signed in as"):
        assert secret not in str(mail[0]["Subject"])
    assert device_id not in text and "test-pc" not in text
    (entry,) = _silent_entries(server)
    assert entry.target == device_id and entry.actor == "system"
    assert "while a user was signed in" in entry.details["why"]
    row = device_row(server, device_id)
    assert row is not None and row.silent_alerted_at is not None

    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    page = head.http.get("/devices").text
    assert f'data-id="{device_id}" data-state="silent"' in page
    head.close()

    # Still silent, the job still running every second: no second record or mail. Proved by a
    # critical event posted now, whose own mail comes through while the silent count stays 1.
    other = server.enrol("IT-SUITE-02")
    assert server.post_events(other, 1, severity=5).status_code == 200
    wait_until(lambda: any("critical event" in str(m["Subject"]) for _, m in inbox.messages),
               60, interval=0.2, what="the critical event's alert")
    assert len(_silent_entries(server)) == 1
    assert [str(m["Subject"]) for _, m in inbox.messages].count(SUBJECT) == 1
