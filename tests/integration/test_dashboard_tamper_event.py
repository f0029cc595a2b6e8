"""Issue 15: a supervisor's tamper report on the dashboard and in an evidence export.

The report is sealed like any capture but carries no picture (empty body, ``media_type``
null) and says what happened in its header's ``detail``, which a hostile desktop writes. Posted
over TLS to a real collector as the supervisor posts it (agent.supervisor.tamper.seal_tamper),
then read by the head in her signed-in, unlocked session.
"""

from __future__ import annotations

import base64
import html
import io
import json
import zipfile
from typing import Any

import pytest

from tests.hardening.clients import sign_in

pytestmark = [pytest.mark.slow]

HOSTILE = '<img src=x onerror="alert(1)">'


def _post_tamper(server: Any) -> str:
    from agent.supervisor.tamper import Tamper, seal_tamper

    device = server.enrol(hostname="IT-SUITE-03")
    report = Tamper("tamper.agent_killed", user="pupil.y8",
                    detail={"signal": "SIGKILL", "pid": 4242, "note": HOSTILE})
    event_id, sealed = seal_tamper(report, device.id, server.public_keys(), count=3)
    answer = server.client.post("/api/v1/events", headers=device.auth, json={"events": [
        {"id": event_id, "envelope": base64.b64encode(sealed).decode()}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == [event_id]
    return event_id


def test_a_tamper_report_shows_what_happened_and_no_broken_screenshot(
        collector_server: Any) -> None:
    server = collector_server
    event_id = _post_tamper(server)
    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    head.unlock()

    page = head.http.get(f"/events/{event_id}")
    assert page.status_code == 200
    assert 'id="no-screenshot"' in page.text
    assert "report that Vigil was interfered with" in page.text
    assert f"/events/{event_id}/screenshot" not in page.text
    assert HOSTILE not in page.text  # the desktop's text is escaped, never markup
    details = html.unescape(page.text.split('id="report-details"', 1)[1].split("</dd>", 1)[0])
    for shown in ("signal:</span> SIGKILL", "pid:</span> 4242", f"note:</span> {HOSTILE}",
                  "times seen:</span> 3"):
        assert shown in details, details
    assert "pupil.y8" in page.text

    queue = head.http.get("/triage")
    assert f'data-shot="/events/{event_id}/screenshot"' not in queue.text
    assert "No screenshot" in queue.text
    shot = head.http.get(f"/events/{event_id}/screenshot", headers={"Accept": "application/json"})
    assert shot.status_code == 404
    assert shot.json()["detail"] == (f"Event {event_id} has no screenshot: the desktop sealed "
                                     "none with it.")

    made = head.post_form("/incidents", {"title": "Agent stopped", "event": event_id})
    assert made.status_code == 303, made.text[:300]
    export = head.post_form(made.headers["location"] + "/export")
    assert export.status_code == 200, export.text[:300]
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        names = archive.namelist()
        summary = json.loads(archive.read(next(n for n in names if n.endswith(".json")
                                               and "summary" in n)))
    assert not any(n.startswith("screenshots/") for n in names), names
    (event,) = summary["events"]
    assert (event["screenshot"], event["screenshot_sha256"]) == (None, None)
    assert event["header"]["detail"]["signal"] == "SIGKILL"
    head.close()
