"""Issue 18: an incident handed off to CPOMS (CSV) and MyConcern (JSON) by the head, in her
signed-in, unlocked session on a real collector; the hand-off is in the audit log with the
file's SHA-256, names pupils from the roster, and carries the evidence zip's hash."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest
from sqlmodel import col, select

from tests.hardening.clients import sign_in

pytestmark = [pytest.mark.slow]

FORMULA = "=HYPERLINK(\"http://evil.example\",\"x\")"


def _header(user: str) -> dict[str, Any]:
    return {"user": user, "host": "IT-SUITE-03", "title": "Notepad", "app": "notepad",
            "context": "i want to kill myself", "media_type": "image/png",
            "match": {"start": 10, "end": 21, "text": "kill myself"}, "source": "typed",
            "count": 1}


def _seed(server: Any) -> list[str]:
    from collector.store.models import RosterPupil

    device = server.enrol(hostname="IT-SUITE-03")
    ids = []
    for user in ("SCHOOL\\AExample", FORMULA):
        answer = server.post_events(device, 1, header=_header(user))
        assert answer.status_code == 200, answer.text
        ids += answer.json()["stored"]
    db = server.database()
    try:
        db.write(lambda s: s.add(RosterPupil(
            username="aexample", upn="A123456789012", admission_no="001234", given_name="Ann",
            family_name="Example", year="7", form="7B", source="test")))
    finally:
        db.close()
    return ids


def test_an_incident_hands_off_as_cpoms_csv_and_myconcern_json(collector_server: Any) -> None:
    server = collector_server
    ids = _seed(server)
    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    made = head.post_form("/incidents", {
        "title": "Disclosure in IT suite", "event": ids, "types": ["Self-harm or suicide"],
        "informed": ["Designated Safeguarding Lead", "Parents or carers"],
        "reported_by": "Mr Tech", "involved": "Ann Example (Y7)",
        "description": "-1+1 typed a disclosure", "action": "Spoke to Ann; DSL told",
        "outcome": "Referred to early help"})
    assert made.status_code == 303, made.text[:300]
    incident = made.headers["location"]
    locked = head.post_form(incident + "/handoff", {"format": "cpoms"},
                            headers={"Accept": "application/json"})
    assert locked.status_code == 403 and "unlock" in locked.json()["detail"].lower()
    head.unlock()
    page = head.http.get(incident)
    assert 'id="handoff"' in page.text
    zip_answer = head.post_form(incident + "/export")
    assert zip_answer.status_code == 200
    zip_sha = hashlib.sha256(zip_answer.content).hexdigest()

    answer = head.post_form(incident + "/handoff", {"format": "cpoms"})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["cache-control"] == "no-store, private"
    csv_sha = hashlib.sha256(answer.content).hexdigest()
    assert answer.headers["x-handoff-sha256"] == csv_sha
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == 2  # one per pupil: Ann from the roster, and an unknown login
    ann = next(r for r in rows if r["student_surname"] == "Example")
    assert (ann["student_forename"], ann["upn"], ann["year_group"], ann["form"],
            ann["admission_number"]) == ("Ann", "A123456789012", "7", "7B", "001234")
    assert ann["categories"] == "Self-harm or suicide"
    assert ann["informed"] == "Designated Safeguarding Lead; Parents or carers"
    assert ann["description"] == "'-1+1 typed a disclosure"  # defused, still readable
    assert (ann["reported_by"], ann["action_taken"], ann["outcome"]) == (
        "Mr Tech", "Spoke to Ann; DSL told", "Referred to early help")
    assert ann["evidence_zip_sha256"] == zip_sha
    assert ann["location"] == "Inside school: a school-managed device (IT-SUITE-03)"
    assert ann["online_services"] == "notepad - Notepad"
    for event_id in ids:
        assert event_id in ann["capture_sha256"]
    unknown = next(r for r in rows if r is not ann)
    assert unknown["login_name"] == "'" + FORMULA  # a desktop's text never becomes a formula
    assert unknown["student_surname"] == ""

    answer = head.post_form(incident + "/handoff", {"format": "myconcern"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    doc = json.loads(answer.content)
    assert doc["schema"] == "vigil-handoff/1" and doc["format"] == "myconcern"
    assert doc["concern"]["reference"] == f"VIGIL-{incident.rsplit('/', 1)[1]}"
    assert doc["concern"]["action_taken"] == "Spoke to Ann; DSL told"
    assert [s["on_roster"] for s in doc["subjects"]] == [True, False]
    assert doc["evidence"]["zips"][0]["sha256"] == zip_sha
    assert all(c["screenshot_sha256"] for c in doc["evidence"]["captures"])
    assert doc["concern"]["online_services"] == ["notepad - Notepad"]
    json_sha = hashlib.sha256(answer.content).hexdigest()

    bad = head.post_form(incident + "/handoff", {"format": "xlsx"},
                         headers={"Accept": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Hand-off format must be one of: cpoms, myconcern."
    head.close()

    from collector.store.models import AuditEntry

    db = server.database()
    try:
        with db.session() as s:
            entries = s.exec(select(AuditEntry).where(AuditEntry.action == "incident.handoff")
                             .order_by(col(AuditEntry.seq))).all()
    finally:
        db.close()
    assert [(e.actor, e.target, e.details["format"], e.details["sha256"]) for e in entries] == [
        (server.keys.head.name, incident.replace("/incidents/", "incident:"), "cpoms", csv_sha),
        (server.keys.head.name, incident.replace("/incidents/", "incident:"), "myconcern",
         json_sha)]
    assert entries[0].details["evidence_zips"] == [zip_sha]
    assert entries[0].details["pupils"] == 1 and entries[0].details["unknown_logins"] == 1
    for e in entries:  # the audit log says what was handed off, never what it says
        assert "Ann" not in json.dumps(e.details) and "Example" not in json.dumps(e.details)


def test_defuse_leaves_text_and_defuses_formulas() -> None:
    from dashboard.handoff import defuse

    assert defuse("Ann Example") == "Ann Example"
    assert defuse(None) == "" and defuse(5) == "5"
    for risky in ("=1+1", "+44 7700", "-2", "@SUM(A1)", "\tx", "\r=1"):
        assert defuse(risky) == "'" + risky
