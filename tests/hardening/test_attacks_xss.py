"""XSS in every field that comes from a desktop, in every dashboard page that shows it.

A hostile desktop (or a pupil who names a window ``<script>...``) controls the sealed header's
user, host, title, app, context and matched text, detector and sentences, at enrolment the
device's hostname, OS and agent version, and in its heartbeat the detection note. Each field gets its own payload; each page is loaded in the real headless
Chromium (a dialog must never open, the payload must be shown as text) and its HTML is checked
(the payload never appears unescaped). The evidence export's HTML summary is opened too.
"""

from __future__ import annotations

import base64
import io
import uuid
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import make_accounts, png, sign_in, unlock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAYLOADS = {
    "title": "<img src=x onerror=alert('title')>",
    "app": "<script>alert('app')</script>",
    "user": "\"><svg onload=alert('user')>",
    "host": "<iframe src=javascript:alert('host')>",
    "context": "</td><script>alert('context')</script> i want to kill myself",
    "hostname": "<img src=x onerror=alert('hostname')>",
    "os": "<b onmouseover=alert('os')>",
    "agent_version": "<svg onload=alert(9)>",
    "detector": "<b onmouseover=alert(7)>",  # a detector name is cut to 32 characters
    "sentence": "<script>alert('sentence')</script> nobody would notice",
    "detection_note": "<iframe src=javascript:alert('note')>",
}
SHOWN_ON = {  # page -> the fields it shows (each must appear as literal text)
    "/triage": ("user", "title", "context"),
    "/events/{id}": ("user", "title", "app", "context", "detector", "sentence"),
    "/review": (),
    "/incidents/{incident}": (),
    "/devices": ("hostname", "os", "agent_version", "detection_note"),
    "/audit": (),
}


def _seed_hostile_event(server: Any) -> tuple[str, str]:
    """Enrol a device with hostile enrolment fields and post one hostile event; (device, event)."""
    from core.envelope import Metadata, seal

    answer = server.client.post("/api/v1/enrol", json={
        "token": server.make_token(), "hostname": PAYLOADS["hostname"], "os": PAYLOADS["os"],
        "agent_version": PAYLOADS["agent_version"]})
    assert answer.status_code == 201, answer.text
    device_id, secret = answer.json()["device_id"], answer.json()["secret"]
    event_id = str(uuid.uuid4())
    context = PAYLOADS["context"]
    start = context.index("kill myself")
    meta = Metadata(event_id=event_id, device_id=device_id, time=datetime.now(UTC),
                    category="suicide", severity=5, rule="suicide.kill_myself", source="typed")
    header = {"user": PAYLOADS["user"], "host": PAYLOADS["host"], "title": PAYLOADS["title"],
              "app": PAYLOADS["app"], "context": context,
              "match": {"start": start, "end": start + 11, "text": "kill myself"},
              "source": "typed", "count": 1, "media_type": "image/png",
              "detector": PAYLOADS["detector"], "score": 0.5,
              "sentences": {"before": PAYLOADS["sentence"], "trigger": PAYLOADS["sentence"],
                            "after": PAYLOADS["sentence"]}}
    data = seal(meta, header, png("hostile"), server.public_keys())
    answer = server.client.post(
        "/api/v1/events", json={"events": [{"id": event_id,
                                            "envelope": base64.b64encode(data).decode()}]},
        headers={"Authorization": f"Bearer {device_id}.{secret}"})
    assert answer.status_code == 200, answer.text
    answer = server.client.post(
        "/api/v1/heartbeat", json={"agent_version": PAYLOADS["agent_version"],
                                   "detection": "lists (model unavailable)",
                                   "detection_note": PAYLOADS["detection_note"]},
        headers={"Authorization": f"Bearer {device_id}.{secret}"})
    assert answer.status_code == 200, answer.text
    return device_id, event_id


def _assert_escaped(markup: str, where: str) -> None:
    for field_name, payload in PAYLOADS.items():
        assert payload not in markup, f"{field_name} unescaped in {where}"


