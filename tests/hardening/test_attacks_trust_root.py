"""Issue 14: the keyholder set comes only from what keyholders signed.

The attacker is whoever runs the server: shell and database, no keyholder's password. They add a
key of their own to the keyholder table, either with one SQL INSERT against the real database
(SQLite, and the real PostgreSQL) or with the admin CLI (`vigil collector keyholder import
--pub`, run as a separate process the way an administrator types it). Against a running
collector over TLS:

(a) the head's next routine `policy publish` does not sign the rogue key in. Before commit
    7e4718c the policy took its keyholders from the table, so the head signed the rogue key in
    without being shown it, and agents then sealed every capture to it.
(b) an incident record sealed after the insertion cannot be opened with the rogue key. Before,
    incident records were sealed to every active row of the table, the rogue key included.
(c) the keyset fingerprint agents pin at enrolment is unchanged. Before, it was computed from
    the table, so new agents pinned a set with the rogue key in it.
(d) an event sealed to the keyholders and the rogue key is quarantined at ingest. Before, once
    (a) had signed the rogue key in, ingest accepted it as a signed set.
(e) `keyholder.unapproved` is recorded in the audit log, once, and the security alert e-mail is
    sent without details. Before, nothing noticed the key at all.
(f) changing the set is its own signed act: approving with a stale change code is refused, a
    waiting key cannot sign its own approval, and after a reader approves, the new key is in the
    signed policy and new incident records open with it. Before, there was no approval at all
    (collector.policy_builder.approve_keyset did not exist).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.collector import seal_event
from tests.fixtures.keys import make_keyholder
from tests.fixtures.mail import Inbox  # the smtp fixture: tests/fixtures/mail.py
from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _cli(server: Any, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args, "--data",
                           str(server.data_dir)], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def _insert_by_sql(server: Any, rogue: Any) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO keyholder (name, role, fingerprint, public_key, "
                              "created_at) VALUES (:name, 'head', :fpr, :pub, :at)"),
                         {"name": rogue.name, "fpr": rogue.fingerprint,
                          "pub": rogue.public.to_bytes(), "at": "2026-01-05 09:00:00"})
    finally:
        engine.dispose()


def _insert_with_cli(server: Any, rogue: Any) -> None:
    done = _cli(server, "keyholder", "import", "--pub", str(rogue.pub_path))
    assert done.returncode == 0, done.stderr


INSERT = {"sql": _insert_by_sql, "cli": _insert_with_cli}


def _with_session(server: Any, job: Callable[[Any], Any]) -> Any:
    db = server.database()
    try:
        with db.session() as session:
            return job(session)
    finally:
        db.close()


def _latest_keyholders(server: Any) -> set[str]:
    from collector.policy_store import latest
    from core.policy import Policy, SignedPolicy

    def read(session: Any) -> set[str]:
        record = latest(session)
        policy = Policy.from_body(SignedPolicy.from_bytes(bytes(record.signed)).body)
        return {k.fingerprint for k in policy.keyholders}

    return set(_with_session(server, read))


def _publish(server: Any, who: Any) -> Any:
    from collector.publishing import publish_as

    db = server.database()
    try:
        return publish_as(db, server.settings(), who.name, who.password, actor=who.name)
    finally:
        db.close()


def _seal_incident_record(server: Any, incident_id: int) -> bytes:
    """What the dashboard stores when a keyholder saves an incident (dashboard.incident_record)."""
    from collector.store.models import Incident
    from dashboard.incident_record import IncidentRecord, seal_record

    incident = Incident(id=incident_id, title="Online safety incident", created_by="test")
    record = IncidentRecord(description="a pupil's name and what happened")
    return bytes(_with_session(server, lambda s: seal_record(s, incident, record)))


def _audit(server: Any, action: str) -> list[Any]:
    from sqlmodel import col, select

    from collector.store.models import AuditEntry

    return list(_with_session(server, lambda s: list(s.exec(
        select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.seq))
    ).all())))


@pytest.fixture(params=["sql", "cli"])
def attacked(request: pytest.FixtureRequest, collector_factory: Callable[..., Any], db_url: str,
             smtp: tuple[Inbox, int], tmp_path: Path) -> tuple[Any, Any, str]:
    """A running collector (alerts to a real SMTP server) whose keyholder table the attacker
    has just added a key to: (server, rogue keyholder, the pin agents had before)."""
    from collector.settings import SmtpSettings

    _, port = smtp
    server = collector_factory(database_url=db_url, smtp=SmtpSettings(
        host="127.0.0.1", port=port, sender="vigil@school.example"),
        alert_recipients=("dsl@school.example",))
    rogue = make_keyholder(tmp_path, "Mr Rogue", "head")
    pin = server.keyset_fingerprint
    INSERT[request.param](server, rogue)
    return server, rogue, pin


def test_a_routine_publish_does_not_sign_the_rogue_key_in(attacked: tuple[Any, Any, str]
                                                           ) -> None:
    server, _, _ = attacked
    record = _publish(server, server.keys.head)
    assert record.serial == 2
    assert _latest_keyholders(server) == {k.fingerprint for k in server.keys.all}


def test_an_incident_record_sealed_after_cannot_be_opened_by_the_rogue_key(
        attacked: tuple[Any, Any, str]) -> None:
    from core import envelope
    from core.errors import VigilError

    server, rogue, _ = attacked
    sealed = _seal_incident_record(server, 1)
    with pytest.raises(VigilError):
        envelope.open(sealed, rogue.key)
    assert envelope.open(sealed, server.keys.head.key).header["description"].startswith("a pupil")


def test_the_enrolment_pin_is_unchanged(attacked: tuple[Any, Any, str]) -> None:
    server, _, pin = attacked
    answer = server.client.post("/api/v1/enrol", json={
        "token": server.make_token(), "hostname": "pc-after", "os": "linux",
        "agent_version": "test"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["keyset_fingerprint"] == pin
    out = _cli(server, "enrol-token")
    assert out.returncode == 0 and f"--trust {pin} " in out.stdout, out.stderr


def test_an_event_sealed_to_the_rogue_key_too_is_quarantined(attacked: tuple[Any, Any, str]
                                                             ) -> None:
    server, rogue, _ = attacked
    _publish(server, server.keys.head)  # the routine publish that used to sign the key in
    device = server.enrol("pc-attacked")
    event_id, data = seal_event(device.id, [*server.keys.publics, rogue.public])
    refused = server.client.post(
        "/api/v1/events", json={"events": [{"id": event_id,
                                            "envelope": base64.b64encode(data).decode()}]},
        headers=device.auth)
    assert refused.status_code == 422 and "wrong-recipients" in refused.text, refused.text
    assert event_id in {e.target for e in _audit(server, "event.quarantined")}


def test_the_rogue_key_is_recorded_once_and_alerted(attacked: tuple[Any, Any, str],
                                                     smtp: tuple[Inbox, int]) -> None:
    server, rogue, _ = attacked
    inbox, _ = smtp
    wait_until(lambda: bool(_audit(server, "keyholder.unapproved")), 60, interval=0.5,
               what="keyholder.unapproved in the audit log")
    (flagged,) = _audit(server, "keyholder.unapproved")
    assert flagged.target == rogue.fingerprint and flagged.details["name"] == rogue.name
    wait_until(lambda: any(flagged.seq in e.details["entries"]
                           for e in _audit(server, "alert.security_sent")),
               60, interval=0.5, what="the security alert to cover the unapproved key")
    mails = [m for _, m in inbox.messages if "security check" in str(m["Subject"])]
    assert mails
    for mail in mails:  # no details in the mail, like the other security alerts
        text = mail.get_payload(decode=True).decode()
        assert rogue.fingerprint not in text and rogue.name not in text
    time.sleep(2.5)  # the check runs every second here: still once per fingerprint
    assert len(_audit(server, "keyholder.unapproved")) == 1


def test_a_change_of_readers_is_signed_only_as_shown_and_only_by_a_reader(
        collector_factory: Callable[..., Any], db_url: str, tmp_path: Path) -> None:
    from collector.errors import CollectorError, Conflict
    from collector.policy_builder import approve_keyset
    from collector.publishing import approve_as
    from collector.trust_root import proposed_change
    from core import envelope

    server = collector_factory(database_url=db_url)
    keys = server.keys
    newcomer = make_keyholder(tmp_path, "Ms New Head", "head")
    other = make_keyholder(tmp_path, "Mr Other", "technician")
    done = _cli(server, "keyholder", "add", "--key", str(newcomer.path))
    assert done.returncode == 0, done.stderr
    shown = _with_session(server, proposed_change)
    assert [m.fingerprint for m in shown.added] == [newcomer.fingerprint]

    # The table moves after the signer was shown the change: the old code is refused.
    _insert_by_sql(server, other)
    db = server.database()
    try:
        with pytest.raises(Conflict, match="not the ones you were shown"):
            db.write(lambda s: approve_keyset(s, server.settings(), keys.head.key, "head",
                                              shown.digest))
        now = _with_session(server, proposed_change)
        assert now.digest != shown.digest
        # The waiting key cannot sign its own approval.
        with pytest.raises(CollectorError, match="cannot approve itself"):
            approve_as(db, server.settings(), newcomer.name, newcomer.password, now.digest,
                       actor=newcomer.name)
        assert _latest_keyholders(server) == {k.fingerprint for k in keys.all}
        # The head rejects the stranger, then approves the newcomer, as shown.
        assert _cli(server, "keyholder", "reject", other.name).returncode == 0
        change = _with_session(server, proposed_change)
        assert [m.fingerprint for m in change.added] == [newcomer.fingerprint]
        record = approve_as(db, server.settings(), keys.head.name, keys.head.password,
                            change.digest, actor=keys.head.name)
    finally:
        db.close()
    assert newcomer.fingerprint in _latest_keyholders(server)
    assert other.fingerprint not in _latest_keyholders(server)
    assert record.serial == 2
    sealed = _seal_incident_record(server, 7)
    assert envelope.open(sealed, newcomer.key).meta.event_id == "incident-7"
    # And agents seal to the new set: ingest accepts it.
    device = server.enrol("pc-new-set")
    event_id, data = seal_event(device.id, [*keys.publics, newcomer.public])
    stored = server.client.post(
        "/api/v1/events", json={"events": [{"id": event_id,
                                            "envelope": base64.b64encode(data).decode()}]},
        headers=device.auth)
    assert stored.status_code in (200, 201), stored.text
