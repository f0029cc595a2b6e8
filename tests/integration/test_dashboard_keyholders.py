"""The dashboard refuses to unlock a key no keyholder signed, over real TLS to a real collector:
one uploaded and waiting, and one slipped into the database by whoever runs the server. First
sign-in proves the password with the account's key file, with the ordinary back-off; key
uploads that are not keys get one clear line."""

from __future__ import annotations

import html
from typing import Any

import pytest
from sqlmodel import select

from collector.admin import PASSWORD_FROM_KEY, add_keyholder_key
from collector.store.models import Account, Keyholder, LoginAttempt
from core.keys import create
from dashboard.security import hash_password
from tests.e2e.dashboard_helpers import audit_entries, make_accounts
from tests.fixtures.keys import FAST_TEST_KDF
from tests.hardening.clients import DashClient, anonymous, csrf_of, sign_in

pytestmark = [pytest.mark.slow]

HTML = {"Accept": "text/html"}


def _propose(server: Any, name: str, password: str) -> Any:
    key_file, _ = create(name, "technician", password, kdf=FAST_TEST_KDF)
    db = server.database()
    try:
        add_keyholder_key(db, key_file, actor="test")
    finally:
        db.close()
    return key_file


def _try_sign_in(server: Any, username: str, password: str) -> tuple[DashClient, Any]:
    client = anonymous(server)
    form = client.http.get("/login")
    answer = client.http.post("/login", data={"username": username, "password": password,
                                              "csrf": csrf_of(form.text)}, headers=HTML)
    return client, answer


def test_a_waiting_key_cannot_be_unlocked(collector_server: Any) -> None:
    server = collector_server
    make_accounts(server)
    key_file = _propose(server, "Nina Waiting", "nina's own key password")
    nina = sign_in(server, "technician", "Nina Waiting", "nina's own key password")
    try:
        answer = nina.post_form("/unlock", {"password": "nina's own key password"}, headers=HTML)
        assert answer.status_code == 403
        assert "not among the readers the keyholders signed" in answer.text
        assert "Key unlocked" not in answer.text
        # The banner tells her (and every keyholder) that a key waits.
        assert 'id="unapproved-banner"' in nina.http.get("/triage").text
    finally:
        nina.close()
    refused = audit_entries(server, "key.unlock_refused")
    assert [e.target for e in refused] == [key_file.fingerprint]
    assert all(e.target != key_file.fingerprint for e in audit_entries(server, "key.unlock"))


def test_a_key_inserted_in_the_database_cannot_be_unlocked(collector_server: Any) -> None:
    """The server administrator's attack: one INSERT of a keyholder row with an account."""
    server = collector_server
    make_accounts(server)
    key_file, _ = create("Rogue Admin", "technician", "the admin's password!", kdf=FAST_TEST_KDF)
    db = server.database()
    try:
        with db.session() as s:
            row = Keyholder(name="Rogue Admin", role="technician",
                            fingerprint=key_file.fingerprint,
                            public_key=key_file.public.to_bytes(), key_file=key_file.to_bytes())
            s.add(row)
            s.flush()
            s.add(Account(username="rogue", role="technician",
                          password_hash=hash_password("the admin's password!"),
                          keyholder_id=row.id))
            s.commit()
    finally:
        db.close()
    rogue = sign_in(server, "technician", "rogue", "the admin's password!")
    try:
        answer = rogue.post_form("/unlock", {"password": "the admin's password!"}, headers=HTML)
        assert answer.status_code == 403 and "cannot be unlocked here" in answer.text
        # Nor can it sign itself into the readers.
        page = rogue.http.get("/keyholders")
        assert "No keyholder has approved this key" in page.text
        digest = page.text.split('name="change" value="')[1].split('"')[0]
        signed = rogue.post_form("/keyholders/approve", {"change": digest,
                                                         "password": "the admin's password!"},
                                 headers=HTML)
        assert signed.status_code == 403 and "cannot sign a change" in signed.text
    finally:
        rogue.close()
    assert [e.target for e in audit_entries(server, "key.unlock_refused")] == [key_file.fingerprint]


def test_first_sign_in_unlocks_the_key_and_keeps_the_back_off(collector_server: Any) -> None:
    server = collector_server
    make_accounts(server)
    _propose(server, "Omar First", "omar's own key password")
    client, answer = _try_sign_in(server, "Omar First", "not omar's password")
    client.close()
    assert answer.status_code == 401 and "Wrong username or password." in answer.text
    db = server.database()
    try:
        with db.session() as s:
            failures = s.exec(select(LoginAttempt).where(LoginAttempt.kind == "login")).all()
            assert any(f.subject == "user:omar first" for f in failures)  # counted as usual
            account = s.exec(select(Account).where(Account.username == "Omar First")).one()
            assert account.password_hash == PASSWORD_FROM_KEY
            # An account with neither a password nor a key can never sign in.
            s.add(Account(username="keyless", role="technician", password_hash=PASSWORD_FROM_KEY))
            s.commit()
    finally:
        db.close()
    client, answer = _try_sign_in(server, "keyless", "")
    client.close()
    assert answer.status_code in (401, 422)
    client, answer = _try_sign_in(server, "keyless", "any password at all")
    client.close()
    assert answer.status_code == 401
    client, answer = _try_sign_in(server, "Omar First", "omar's own key password")
    client.close()
    assert answer.status_code == 303
    assert [e.target for e in audit_entries(server, "signin.first")] == ["Omar First"]
    # From now on the stored hash is checked, as for any account.
    client, answer = _try_sign_in(server, "Omar First", "omar's own key password")
    client.close()
    assert answer.status_code == 303
    assert len(audit_entries(server, "signin.first")) == 1


def test_uploads_that_are_not_keys_get_one_line(collector_server: Any) -> None:
    server = collector_server
    name, password = make_accounts(server)["head"]
    head = sign_in(server, "head", name, password)
    recovery_key, _ = create("Offline Recovery", "recovery", "recovery password!", kdf=FAST_TEST_KDF)
    cases = [
        (b"x" * (70 * 1024), "too large to be a Vigil key"),
        (b"\xff\xfe not json", "That is not a Vigil key"),
        (b'{"format": "vigil-key", "version": 1}', "That is not a Vigil key"),
        (recovery_key.to_bytes(), "a recovery key's private half stays offline"),
    ]
    try:
        for data, expected in cases:
            answer = head.http.post("/keyholders/add", data={"csrf": head.csrf},
                                    files={"key": ("upload.key", data)}, headers=HTML)
            assert answer.status_code == 400, (expected, answer.status_code)
            error = html.unescape(answer.text.split('id="add-error">')[1].split("</p>")[0])
            assert expected in error and "\n" not in error
        # The recovery key's public half is what the page takes.
        answer = head.http.post("/keyholders/add", data={"csrf": head.csrf},
                                files={"key": ("r.pub", recovery_key.public.to_bytes())})
        assert answer.status_code == 303
    finally:
        head.close()
