"""Sign-in, lockout, TOTP, unlock limits and sign-out over real HTTPS to a real collector.

These talk HTTP with httpx (cookies and forms as a browser sends them); the browser tests cover
the pages themselves.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pyotp
import pytest
from sqlmodel import select

from collector.store.models import AuditEntry
from dashboard.accounts import enable_totp
from tests.e2e.dashboard_helpers import make_accounts

pytestmark = [pytest.mark.slow]


def _client(server: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=30,
                        headers={"Accept": "text/html"})


def _token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:300]
    return found.group(1)


def _sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    token = _token(client.get("/login"))
    return client.post("/login", data={"username": username, "password": password, "csrf": token})


def _enable_totp(server: Any, username: str) -> str:
    db = server.database()
    try:
        with db.session() as s:
            return str(pyotp.parse_uri(enable_totp(s, username)).secret)
    finally:
        db.close()


def _audit(server: Any, action: str) -> list[AuditEntry]:
    db = server.database()
    try:
        with db.session() as s:
            return list(s.exec(select(AuditEntry).where(AuditEntry.action == action)).all())
    finally:
        db.close()


def test_dashboard_signin_cookies_lockout_and_audit(collector_server: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    name, password = who["head"]
    with _client(server) as client:
        answer = _sign_in(client, name, password)
        assert answer.status_code == 303 and answer.headers["location"] == "/review"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("__Host-vigil-session=")
        for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
            assert flag.lower() in cookie.lower(), cookie
        page = client.get("/review")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # scripts come only from /static
    assert [e.target for e in _audit(server, "signin")] == [name]

    with _client(server) as client:
        for _ in range(5):
            answer = _sign_in(client, name, "wrong password")
            assert answer.status_code == 401
            assert "Wrong username or password." in answer.text
        # Locked: even the right password is refused, with a clear message.
        answer = _sign_in(client, name, password)
        assert answer.status_code == 429
        assert "Too many failed sign-ins: locked for" in answer.text
        assert "minute" in answer.text
    # The governor, from the same address, is locked too: the address has failed five times.
    with _client(server) as client:
        answer = _sign_in(client, *who["governor"])
        assert answer.status_code == 429
    assert len(_audit(server, "signin.failed")) == 5
    # An unknown user is refused exactly like a wrong password (no user enumeration).


def test_dashboard_totp_second_factor(collector_server: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    name, password = who["technician"]
    secret = _enable_totp(server, name)
    with _client(server) as client:
        answer = _sign_in(client, name, password)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login/totp")
        # Half signed in: no page yet.
        assert client.get("/triage").status_code == 303
        form = client.get("/login/totp")
        answer = client.post("/login/totp", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111",
                                                  "csrf": _token(form)})
        assert answer.status_code == 401 and "That code is not right" in answer.text
        answer = client.post("/login/totp", data={"code": pyotp.TOTP(secret).now(), "csrf": _token(form)})
        assert answer.status_code == 303 and answer.headers["location"] == "/triage"
        assert client.get("/triage").status_code == 200


def test_dashboard_totp_code_is_accepted_once(collector_server: Any) -> None:
    """A code that signed in once is refused when replayed, in a new session or from the start."""
    server = collector_server
    name, password = make_accounts(server)["head"]
    secret = _enable_totp(server, name)
    code = pyotp.TOTP(secret).now()
    with _client(server) as client:
        _sign_in(client, name, password)
        answer = client.post("/login/totp", data={"code": code,
                                                  "csrf": _token(client.get("/login/totp"))})
        assert answer.status_code == 303
    with _client(server) as thief:
        _sign_in(thief, name, password)
        answer = thief.post("/login/totp", data={"code": code,
                                                 "csrf": _token(thief.get("/login/totp"))})
        assert answer.status_code == 401 and "already used" in answer.text
        assert thief.get("/review").status_code == 303  # still only half signed in


def test_dashboard_unlock_limits_audit_and_sign_out_drops_the_key(collector_server: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    name, password = who["technician"]
    with _client(server) as client:
        _sign_in(client, name, password)
        token = _token(client.get("/unlock"))
        for _ in range(5):
            answer = client.post("/unlock", data={"password": "not my key password", "csrf": token})
            assert answer.status_code == 401 and "does not unlock your key" in answer.text
        answer = client.post("/unlock", data={"password": password, "csrf": token})
        assert answer.status_code == 429 and "Too many failed unlock attempts" in answer.text
    assert len(_audit(server, "key.unlock_failed")) == 5

    name, password = who["head"]
    with _client(server) as client:
        _sign_in(client, name, password)
        token = _token(client.get("/unlock"))
        answer = client.post("/unlock", data={"password": password, "csrf": token})
        assert answer.status_code == 303
        assert "Key unlocked" in client.get("/triage").text
        unlocks = _audit(server, "key.unlock")
        assert [e.actor for e in unlocks] == [name]
        assert password not in str(unlocks[0].details)
        old_cookie = dict(client.cookies)
        assert client.post("/logout", data={"csrf": token}).status_code == 303
    # The old session cookie no longer works, and a new sign-in starts locked.
    with _client(server) as client:
        for key, value in old_cookie.items():
            client.cookies.set(key, value)
        assert client.get("/triage").status_code == 303
    with _client(server) as client:
        _sign_in(client, name, password)
        assert "Unlock key" in client.get("/triage").text
        event_page = client.get("/events/does-not-exist")
        assert event_page.status_code == 404


def test_dashboard_account_sets_up_totp_and_changes_password(collector_server: Any) -> None:
    server = collector_server
    name, password = make_accounts(server)["governor"]
    with _client(server) as client:
        _sign_in(client, name, password)
        page = client.post("/account/totp/start", data={"csrf": _token(client.get("/account"))})
        key = re.search(r'<code id="totp-key">([A-Z2-7]+)</code>', page.text).group(1)
        answer = client.post("/account/totp/confirm", data={"code": "12345", "secret": key,
                                                                   "csrf": _token(page)})
        assert answer.status_code == 400 and "does not match" in answer.text
        confirmed_at = time.time()
        answer = client.post("/account/totp/confirm",
                             data={"code": pyotp.TOTP(key).at(confirmed_at), "secret": key,
                                   "csrf": _token(page)})
        assert "The second factor is on" in answer.text
        # Wrong current password: refused, nothing changes.
        answer = client.post("/account/password", data={
            "current": "not it", "new": "a brand new password", "confirm": "a brand new password",
            "csrf": _token(answer)})
        assert answer.status_code == 401 and "current password is not right" in answer.text
        answer = client.post("/account/password", data={
            "current": password, "new": "a brand new password", "confirm": "a brand new password",
            "csrf": _token(answer)})
        assert answer.status_code == 303
        assert client.get("/reports").status_code == 303  # signed out everywhere
    with _client(server) as client:
        assert _sign_in(client, name, password).status_code == 401
        answer = _sign_in(client, name, "a brand new password")
        assert answer.headers["location"].startswith("/login/totp")
        # The code that confirmed the set-up is spent: sign in with the next one (accepted early
        # for clock drift), as a user would after waiting for their app to move on.
        answer = client.post("/login/totp", data={"code": pyotp.TOTP(key).at(confirmed_at),
                                                  "csrf": _token(client.get("/login/totp"))})
        assert answer.status_code == 401 and "already used" in answer.text
        next_code = pyotp.TOTP(key).at(confirmed_at, counter_offset=1)
        answer = client.post("/login/totp", data={"code": next_code,
                                                  "csrf": _token(client.get("/login/totp"))})
        assert answer.headers["location"] == "/reports"
    actions = [e.action for e in _audit(server, "account.totp_enabled")]
    assert actions == ["account.totp_enabled"]
    assert len(_audit(server, "account.password_changed")) == 1


def test_dashboard_head_views_but_does_not_edit_devices_and_wordlists(collector_server: Any) -> None:
    server = collector_server
    name, password = make_accounts(server)["head"]
    with _client(server) as client:
        _sign_in(client, name, password)
        token = _token(client.get("/unlock"))
        assert client.post("/unlock", data={"password": password, "csrf": token}).status_code == 303
        devices = client.get("/devices")
        wordlists = client.get("/wordlists")
        assert devices.status_code == 200 and "Create token" not in devices.text
        assert wordlists.status_code == 200 and "Check and save" not in wordlists.text
        for path, form in (("/devices/tokens", {}), ("/devices/tokens/1/revoke", {}),
                           ("/wordlists/files", {"name": "x.toml", "text": "category = 'drugs'"}),
                           ("/wordlists/files/x.toml/delete", {}), ("/wordlists/publish", {})):
            answer = client.post(path, data={**form, "csrf": token})
            assert answer.status_code == 403, (path, answer.status_code)
        # The head reviews, triages and records incidents like the technician.
        for path in ("/review", "/triage", "/incidents", "/reports", "/audit"):
            assert client.get(path).status_code == 200, path
