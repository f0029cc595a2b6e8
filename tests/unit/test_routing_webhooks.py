"""What a routed alert posts to a webhook (collector.routing.webhook_body): Teams' Workflows
webhooks, which replaced the retired Office 365 connectors, take Adaptive Cards only (a plain
{"text": ...} is accepted and shows nothing), so their URLs get an Adaptive Card message; Slack,
Teams' older connectors and any other host get {"text": ...}. The shapes only: a Workflows host
cannot be reached from a test (tests/integration/test_dashboard_routing.py posts the plain form
to a real receiver on loopback)."""

from __future__ import annotations

import json

import pytest

from collector.routing import webhook_body

TEXT = "Vigil: an event needs review at https://vigil.school.example/triage"
LINK = "https://vigil.school.example/triage"


@pytest.mark.parametrize("url", [
    "https://prod-27.uksouth.logic.azure.com:443/workflows/0a1b/triggers/manual/paths/invoke?sig=x",
    ("https://default0a1b2c.3d.environment.api.powerplatform.com:443/powerautomate/automations/"
     "direct/workflows/4e5f/triggers/manual/paths/invoke?sig=y"),
    "https://PROD-01.UKWEST.LOGIC.AZURE.COM/workflows/x",
])
def test_a_teams_workflows_url_gets_an_adaptive_card_with_the_same_no_content_text(url: str) -> None:
    body = webhook_body(url, TEXT, LINK)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"] == [{"type": "TextBlock", "text": TEXT, "wrap": True}]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the triage page",
                                "url": LINK}]
    json.dumps(body)  # serialisable as httpx will send it


@pytest.mark.parametrize("url", [
    "https://hooks.slack.com/services/T000/B000/XXXX",
    "https://school.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi",
    "http://127.0.0.1:8099/relay",
    "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k",
    "https://logic.azure.com.example.org/not-microsoft",  # a look-alike host is not Teams
])
def test_other_webhooks_get_plain_text(url: str) -> None:
    assert webhook_body(url, TEXT, LINK) == {"text": TEXT}
