"""Issue 18, routing by year group: a roster imported, the cohort map fetched by a real agent
sync against a real collector on loopback TLS (SQLite and PostgreSQL), an event of a Year 7 pupil's login routed by a
``year=7`` rule to a real SMTP server (aiosmtpd) on loopback, and a Year 9 pupil's event not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from collector.settings import SmtpSettings
from tests.fixtures.mail import Inbox
from tests.fixtures.x11 import wait_until
from tests.hardening.clients import sign_in

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ROSTER = """\
Adno,UPN,Legal Surname,Forename,Year,Reg Group,SEN Status,In Care,Username
001234,A123456789012,Example,Ann,Year 7,7B,K,Y,SCHOOL\\Ann.Y7
001236,,Testcase,Cara,Year 9,9G,N,N,cara.y9
"""


def _import_roster(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "vigil", "collector", "roster", "import",
                           "--data", str(server.data_dir), str(path), "--apply"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def _agent(server: Any, tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    """A real agent's sync (agent.sync.Sync on agent.uplink.Uplink), enrolled over TLS with the
    paste-ready pins; (enrolment, sync, cohorts, spool)."""
    from agent.cohorts import CohortState
    from agent.config import ConfigDir
    from agent.flood import FloodControl
    from agent.policy_state import PolicyState
    from agent.settings import Settings
    from agent.spool import Spool
    from agent.sync import Sync
    from agent.uplink import enrol

    enrolment = enrol(server.url, server.make_token(group="suite"), server.keyset_fingerprint,
                      None, (server.cert_fingerprint,), timeout=10)
    config = ConfigDir(tmp_path / "agent-config")
    config.save_enrolment(enrolment)
    settings = Settings(config_dir=config.path, spool_dir=tmp_path / "agent-spool",
                        heartbeat_s=1.0, http_timeout_s=10.0)
    policy, cohorts = PolicyState(config), CohortState(config)
    spool = Spool(settings.spool_dir)
    flood = FloodControl(600.0, settings.spool_dir / "repeats.json")
    sync = Sync(settings, config, enrolment, policy, spool, flood,
                lambda: {"user_signed_in": True, "spool_depth": spool.depth}, cohorts=cohorts)
    return enrolment, sync, cohorts, spool


def _seal(device_id: str, cohorts: Any, policy_keys: list[Any], login: str) -> tuple[str, bytes]:
    """An event as the monitor makes it (agent.monitor.Monitor._fire): the login's tag from
    the cohort map in the clear metadata, the login itself in the sealed header."""
    import uuid
    from datetime import UTC, datetime

    from core import envelope

    year, form = cohorts.lookup(login)
    meta = envelope.Metadata(event_id=str(uuid.uuid4()), device_id=device_id,
                             time=datetime.now(UTC), category="suicide", severity=5,
                             rule="suicide.kill_myself", source="typed", year=year, form=form)
    return meta.event_id, envelope.seal(meta, {"user": login, "title": "Notepad"}, b"png",
                                        policy_keys)


def test_a_year_7_pupils_event_is_routed_by_a_year_rule_and_a_year_9_pupils_is_not(
        collector_factory: Any, smtp: tuple[Inbox, int], tmp_path: Path, db_url: str) -> None:
    from collector.store.models import Event, RouteDelivery

    inbox, port = smtp
    server = collector_factory(database_url=db_url, smtp=SmtpSettings(
        host="127.0.0.1", port=port, sender="vigil@school.example"))
    _import_roster(server, tmp_path)
    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    assert head.post_form("/routing/targets", {"kind": "email", "label": "Year 7 DSL",
                                               "address": "y7dsl@school.example"}
                          ).status_code == 303
    page = head.http.get("/routing")
    assert '<option value="7">' in page.text and '<option value="9">' in page.text
    bad = head.post_form("/routing/rules", {"name": "x", "min_severity": "5", "year": "<7>",
                                            "targets": ["1"]},
                         headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "Year" in bad.json()["detail"]
    assert head.post_form("/routing/rules", {"name": "Severity 5, Year 7", "min_severity": "5",
                                             "year": "7", "targets": ["1"]}).status_code == 303
    assert "<td>7</td>" in head.http.get("/routing").text

    enrolment, sync, cohorts, spool = _agent(server, tmp_path)
    sync.start()
    try:
        wait_until(lambda: len(cohorts) == 2, timeout=30, interval=0.2,
                   what="the agent's cohort map")
        # The map reached the desktop: year and form of hashed logins, nothing else.
        cached = (tmp_path / "agent-config" / "cohorts.json").read_text()
        for secret in ("Ann", "Example", "A123456789012", "SEN", "LAC", "ann.y7", "cara.y9"):
            assert secret not in cached
        assert cohorts.lookup("SCHOOL\\ann.y7") == ("7", "7B")
        etag = cohorts.etag
        again = server.client.get("/api/v1/cohorts", headers={
            "Authorization": f"Bearer {enrolment.bearer}", "If-None-Match": etag})
        assert again.status_code == 304  # an unchanged map costs nothing
        beat = server.client.post("/api/v1/heartbeat", json={}, headers={
            "Authorization": f"Bearer {enrolment.bearer}"})
        assert beat.json()["cohort_etag"] == etag.strip('"')  # what the agent compares with
        assert server.client.get("/api/v1/cohorts").status_code == 401  # devices only

        keys = server.public_keys()
        device_id = enrolment.device_id
        y7, y9 = (_seal(device_id, cohorts, keys, login)
                  for login in ("SCHOOL\\Ann.Y7", "cara.y9@school.example"))
        for event_id, data in (y9, y7):
            assert spool.put(event_id, 5, data)
        sync.wake()
        wait_until(lambda: spool.depth == 0, timeout=30, interval=0.2, what="the upload")
        wait_until(lambda: inbox.messages, timeout=60, interval=0.5, what="the routed e-mail")
    finally:
        sync.stop()

    recipients, mail = inbox.messages[0]
    assert recipients == ["y7dsl@school.example"]
    text = mail.get_payload(decode=True).decode()
    for leak in ("Ann", "7B", "Year 7", "ann.y7", "suicide"):
        assert leak not in text
    triage = head.http.get("/triage")  # before unlock: year and form beside the device
    assert "Year 7, 7B" in triage.text and "Year 9, 9G" in triage.text
    assert "Ann" not in triage.text and "cara.y9" not in triage.text
    event_page = head.http.get(f"/events/{y7[0]}").text
    assert "Year 7, 7B" in event_page
    # The offline `vigil open --expect` line checks the tag too (tojson sorts the keys).
    assert '"form": "7B"' in event_page and '"year": "7"' in event_page
    head.close()

    db = server.database()
    try:
        with db.session() as s:
            tags = {e.id: (e.year, e.form) for e in s.exec(select(Event)).all()}
            delivered = {d.event_id for d in s.exec(select(RouteDelivery)).all()}
            routed = all(e.routed_at is not None for e in s.exec(select(Event)).all())
    finally:
        db.close()
    assert tags == {y7[0]: ("7", "7B"), y9[0]: ("9", "9G")}
    assert delivered == {y7[0]} and routed  # the Year 9 event was matched and not sent
    assert len(inbox.messages) == 1
    privacy = server.client.get("/privacy").text  # pupils and parents are told, plainly
    assert 'id="cohort-tags"' in privacy and "never their name" in privacy
    assert "Traceback" not in server.log()
    assert json.loads(cached)["etag"] == etag
