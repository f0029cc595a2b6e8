"""Dashboard forms with a missing or invalid field get the dashboard's page, over real TLS;
the agent API (and scripts asking for JSON) keep the one-line JSON answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import make_accounts
from tests.hardening.clients import DashClient, sign_in

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def tech(collector_server: Any) -> Any:
    name, password = make_accounts(collector_server)["technician"]
    client = sign_in(collector_server, "technician", name, password)
    yield client
    client.close()


def _page_error(client: DashClient, path: str, data: dict[str, str], referer: str) -> str:
    answer = client.post_form(path, data, headers={**HTML, "Referer": referer})
    assert answer.status_code == 422, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/html")
    assert 'href="/static/vigil.css"' in answer.text or "<nav" in answer.text  # the layout
    assert client.username in answer.text  # signed-in chrome, not a bare page
    assert "Traceback" not in answer.text and '"detail"' not in answer.text
    start = answer.text.index('id="error">') + len('id="error">')
    return answer.text[start:answer.text.index("</p>", start)]


def test_missing_field_answers_with_a_page_and_a_link_back(collector_server: Any,
                                                           tech: DashClient) -> None:
    event = f"/events/{uuid.uuid4()}"
    message = _page_error(tech, f"{event}/grade", {}, f"{collector_server.url}{event}?back=x")
    assert message == "The form could not be used: the \u201cgrade\u201d field is missing."
    page = tech.http.post(f"{event}/grade", data={"csrf": tech.csrf},
                          headers={**HTML, "Referer": f"{collector_server.url}{event}?back=x"})
    assert f'<a href="{event}?back=x" id="back">Back to the form</a>' in page.text


def test_invalid_field_names_the_field(collector_server: Any, tech: DashClient) -> None:
    event = f"/events/{uuid.uuid4()}"
    message = _page_error(tech, f"{event}/notes", {"text": "x" * 5000},
                          f"{collector_server.url}{event}")
    assert message.startswith("The form could not be used: the \u201ctext\u201d field is not right")
    assert "\n" not in message and "x" * 50 not in message  # the input is not echoed


def test_a_foreign_referer_gives_no_back_link(tech: DashClient) -> None:
    answer = tech.post_form(f"/events/{uuid.uuid4()}/grade", {},
                            headers={**HTML, "Referer": "https://evil.example/phish"})
    assert answer.status_code == 422 and 'id="back"' not in answer.text


def test_scripts_and_the_agent_api_keep_json(collector_server: Any, tech: DashClient) -> None:
    answer = tech.post_form(f"/events/{uuid.uuid4()}/grade", {},
                            headers={"Accept": "application/json"})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid"
    assert "grade" in answer.json()["detail"]
    device = collector_server.enrol()
    answer = collector_server.client.post("/api/v1/events", json={"events": "nope"},
                                          headers={**device.auth, **HTML})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "invalid"
