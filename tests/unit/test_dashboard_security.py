"""Passwords, lockouts, sessions, the key ring's idle timeout, redirects, settings, highlighting."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from sqlmodel import select

from collector.admin import add_account
from collector.settings import DashboardSettings as CollectorDashboard
from collector.settings import Settings
from collector.store.models import Account, LoginAttempt, utcnow
from dashboard import sessions
from dashboard.accounts import claim_totp_step, disable_account, enable_totp, set_password
from dashboard.captures import highlight
from dashboard.errors import BadRequest, LockedOut
from dashboard.keysessions import KeyRing
from dashboard.routes._common import safe_next
from dashboard.security import (
    clear_failures,
    ensure_not_locked,
    hash_password,
    record_failure,
    same_secret,
    totp_step,
    verify_password,
)
from dashboard.settings import DashboardSettings


def test_dashboard_passwords_are_argon2id_and_verify() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterx")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_dashboard_same_secret_never_matches_missing_sides() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("", "")
    assert not same_secret(None, "abc")


def test_dashboard_lockout_after_failures_and_clears(database: Any) -> None:
    subjects = ["user:ada", "addr:10.0.0.9"]
    with database.session() as s:
        for _ in range(4):
            record_failure(s, "login", subjects)
        ensure_not_locked(s, "login", subjects, max_failures=5, window=900)
        record_failure(s, "login", ["user:ada"])
        with pytest.raises(LockedOut, match=r"locked for 1[45] more minute"):
            ensure_not_locked(s, "login", subjects, max_failures=5, window=900)
        # The address is not locked on its own; other users from it can still try.
        ensure_not_locked(s, "login", ["addr:10.0.0.9"], max_failures=5, window=900)
        # Unlock attempts are counted apart from sign-ins.
        ensure_not_locked(s, "unlock", ["user:ada"], max_failures=5, window=900)
        clear_failures(s, "login", "user:ada")
        ensure_not_locked(s, "login", subjects, max_failures=5, window=900)


def test_dashboard_old_failures_fall_out_of_the_window(database: Any) -> None:
    with database.session() as s:
        old = utcnow() - timedelta(minutes=20)
        s.add_all([LoginAttempt(kind="login", subject="user:bo", at=old) for _ in range(9)])
        s.commit()
        ensure_not_locked(s, "login", ["user:bo"], max_failures=5, window=900)


def test_dashboard_sessions_expire_and_end_with_the_account(database: Any) -> None:
    settings = DashboardSettings(session_idle_timeout=60)
    account = add_account(database, "kim", "governor", "long enough password")
    with database.session() as s:
        token, row = sessions.start(s, account, "127.0.0.1", verified=True)
        assert row.token_hash != token  # only the hash is stored
        who = sessions.find(s, token, settings)
        assert who is not None and who.role == "governor" and who.csrf
        assert sessions.find(s, token + "x", settings) is None
        row.last_seen = utcnow() - timedelta(seconds=61)
        s.add(row)
        s.commit()
        assert sessions.find(s, token, settings) is None  # idle too long: gone
        token, _ = sessions.start(s, account, "127.0.0.1", verified=True)
        set_password(s, "kim", "another long password")
        assert sessions.find(s, token, settings) is None  # a new password ends old sessions
        token, _ = sessions.start(s, account, "127.0.0.1", verified=True)
        disable_account(s, "kim")
        assert sessions.find(s, token, settings) is None


def test_dashboard_accounts_refuse_bad_input(database: Any) -> None:
    add_account(database, "lee", "governor", "long enough password")
    with database.session() as s:
        with pytest.raises(BadRequest, match="12 characters"):
            set_password(s, "lee", "short")
        with pytest.raises(BadRequest, match="no account"):
            set_password(s, "nobody", "long enough password")


def test_dashboard_totp(database: Any) -> None:
    add_account(database, "pat", "governor", "long enough password")
    with database.session() as s:
        uri = enable_totp(s, "pat")
    secret = pyotp.parse_uri(uri).secret
    totp, now = pyotp.TOTP(secret), 1_800_000_015.0
    step = totp.timecode(now)
    code = totp.at(now)
    assert totp_step(secret, code, now) == step
    assert totp_step(secret, " " + code[:3] + " " + code[3:], now) == step
    # A neighbouring step's code is accepted for clock drift, and reports its own step.
    assert totp_step(secret, totp.at(now, counter_offset=-1), now) == step - 1
    assert totp_step(secret, totp.at(now, counter_offset=1), now) == step + 1
    assert totp_step(secret, totp.at(now, counter_offset=-2), now) in (None, step, step - 1, step + 1)
    wrong = next(c for c in ("000000", "111111") if c not in {totp.at(now, counter_offset=o)
                                                              for o in (-1, 0, 1)})
    assert totp_step(secret, wrong, now) is None
    assert totp_step(secret, "12345", now) is None


def test_dashboard_totp_step_is_accepted_once(database: Any) -> None:
    add_account(database, "pat", "governor", "long enough password")
    with database.session() as s:
        account_id = s.exec(select(Account.id).where(Account.username == "pat")).one()
        assert claim_totp_step(s, account_id, 1000)
        assert not claim_totp_step(s, account_id, 1000)  # the same code again
        assert not claim_totp_step(s, account_id, 999)  # an older one (drift window)
        assert claim_totp_step(s, account_id, 1001)
    with database.session() as s:  # kept in the database: another instance sees it too
        assert not claim_totp_step(s, account_id, 1001)


def test_dashboard_totp_parallel_replays_let_one_through(database: Any) -> None:
    add_account(database, "pat", "governor", "long enough password")
    with database.session() as s:
        account_id = s.exec(select(Account.id).where(Account.username == "pat")).one()
    for step in (5000, 5001):  # the first round races to insert the row, the second to update it
        results: list[bool] = []
        barrier = threading.Barrier(6)

        def claim(step: int = step, barrier: threading.Barrier = barrier,
                  results: list[bool] = results) -> None:
            with database.session() as s:
                barrier.wait(30)
                results.append(claim_totp_step(s, account_id, step))

        threads = [threading.Thread(target=claim) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == [False] * 5 + [True]


def test_dashboard_key_ring_drops_idle_keys() -> None:
    now = [1000.0]  # the ring's clock: the test moves it, so idleness is a fact, not a race
    ring = KeyRing(idle_timeout=300, clock=lambda: now[0])
    ring.put("s1", object(), 1, "fp1")
    ring.put("s2", object(), 2, "fp2")
    assert ring.get("s1") is not None
    ring.drop("s2")
    assert ring.get("s2") is None
    now[0] += 299
    assert ring.peek("s1") and ring.seconds_left("s1") == 1
    # peek() does not count as use: one second later than the timeout, the key is gone.
    now[0] += 1.5
    assert not ring.peek("s1")
    assert ring.get("s1") is None
    assert len(ring) == 0
    # Use keeps a key alive: used every 200 s for 1,000 s, it is never dropped.
    ring.put("s3", object(), 3, "fp3")
    for _ in range(5):
        now[0] += 200
        assert ring.get("s3") is not None
    assert ring.seconds_left("s3") == 300
    now[0] += 300.5
    assert ring.get("s3") is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/triage?severity=5", "/triage?severity=5"),
        ("https://evil.example/", "/home"),
        ("//evil.example/x", "/home"),
        ("/\\evil.example", "/home"),
        ("javascript:alert(1)", "/home"),
        ("", "/home"),
    ],
)
def test_dashboard_next_is_only_a_local_path(target: str, expected: str) -> None:
    assert safe_next(target, "/home") == expected


def test_dashboard_settings_from_the_collector(tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path,
        silent_after_minutes=45,
        dashboard=CollectorDashboard(unlock_idle_minutes=5, login_max_failures=3,
                                     extra={"page_size": "25", "cookie_secure": "false"}),
    )
    ours = DashboardSettings.from_collector(settings)
    assert ours.key_idle_timeout == 300
    assert ours.login_max_failures == 3
    assert ours.page_size == 25
    assert ours.cookie_secure is False
    assert ours.silent_after == 45 * 60
    assert DashboardSettings.from_collector(Settings(data_dir=tmp_path)).key_idle_timeout == 900


def test_dashboard_highlight_splits_context_for_escaping() -> None:
    header = {"context": "ab <b>kill myself</b> cd", "match": {"start": 6, "end": 17, "text": "kill myself"}}
    assert highlight(header) == ("ab <b>", "kill myself", "</b> cd")
    # Offsets that do not fit fall back to finding the text; nothing found shows the context.
    assert highlight({"context": "x KILL y", "match": {"start": 90, "end": 99, "text": "kill"}}) == ("x ", "KILL", " y")
    assert highlight({"context": "plain", "match": {}}) == ("plain", "", "")
    assert highlight({"context": "plain", "match": ["not", "a", "dict"]}) == ("plain", "", "")
    assert highlight({"context": None, "match": "x"}) == ("", "", "")


def test_dashboard_capture_media_type_is_an_allowlist() -> None:
    from dashboard.captures import Capture

    assert Capture({"media_type": "image/webp"}, b"").media_type == "image/webp"
    assert Capture({"media_type": "image/webp"}, b"").extension == "webp"
    for hostile in ("image/svg+xml", "text/html", "image/png; charset=x", None):
        capture = Capture({"media_type": hostile} if hostile else {}, b"")
        assert capture.media_type in ("application/octet-stream", "image/png")
    assert Capture({"media_type": "image/svg+xml"}, b"").media_type == "application/octet-stream"
    assert Capture({"media_type": "image/svg+xml"}, b"").extension == "bin"
