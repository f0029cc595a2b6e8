"""Sign-in, back-offs, TOTP, unlock limits and sign-out over real HTTPS to a real collector.

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

from dashboard.accounts import enable_totp
from tests.e2e.dashboard_helpers import audit_entries, make_accounts

pytestmark = [pytest.mark.slow]


def _client(server: Any, source: str = "127.0.0.1") -> httpx.Client:
    """A client connecting from ``source`` (any 127.0.0.0/8 address: a separate machine, as far
    as the collector's per-address back-off can tell)."""
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=source)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30,
                        headers={"Accept": "text/html"})


def _wait_for(condition: Any, deadline_s: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


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


def test_dashboard_signin_cookies_lockout_andaudit_entries(collector_server: Any) -> None:
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
    assert [e.target for e in audit_entries(server, "signin")] == [name]

    with _client(server) as client:
        for _ in range(3):  # the address's free failures
            answer = _sign_in(client, name, "wrong password")
            assert answer.status_code == 401
            assert "Wrong username or password." in answer.text
        # Backed off: even the right password is refused untried, with a clear message.
        answer = _sign_in(client, name, password)
        assert answer.status_code == 429
        assert "Too many failed sign-ins from this address: try again in" in answer.text
    # The governor, from the same address, waits too: the address has failed three times.
    with _client(server) as client:
        assert _sign_in(client, *who["governor"]).status_code == 429
    # The head, from another machine, is not slowed by that address at all.
    with _client(server, "127.0.0.2") as client:
        assert _sign_in(client, name, password).status_code == 303
    # And the address is free again after its short wait (one second after three failures).
    with _client(server) as client:
        _wait_for(lambda: _sign_in(client, *who["governor"]).status_code == 303, 10,
                  "the address's back-off to end")
    assert len(audit_entries(server, "signin.failed")) == 3
    backoffs = audit_entries(server, "signin.backoff")
    assert [(e.target, e.details["scope"], e.details["wait_s"]) for e in backoffs] == [
        (name, "source", 1)]
    assert all(password not in str(e.details) for e in backoffs)


def test_dashboard_strangers_cannot_keep_the_head_out(collector_server: Any) -> None:
    """Guessers from many addresses make the account wait (a little); the head, from their own
    machine, is told how long and signs in once it has passed, within the account's cap."""
    server = collector_server
    name, password = make_accounts(server)["head"]
    def one_guess(source: str) -> bool:
        """A stranger's guess from ``source``; False while the account makes them wait."""
        with _client(server, source) as stranger:
            answer = _sign_in(stranger, name, "a guess")
        assert answer.status_code in (401, 429), answer.status_code
        if answer.status_code == 429:
            assert "many failed sign-ins from elsewhere" in answer.text
        return answer.status_code == 401

    # Sixteen guesses, each from its own address, each as soon as the account allows: past the
    # account's ten free failures, its wait doubles every three (1, 1, 1, 2, 2, 2 s, then 4 s).
    for i in range(16):
        _wait_for(lambda: one_guess(f"127.0.1.{i + 1}"), 30, "the account's back-off")  # noqa: B023
    with _client(server) as client:
        answer = _sign_in(client, name, password)
        assert answer.status_code == 429
        assert "This account has had many failed sign-ins from elsewhere: try again in" \
            in answer.text
        assert "Wrong username or password." not in answer.text
        started = time.monotonic()
        _wait_for(lambda: _sign_in(client, name, password).status_code == 303, 60 + 10,
                  "the head to get in after the account's back-off")
        assert time.monotonic() - started <= 60 + 10
    assert {e.details["scope"] for e in audit_entries(server, "signin.backoff")} == {"account"}


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
        for _ in range(3):
            answer = client.post("/unlock", data={"password": "not my key password", "csrf": token})
            assert answer.status_code == 401 and "does not unlock your key" in answer.text
        answer = client.post("/unlock", data={"password": password, "csrf": token})
        assert answer.status_code == 429
        assert "Too many failed unlock attempts from this address: try again in" in answer.text
    assert len(audit_entries(server, "key.unlock_failed")) == 3
    assert [e.details["scope"] for e in audit_entries(server, "key.unlock_backoff")] == ["source"]

    name, password = who["head"]
    with _client(server, "127.0.0.2") as client:  # the head's own machine: not backed off
        _sign_in(client, name, password)
        token = _token(client.get("/unlock"))
        answer = client.post("/unlock", data={"password": password, "csrf": token})
        assert answer.status_code == 303
        assert "Key unlocked" in client.get("/triage").text
        unlocks = audit_entries(server, "key.unlock")
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

        def next_code_tried() -> httpx.Response | None:
            # Three failures from this address so far (the wrong current password, the old
            # password, the spent code): a one-second back-off, refused untried meanwhile.
            answer = client.post("/login/totp", data={"code": next_code,
                                                      "csrf": _token(client.get("/login/totp"))})
            return None if answer.status_code == 429 else answer

        answer = _wait_for(next_code_tried, 10, "the address's one-second back-off")
        assert answer.headers["location"] == "/reports"
    actions = [e.action for e in audit_entries(server, "account.totp_enabled")]
    assert actions == ["account.totp_enabled"]
    assert len(audit_entries(server, "account.password_changed")) == 1


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
