"""Issue 18: the head's routing rules, to a real SMTP server (aiosmtpd) and a real webhook
receiver (an HTTP server), both on loopback; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from collector.settings import Settings, SmtpSettings
from collector.store.models import (
    AuditEntry,
    Device,
    Event,
    RouteDelivery,
    RouteRule,
    RouteTarget,
    utcnow,
)
from tests.fixtures.mail import HOOK_PATH, Hook, Inbox, free_port

SECRET_PATH = HOOK_PATH


def _settings(tmp_path: Path, port: int) -> Settings:
    return Settings(data_dir=tmp_path, public_url="https://vigil.school.example",
                    smtp=SmtpSettings(host="127.0.0.1", port=port, sender="vigil@school.example",
                                      timeout_s=3), route_retry_s=30)


def _device(db: Any, group: str, hostname: str = "Y7-TROLLEY-04") -> str:
    device_id = str(uuid.uuid4())
    db.write(lambda s: s.add(Device(id=device_id, hostname=hostname, group=group,
                                    secret_hash="0" * 64)))
    return device_id


def _event(db: Any, device_id: str, category: str, severity: int) -> str:
    event_id = str(uuid.uuid4())
    db.write(lambda s: s.add(Event(id=event_id, device_id=device_id, time=utcnow(),
                                   category=category, severity=severity,
                                   rule=f"{category}.rule", blob_key=event_id, size=1,
                                   sha256="0" * 64)))
    return event_id


def _target(db: Any, kind: str, address: str, label: str, digest: bool = False) -> int:
    def add(s: Any) -> int:
        row = RouteTarget(kind=kind, label=label, address=address, digest=digest,
                          created_by="Ada Head")
        s.add(row)
        s.flush()
        return row.id or 0
    return db.write(add)


def _rule(db: Any, targets: list[int], category: str = "", min_severity: int = 1,
          group: str = "") -> int:
    def add(s: Any) -> int:
        row = RouteRule(name="r", category=category, min_severity=min_severity, group=group,
                        targets=targets, created_by="Ada Head")
        s.add(row)
        s.flush()
        return row.id or 0
    return db.write(add)


def _actions(db: Any, action: str) -> list[AuditEntry]:
    with db.session() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)
                           .order_by(col(AuditEntry.seq))).all())


def test_rules_route_each_event_once_by_category_severity_and_group_without_content(
        database: Any, smtp: tuple[Inbox, int], hook: Hook, tmp_path: Path) -> None:
    from collector.routing import route_all

    inbox, port = smtp
    settings = _settings(tmp_path, port)
    dsl = _target(database, "email", "dsl@school.example", "DSL")
    channel = _target(database, "webhook", hook.url, "Safeguarding channel")
    # Severity 5 from Year 7's devices to the DSL and the channel; any self-harm to the DSL.
    _rule(database, [dsl, channel], min_severity=5, group="year7")
    _rule(database, [dsl], category="selfharm", min_severity=3)
    y7, y9 = _device(database, "year7"), _device(database, "year9", "Y9-SUITE-01")
    routed = {_event(database, y7, "suicide", 5), _event(database, y9, "selfharm", 4)}
    quiet = {_event(database, y9, "suicide", 5),  # severity 5, but not Year 7's device
             _event(database, y7, "bullying", 4)}  # Year 7, but below 5

    assert route_all(database, settings) == 3  # two events to the DSL, one to the channel
    assert route_all(database, settings) == 0  # each event once
    assert len(inbox.messages) == 1 and len(hook.posts) == 1
    recipients, mail = inbox.messages[0]
    assert recipients == ["dsl@school.example"]
    assert str(mail["Subject"]) == "Vigil: 2 events need review"
    text = mail.get_payload(decode=True).decode()
    assert "https://vigil.school.example/triage" in text
    path, body = hook.posts[0]
    assert path == SECRET_PATH
    assert body == {"text": "Vigil: an event needs review at https://vigil.school.example/triage"}
    for leak in ("suicide", "selfharm", "year7", "Y7-TROLLEY", "Y9-SUITE", *routed, *quiet):
        assert leak not in text and leak not in str(mail["Subject"]) and leak not in str(body)

    with database.session() as s:
        rows = s.exec(select(RouteDelivery)).all()
        assert {r.event_id for r in rows} == routed
        assert all(r.status == "sent" for r in rows)
        assert all(s.get(Event, e).routed_at is not None for e in routed | quiet)
    sent = _actions(database, "route.sent")
    assert sorted(e.details["kind"] for e in sent) == ["email", "webhook"]
    assert SECRET_PATH not in json.dumps([e.details for e in _actions(database, "route.sent")])


def test_a_target_that_is_down_is_retried_until_it_answers(
        database: Any, smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    from collector.routing import RouteError, deliver, plan, route_all

    _, smtp_port = smtp
    settings = _settings(tmp_path, smtp_port)
    port = free_port()  # nothing listens here yet
    channel = _target(database, "webhook", f"http://127.0.0.1:{port}{SECRET_PATH}", "Channel")
    _rule(database, [channel], min_severity=4)
    event = _event(database, _device(database, ""), "suicide", 5)

    with pytest.raises(RouteError) as failed:
        route_all(database, settings)
    message = str(failed.value)
    assert message.startswith(f"route target {channel} (Channel): the webhook did not answer")
    assert "\n" not in message and SECRET_PATH not in message and str(port) not in message
    with database.session() as s:
        (row,) = s.exec(select(RouteDelivery)).all()
        assert (row.status, row.attempts) == ("pending", 1)
        first_wait = row.next_attempt_at
    receiver = Hook(port)
    try:
        assert deliver(database, settings).sent == 0  # not due yet: it waits, then tries
        later = utcnow() + timedelta(seconds=31)
        assert first_wait.replace(tzinfo=later.tzinfo) <= later
        done = deliver(database, settings, now=later)
        assert (done.sent, done.error) == (1, "")
        assert [b for _, b in receiver.posts] == [
            {"text": "Vigil: an event needs review at https://vigil.school.example/triage"}]
        assert plan(database) == 0 and deliver(database, settings, now=later).sent == 0
    finally:
        receiver.close()
    (sent,) = _actions(database, "route.sent")
    assert sent.details["events"] == [event]

    # A target that stays down for a day is given up on, and that is audited.
    gone = _target(database, "webhook", f"http://127.0.0.1:{port}/gone", "Gone")
    _rule(database, [gone], category="drugs")
    _event(database, _device(database, ""), "drugs", 2)
    plan(database)
    deliver(database, settings, now=utcnow() + timedelta(days=1, minutes=1))
    (given_up,) = _actions(database, "route.failed")
    assert given_up.details["label"] == "Gone" and "/gone" not in json.dumps(given_up.details)


def test_the_weekly_digest_goes_to_each_dsl_with_counts_only_once_a_week(
        database: Any, smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    from collector.routing import route_all, send_digests

    inbox, port = smtp
    settings = _settings(tmp_path, port)
    a = _target(database, "email", "dsl@school.example", "DSL", digest=True)
    _target(database, "email", "deputy@school.example", "Deputy DSL", digest=True)
    _target(database, "email", "tech@school.example", "Technician")  # no digest
    _rule(database, [a], min_severity=5)
    device = _device(database, "year7")
    _event(database, device, "suicide", 5)
    _event(database, device, "bullying", 2)
    route_all(database, settings)
    inbox.messages.clear()

    assert send_digests(database, settings) == 2
    assert send_digests(database, settings) == 0  # once a week
    by_rcpt = {r[0]: m for r, m in inbox.messages}
    assert set(by_rcpt) == {"dsl@school.example", "deputy@school.example"}
    text = by_rcpt["dsl@school.example"].get_payload(decode=True).decode()
    for line in ("- 2 event(s) received in the last seven days", "- 1 of them at severity 4 or 5",
                 "- 1 routed to you", "- 2 event(s) waiting for triage", "- 0 open incident(s)"):
        assert line in text
    assert "- 0 routed to you" in by_rcpt["deputy@school.example"].get_payload(
        decode=True).decode()
    for leak in ("suicide", "bullying", "year7", "Y7-TROLLEY"):
        assert leak not in text
    assert send_digests(database, settings, now=utcnow() + timedelta(days=7)) == 2
    assert len(_actions(database, "alert.routing_digest")) == 4


def test_check_target_refuses_what_cannot_be_a_target() -> None:
    from collector.routing import RouteError, check_target, mask

    assert check_target("email", " dsl@school.example ") == "dsl@school.example"
    hook = "https://outlook.office.com/webhook/abc/IncomingWebhook/def/ghij"
    assert check_target("webhook", hook) == hook
    assert mask(RouteTarget(kind="webhook", label="t", address=hook, created_by="x")) == \
        "https://outlook.office.com/…ghij"
    for kind, address, says in (
            ("email", "not an address", "not an e-mail address"),
            ("webhook", "http://hooks.slack.com/services/x", "must start with https://"),
            ("webhook", "ftp://example.com/x", "not a webhook URL"),
            ("webhook", "https://user:pw@example.com/x", "user name or password"),
            ("sms", "07700900000", "one of: email, webhook")):
        with pytest.raises(RouteError, match=says) as refused:
            check_target(kind, address)
        assert "\n" not in str(refused.value)