def _assert_no_live_markup(markup: str, where: str) -> None:
    """No element the payloads would create exists: escaping turned every '<' into '&lt;'."""
    _assert_escaped(markup, where)
    for tag in ("<img src=x", "<script>alert", "<svg onload", "<iframe src=javascript",
                "<b onmouseover"):
        assert tag not in markup, f"{tag!r} live in {where}"


def test_desktop_text_is_escaped_on_every_page_and_no_script_runs(
        collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    _, event_id = _seed_hostile_event(server)

    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, who["technician"])
    unlock(page, server, "technician")

    # Escalate and open an incident, so the review and incident pages show the event too.
    page.goto(f"{server.url}/events/{event_id}")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    api = page.context.request
    graded = api.post(f"{server.url}/events/{event_id}/grade",
                      form={"grade": "escalated", "csrf": csrf}, max_redirects=0)
    assert graded.status == 303
    made = api.post(f"{server.url}/incidents", max_redirects=0,
                    form={"title": PAYLOADS["title"], "event": event_id, "csrf": csrf})
    assert made.status == 303
    incident = made.headers["location"].rstrip("/").split("/")[-1]

    for template, fields in SHOWN_ON.items():
        path = template.replace("{id}", event_id).replace("{incident}", incident)
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        _assert_no_live_markup(page.content(), path)
        _assert_no_live_markup(response.text(), path + " (as served)")
        text = page.inner_text("body")
        for field_name in fields:
            assert PAYLOADS[field_name] in " ".join(text.split()) or PAYLOADS[field_name] in text, (
                f"{field_name} not shown literally on {path}")
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0, path
    # The screenshot viewer and a hover over every cell must not run anything either.
    page.goto(f"{server.url}/events/{event_id}")
    for cell in page.locator("td, dd").all()[:50]:
        cell.hover()
    assert dialogs == []

    # The evidence export's HTML summary: escaped too, and inert when a browser opens it.
    exported = api.post(f"{server.url}/incidents/{incident}/export", form={"csrf": csrf})
    assert exported.status == 200
    archive = zipfile.ZipFile(io.BytesIO(exported.body()))
    summaries = [n for n in archive.namelist() if n.endswith(".html")]
    assert summaries, archive.namelist()
    for name in summaries:
        markup = archive.read(name).decode()
        _assert_no_live_markup(markup, name)
        viewer = new_context(java_script_enabled=True).new_page()
        viewer.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        viewer.set_content(markup)
        assert PAYLOADS["title"] in viewer.inner_text("body")
    assert dialogs == []


def test_a_screenshot_cannot_be_served_as_svg_or_html(collector_server: Any) -> None:
    """The media type is in the sealed header, so a hostile desktop chooses it: only raster image
    types may reach the browser as such; anything else is a download, never a document."""
    from core.envelope import Metadata, seal
    from tests.hardening.clients import sign_in as sign_in_http

    server = collector_server
    who = make_accounts(server)
    device = server.enrol()
    bodies = {
        "image/svg+xml": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "text/html": b"<script>alert(1)</script>",
        "image/png; text/html": b"<script>alert(1)</script>",
    }
    ids = {}
    for media_type, body in bodies.items():
        event_id = str(uuid.uuid4())
        meta = Metadata(event_id=event_id, device_id=device.id, time=datetime.now(UTC),
                        category="suicide", severity=5, rule="suicide.kill_myself",
                        source="typed")
        header = {"user": "u", "host": "h", "title": "t", "app": "a", "context": "kill myself",
                  "match": {"start": 0, "end": 11, "text": "kill myself"}, "source": "typed",
                  "count": 1, "media_type": media_type}
        data = seal(meta, header, body, server.public_keys())
        answer = server.client.post("/api/v1/events", headers=device.auth, json={
            "events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]})
        assert answer.status_code == 200
        ids[media_type] = event_id
    tech = sign_in_http(server, "technician", *who["technician"])
    tech.unlock()
    for media_type, event_id in ids.items():
        shot = tech.http.get(f"/events/{event_id}/screenshot")
        assert shot.status_code == 200
        served = shot.headers["content-type"].split(";")[0].strip().lower()
        assert served in {"image/png", "image/webp", "image/jpeg", "application/octet-stream"}, (
            media_type, served)
        assert shot.headers["x-content-type-options"] == "nosniff"
    tech.close()
