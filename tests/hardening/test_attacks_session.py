"""CSRF and session fixation against the real dashboard.

CSRF: a signed-in keyholder's browser visiting a hostile page must not grade, note or export
anything; nor may a request with no token, another session's token, or the pre-sign-in token.
Session fixation: a session id planted before sign-in never becomes the session; each sign-in
gets a new id; sign-out kills it; the cookies are HttpOnly, Secure and SameSite=Strict.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.dashboard_helpers import event_status, sign_in, unlock
from tests.hardening.clients import DashClient, anonymous, csrf_of
from tests.hardening.clients import sign_in as sign_in_http

pytestmark = [pytest.mark.slow]

SESSION_COOKIE = "__Host-vigil-session"


def _notes(server: Any, event_id: str) -> int:
    from sqlmodel import select

    from collector.store.models import EventNote

    db = server.database()
    try:
        with db.session() as session:
            return len(session.exec(select(EventNote).where(EventNote.event_id == event_id)).all())
    finally:
        db.close()


def _cookie_name(client: DashClient) -> str:
    names = [c.name for c in client.http.cookies.jar if "session" in c.name]
    assert names, "no session cookie"
    return names[0]


def test_unsafe_requests_without_the_sessions_own_token_are_refused(seeded: Any) -> None:
    server, accounts, event_id = seeded
    tech = sign_in_http(server, "technician", *accounts["technician"])
    other = sign_in_http(server, "head", *accounts["head"])
    pre = anonymous(server)
    pre_token = csrf_of(pre.http.get("/login").text)  # a pre-sign-in token, not a session's
    attempts = {
        "no token": {},
        "empty token": {"csrf": ""},
        "another session's token": {"csrf": other.csrf},
        "the pre-sign-in token": {"csrf": pre_token},
        "a made-up token": {"csrf": "A" * 43},
    }
    for why, extra in attempts.items():
        answer = tech.http.post(f"/events/{event_id}/grade",
                                data={"grade": "false_positive", **extra})
        assert answer.status_code == 403, why
        assert answer.json()["code"] == "csrf", why
        answer = tech.http.post(f"/events/{event_id}/notes", data={"text": "x", **extra},
                                headers={"X-CSRF-Token": extra.get("csrf", "")})
        assert answer.status_code == 403, why
    assert event_status(server, event_id) == "new"
    assert _notes(server, event_id) == 0
    # The real token works, so the refusals above were the CSRF check and nothing else.
    assert tech.post_form(f"/events/{event_id}/grade", {"grade": "concern"}).status_code == 303
    assert event_status(server, event_id) == "concern"
    for client in (tech, other, pre):
        client.close()


@pytest.mark.browser
def test_a_hostile_page_cannot_act_with_a_signed_in_keyholders_browser(
        seeded: Any, new_context: Any) -> None:
    server, accounts, event_id = seeded
    context = new_context()
    page = context.new_page()
    sign_in(page, server, accounts["technician"])
    unlock(page, server, "technician")
    # Another site (here about:blank, a different origin) auto-submits forms at the dashboard.
    hostile = context.new_page()
    hostile.set_content(f"""
      <form id=g method=post action="{server.url}/events/{event_id}/grade">
        <input name=grade value=false_positive></form>
      <form id=n method=post action="{server.url}/events/{event_id}/notes" target=_blank>
        <input name=text value=pwned></form>
      <script>document.getElementById('n').submit(); document.getElementById('g').submit();</script>
    """)
    hostile.wait_for_load_state("load")
    hostile.wait_for_url(lambda url: url.startswith(server.url), timeout=15_000)
    # The browser did send the form (SameSite=Strict kept the cookie back): the CSRF check
    # answered with its one-line page, and nothing changed.
    assert "did not come from the dashboard" in hostile.locator("body").inner_text()
    assert event_status(server, event_id) == "new"
    assert _notes(server, event_id) == 0
    page.reload()  # the keyholder's own session is unharmed
    assert page.url.endswith("/triage")


def test_a_planted_session_id_never_becomes_the_session(seeded: Any) -> None:
    server, accounts, _ = seeded
    planted = "attacker-chosen-session-id-0123456789abcdefghij"
    victim = anonymous(server)
    victim.http.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1", path="/")
    victim.http.cookies.set("vigil-session", planted, domain="127.0.0.1", path="/")
    form = victim.http.get("/login")
    answer = victim.http.post("/login", data={"username": accounts["technician"][0],
                                              "password": accounts["technician"][1],
                                              "csrf": csrf_of(form.text)})
    assert answer.status_code == 303
    issued = [c.value for c in victim.http.cookies.jar if c.name == SESSION_COOKIE
              and c.value != planted]
    assert issued, "sign-in must issue a new session id"
    # The attacker, holding only the planted id, is nobody.
    attacker = anonymous(server)
    attacker.http.cookies.set(SESSION_COOKIE, planted, domain="127.0.0.1", path="/")
    assert attacker.http.get("/triage").status_code == 401
    victim.close()
    attacker.close()


def test_each_sign_in_gets_a_new_session_and_sign_out_kills_it(seeded: Any) -> None:
    server, accounts, _ = seeded
    first = sign_in_http(server, "technician", *accounts["technician"])
    second = sign_in_http(server, "technician", *accounts["technician"])
    name = _cookie_name(first)
    token1, token2 = first.http.cookies.get(name), second.http.cookies.get(name)
    assert token1 and token2 and token1 != token2
    assert first.csrf != second.csrf

    stolen = anonymous(server)
    stolen.http.cookies.set(name, token1, domain="127.0.0.1", path="/")
    assert stolen.http.get("/triage").status_code == 200  # a live session works ...
    assert first.post_form("/logout").status_code == 303
    assert stolen.http.get("/triage").status_code == 401  # ... and is dead after sign-out
    assert second.http.get("/triage").status_code == 200  # other sessions are untouched
    for client in (first, second, stolen):
        client.close()


def test_session_cookies_are_httponly_secure_and_samesite_strict(seeded: Any) -> None:
    server, accounts, _ = seeded
    client = anonymous(server)
    form = client.http.get("/login")
    answer = client.http.post("/login", data={"username": accounts["head"][0],
                                              "password": accounts["head"][1],
                                              "csrf": csrf_of(form.text)})
    for response in (form, answer):
        for header in response.headers.get_list("set-cookie"):
            lowered = header.lower()
            assert "httponly" in lowered, header
            assert "secure" in lowered, header
            assert "samesite=strict" in lowered, header
            assert "path=/" in lowered, header
    client.close()
