"""Issue 14: ingest checks whom an event is sealed to, and holds back one noisy device.

Against the real collector over TLS (SQLite and the real PostgreSQL), with the real agent
(`vigil agent run` on Xvfb) where its handling matters:

- an event sealed to a stranger's key (alongside the keyholders, instead of them, or leaving a
  keyholder out) is refused with ``wrong-recipients``: the agent quarantines it (kept on disk,
  counted, reported in its heartbeat), the refusal is in the audit log with the event's clear
  metadata, and the alert job e-mails, without details;
- a policy row a database writer inserts, signed by their own key, does not change whom ingest
  expects;
- one device over its rate gets 429 with Retry-After for severity 1-3 and never for 4-5; the
  agent backs off, keeps the events and delivers every one of them exactly once.

Before issue 14 the collector stored every one of these events and never answered 429.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import audit_entries
from tests.fixtures.collector import seal_event
from tests.fixtures.faults import AgentRun, stored_event_ids
from tests.fixtures.mail import Inbox  # the smtp fixture: tests/fixtures/mail.py
from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.slow]

LOW = {"severity": 2, "category": "drugs", "rule": "drugs.weed"}


def _batch(*sealed: tuple[str, bytes]) -> dict[str, Any]:
    return {"events": [{"id": i, "envelope": base64.b64encode(d).decode()} for i, d in sealed]}


@pytest.mark.x11
def test_an_event_sealed_to_a_stranger_is_quarantined_and_alerted(
        collector_factory: Callable[..., Any], db_url: str, smtp: tuple[Inbox, int],
        agent_factory: Callable[..., AgentRun], stranger_key: Any) -> None:
    from collector.settings import SmtpSettings
    from collector.store.models import Device

    inbox, port = smtp
    server = collector_factory(database_url=db_url, smtp=SmtpSettings(
        host="127.0.0.1", port=port, sender="vigil@school.example"),
        alert_recipients=("dsl@school.example",))
    keys = server.keys
    agent = agent_factory()
    device_id = agent.enrol(server)
    good = agent.prefill(keys.publics, 2)
    bad = (agent.prefill([*keys.publics, stranger_key.public], 1)  # one more reader
           + agent.prefill([stranger_key.public], 1)  # only the stranger
           + agent.prefill([keys.head.public, keys.technician.public], 1, severity=4,
                           body_size=500))  # the recovery key left out
    agent.start()
    wait_until(lambda: not agent.spooled_ids(), 60, interval=0.2, what="the spool to empty")

    assert sorted(stored_event_ids(server)) == sorted(good)
    quarantine = agent.spool_dir / "quarantine"
    assert sorted(p.name.split("-", 2)[2][:-4] for p in quarantine.glob("*.evt")) == sorted(bad)
    reasons = [p.read_text() for p in quarantine.glob("*.reason")]
    assert len(reasons) == 3 and all(r.startswith("422 wrong-recipients: ") for r in reasons)
    assert any("it is also sealed to a key that is in no signed policy: "
               f"{stranger_key.fingerprint}" in r for r in reasons)
    assert any(f"it leaves out {keys.recovery.name} (recovery) " in r for r in reasons)

    entries = audit_entries(server, "event.quarantined")
    assert sorted(e.target for e in entries) == sorted(bad)  # once each, though sent twice
    assert {e.actor for e in entries} == {f"device:{device_id}"}
    by_id = {e.target: e.details for e in entries}
    assert by_id[bad[0]]["severity"] == 5 and by_id[bad[0]]["category"] == "suicide"
    assert stranger_key.fingerprint in by_id[bad[0]]["recipients"]
    assert by_id[bad[2]]["code"] == "wrong-recipients" and by_id[bad[2]]["severity"] == 4

    wait_until(lambda: any("security check" in str(m["Subject"]) for _, m in inbox.messages),
               60, interval=0.5, what="the security alert e-mail")
    (mail,) = [m for _, m in inbox.messages if "security check" in str(m["Subject"])]
    text = mail.get_payload(decode=True).decode()
    assert f"{server.url}/audit" in text
    for secret in ("suicide", device_id, stranger_key.fingerprint, "test-pc", *bad):
        assert secret not in text and secret not in str(mail["Subject"])
    (sent,) = audit_entries(server, "alert.security_sent")
    assert sorted(sent.details["entries"]) == sorted(e.seq for e in entries)

    def reported() -> bool:
        db = server.database()
        try:
            with db.session() as session:
                row = session.get(Device, device_id)
                return row is not None and row.quarantined == 3
        finally:
            db.close()

    wait_until(reported, 30, interval=0.2, what="the heartbeat to report 3 quarantined")


def test_a_policy_row_the_database_writer_signs_does_not_change_whom_ingest_expects(
        collector_server_db: Any, stranger_key: Any) -> None:
    from sqlalchemy import create_engine, text

    from core import policy

    server = collector_server_db
    rogue = policy.sign(policy.Policy(serial=99, keyholders=(stranger_key.public,)),
                        stranger_key.key)
    engine = create_engine(server.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO policyrecord (serial, signed, etag, signer, "
                              "created_at) VALUES (99, :signed, :etag, :signer, :at)"),
                         {"signed": rogue.to_bytes(), "etag": rogue.digest,
                          "signer": stranger_key.fingerprint,
                          "at": "2030-01-01 00:00:00+00:00"})
    finally:
        engine.dispose()
    device = server.enrol()
    sealed = seal_event(device.id, [stranger_key.public])
    answer = server.client.post("/api/v1/events", json=_batch(sealed), headers=device.auth)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "wrong-recipients"
    assert answer.json()["rejected"] == [sealed[0]]
    assert "(serial 1)" in answer.json()["detail"]  # the last policy the keyholders signed
    honest = server.post_events(device, 1)
    assert honest.status_code == 200 and len(honest.json()["stored"]) == 1


def test_a_noisy_device_gets_429_for_severity_1_to_3_but_never_for_4_and_5(
        collector_factory: Callable[..., Any]) -> None:
    server = collector_factory(ingest_burst=3, ingest_rate_per_minute=1)
    device, quiet = server.enrol("noisy-pc"), server.enrol("quiet-pc")
    first = server.post_events(device, 3, **LOW)
    assert first.status_code == 200 and len(first.json()["stored"]) == 3
    assert "deferred" not in first.json()

    over = server.post_events(device, 1, **LOW)
    assert over.status_code == 429, over.text
    assert over.json()["code"] == "slow-down"
    assert 1 <= int(over.headers["Retry-After"]) <= 60

    for severity, category in ((5, "suicide"), (4, "self_harm")):
        answer = server.post_events(device, 5, severity=severity, category=category)
        assert answer.status_code == 200 and len(answer.json()["stored"]) == 5, answer.text

    # A batch with both: the severe one is stored, the other is held back for later.
    high = seal_event(device.id, server.keys.publics, severity=5)
    low = seal_event(device.id, server.keys.publics, severity=1, category="gambling",
                     rule="gambling.gambling_debt")
    mixed = server.client.post("/api/v1/events", json=_batch(high, low), headers=device.auth)
    assert mixed.status_code == 200, mixed.text
    assert mixed.json() == {"stored": [high[0]], "duplicate": [], "deferred": [low[0]]}
    assert low[0] not in stored_event_ids(server)
    # A re-sent event is acknowledged whatever the rate: the agent can always clear its spool.
    again = server.client.post("/api/v1/events", json=_batch(high), headers=device.auth)
    assert again.status_code == 200 and again.json()["duplicate"] == [high[0]]
    # The limit is per device.
    assert server.post_events(quiet, 1, **LOW).status_code == 200


@pytest.mark.x11
def test_an_agent_over_its_rate_backs_off_and_loses_nothing(
        collector_factory: Callable[..., Any], agent_factory: Callable[..., AgentRun]) -> None:
    server = collector_factory(ingest_burst=5, ingest_rate_per_minute=120)
    agent = agent_factory()
    agent.enrol(server)
    low = agent.prefill(server.keys.publics, 20, severity=2, body_size=500)
    high = agent.prefill(server.keys.publics, 5, severity=5, body_size=500)
    agent.start()
    wait_until(lambda: not agent.spooled_ids(), 90, interval=0.2,
               what="the agent to deliver everything at the device's rate")
    stored = stored_event_ids(server)
    assert [i for i, n in Counter(stored).items() if n > 1] == []
    assert sorted(stored) == sorted(low + high)
    assert list((agent.spool_dir / "quarantine").glob("*.evt")) == []
    assert "collector answered 429 slow-down" in agent.log()
    assert agent.status().get("quarantined", 0) == 0
