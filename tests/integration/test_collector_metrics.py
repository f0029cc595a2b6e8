"""Issue 19: GET /metrics on a real collector over TLS: Prometheus text for the admin network
or a bearer token, refused in one line to anyone else, with nothing a desktop wrote in it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow]

TOKEN = "scrape-token-for-the-test-0123456789"


def _value(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus text, e.g. _value(t, "vigil_devices")."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    raise AssertionError(f"{wanted} not in the metrics:\n{text[:2000]}")


def test_metrics_count_what_passed_and_what_is_stored_for_the_admin_network_only(
        collector_factory: Any) -> None:
    server = collector_factory(metrics_token=TOKEN)
    device = server.enrol(hostname="IT-SUITE-09")
    assert server.post_events(device, 3, severity=5).status_code == 200
    beat = server.client.post("/api/v1/heartbeat", headers=device.auth, json={
        "agent_version": "test", "spool_depth": 4, "user_signed_in": True})
    assert beat.status_code == 200

    # From loopback (the default admin network).
    answer = server.client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert _value(text, "vigil_events_stored", 'category="suicide"') == 3
    assert _value(text, "vigil_devices") == 1
    assert _value(text, "vigil_device_spool_events") == 4
    assert _value(text, "vigil_devices_silent") == 0
    assert _value(text, "vigil_events_quarantined") == 0
    assert _value(text, "vigil_keys_unapproved") == 0
    assert _value(text, "vigil_agent_requests_total",
                  'route="/api/v1/events",status="200"') == 1
    assert _value(text, "vigil_agent_requests_total",
                  'route="/api/v1/heartbeat",status="200"') == 1
    assert _value(text, "vigil_agent_request_seconds_count", 'route="/api/v1/events"') == 1
    for private in (device.id, "IT-SUITE-09", "pupil"):
        assert private not in text

    # A made-up path is never a label.
    server.client.get("/api/v1/nothing-here")
    assert "nothing-here" not in server.client.get("/metrics").text


def test_metrics_from_outside_the_admin_network_need_the_token(collector_factory: Any) -> None:
    server = collector_factory(metrics_token=TOKEN, metrics_networks=("10.99.0.0/16",))
    refused = server.client.get("/metrics")
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "forbidden",
        "detail": "metrics are for the admin network: add its range to metrics_networks, "
                  "or send the metrics_token as a bearer token"}
    wrong = server.client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    with httpx.Client(base_url=server.url, verify=server.ssl_context()) as client:
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "vigil_devices " in ok.text
