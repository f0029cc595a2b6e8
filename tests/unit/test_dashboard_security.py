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
from dashboard.errors import BackedOff, BadRequest
from dashboard.keysessions import KeyRing
from dashboard.routes._common import safe_next
from dashboard.security import (
    Backoff,
    Limits,
    backoff_left,
    clear_failures,
    guarded_attempt,
    hash_password,
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


class Clock:
    """An injected clock for the back-offs: time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


LIMITS = Limits(source=Backoff(free=3, cap=900), account=Backoff(free=10, cap=60, every=3),
                window=3600)


def _guess(s: Any, clock: Clock, account: str, source: str, right: bool,
           kind: str = "login") -> tuple[bool, str, int]:
    """One guess: (was the password checked, what happened, seconds to wait if refused)."""
    checked: list[bool] = []

    def passes() -> bool:
        checked.append(True)
        return right

    try:
        ok = guarded_attempt(s, kind, account, source, LIMITS, passes, clock=clock)
    except BackedOff as exc:
        assert not checked  # refused untried: no oracle
        return False, f"backoff:{exc.scope}", exc.seconds
    return True, "ok" if ok else "wrong", 0


def _fail_until_refused(s: Any, clock: Clock, account: str, source: str,
                        kind: str = "login") -> tuple[str, int]:
    while True:
        tried, what, wait = _guess(s, clock, account, source, right=False, kind=kind)
        if not tried:
            return what, wait


def test_dashboard_source_backoff_doubles_and_refuses_untried(database: Any) -> None:
    """The stranger's own address waits longer after each failure, up to the cap; a right
    password during the wait is refused without being checked."""
    clock = Clock()
    with database.session() as s:
        for _ in range(3):  # the free failures
            assert _guess(s, clock, "ada", "10.6.6.6", right=False)[:2] == (True, "wrong")
        waits = []
        for _ in range(12):
            what, wait = _fail_until_refused(s, clock, "ada", "10.6.6.6")
            assert what == "backoff:source"
            waits.append(wait)
            # During the back-off even the right password is refused, untried.
            assert _guess(s, clock, "ada", "10.6.6.6", right=True) == (False, "backoff:source",
                                                                       wait)
            clock.advance(wait - 0.5)
            assert _guess(s, clock, "ada", "10.6.6.6", right=True)[:2] == (False, "backoff:source")
            clock.advance(0.5)
        assert waits[:6] == [1, 2, 4, 8, 16, 32]
        assert waits[-1] == 900 and max(waits) == 900  # capped
        # Refused guesses wrote nothing: only the tried ones are remembered.
        rows = s.exec(select(LoginAttempt).where(LoginAttempt.subject == "addr:10.6.6.6")).all()
        assert len(rows) == 3 + 11  # the first wait came straight after the free ones


@pytest.mark.parametrize("kind", ["login", "unlock"])
def test_dashboard_stranger_cannot_keep_the_head_out(database: Any, kind: str) -> None:
    """A stranger's address hammering the head's account is slowed hard; the head, from their
    own address, is refused at most for the account's short capped wait, then signs in."""
    clock = Clock()
    started, tried_count = clock(), 0
    with database.session() as s:
        for _ in range(200):  # the stranger keeps guessing, each time as soon as allowed
            tried, what, wait = _guess(s, clock, "head", "10.6.6.6", right=False, kind=kind)
            tried_count += tried
            if not tried:
                assert what == "backoff:source"
                clock.advance(wait)
            # Meanwhile the head's own address is never slowed by the stranger's failures,
            # and the account's wait (from elsewhere) is never more than its cap.
            left = backoff_left(s, kind, "head", "10.0.0.5", LIMITS, clock())
            assert left is None or (left[0] == "account" and left[1] <= 60)
        # The account's back-off is running now; the head waits it out and gets in.
        tried, what, wait = _guess(s, clock, "head", "10.0.0.5", right=True, kind=kind)
        if not tried:
            assert what == "backoff:account" and wait <= 60
            clock.advance(wait)
            assert _guess(s, clock, "head", "10.0.0.5", right=True, kind=kind) == (True, "ok", 0)
        # The stranger's address was slowed hard (a handful of guesses an hour, against the
        # old limit's twenty), and still is after the head's success.
        hours = (clock() - started).total_seconds() / 3600
        assert tried_count / hours <= 16, (tried_count, hours)
        assert _guess(s, clock, "head", "10.6.6.6", right=False, kind=kind)[:2] == (True, "wrong")
        left = backoff_left(s, kind, "head", "10.6.6.6", LIMITS, clock())
        assert left is not None and left[0] == "source" and left[1] > LIMITS.account.cap


def test_dashboard_account_backoff_grows_slowly_and_is_capped(database: Any) -> None:
    """Many addresses, one failure each (a distributed guesser): the account waits grow
    slowly and never pass the cap; sign-ins and unlocks are counted apart."""
    clock = Clock()
    with database.session() as s:
        waits = []
        for i in range(60):
            tried, what, wait = _guess(s, clock, "bo", f"10.1.0.{i}", right=False)
            if not tried:
                assert what == "backoff:account"
                waits.append(wait)
                clock.advance(wait)
                assert _guess(s, clock, "bo", f"10.1.0.{i}", right=False)[:2] == (True, "wrong")
        assert waits and waits == sorted(waits)
        assert waits[:3] == [1, 1, 1]  # doubles only every third failure
        assert max(waits) == 60
        assert backoff_left(s, "unlock", "bo", "10.1.0.1", LIMITS, clock()) is None


def test_dashboard_parallel_guesses_in_a_backoff_are_not_tried(database: Any) -> None:
    """Once the free failures are used, parallel guesses from one address: at most one tried."""
    clock = Clock()
    with database.session() as s:
        for _ in range(3):
            _guess(s, clock, "cy", "10.2.2.2", right=False)
        clock.advance(1)
    checked: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        def passes() -> bool:
            with lock:
                checked.append(i)
            return False

        with database.session() as s:
            try:
                guarded_attempt(s, "login", "cy", "10.2.2.2", LIMITS, passes, clock=clock)
            except BackedOff:
                pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checked) <= 1, checked


def test_dashboard_old_failures_fall_out_of_the_window(database: Any) -> None:
    with database.session() as s:
        old = utcnow() - timedelta(minutes=61)
        s.add_all([LoginAttempt(kind="login", subject="user:bo", at=old) for _ in range(30)])
        s.add_all([LoginAttempt(kind="login", subject="addr:10.9.9.9", at=old) for _ in range(30)])
        s.commit()
        assert backoff_left(s, "login", "bo", "10.9.9.9", LIMITS) is None
        s.add(LoginAttempt(kind="login", subject="user:bo"))
        s.commit()
        assert backoff_left(s, "login", "bo", "10.9.9.9", LIMITS) is None
        clear_failures(s, "login", "user:bo")


def test_dashboard_backoff_messages() -> None:
    assert str(BackedOff("login", "source", 40)) == (
        "Too many failed sign-ins from this address: try again in 40 seconds.")
    assert str(BackedOff("login", "account", 8)) == (
        "This account has had many failed sign-ins from elsewhere: try again in 8 seconds.")
    assert str(BackedOff("unlock", "source", 1)) == (
        "Too many failed unlock attempts from this address: try again in 1 second.")
    assert "try again in 15 minutes" in str(BackedOff("login", "source", 900))


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
        dashboard=CollectorDashboard(unlock_idle_minutes=5, login_max_failures=3,
                                     extra={"page_size": "25", "cookie_secure": "false",
                                            "account_max_wait": "30"}),
    )
    ours = DashboardSettings.from_collector(settings)
    assert ours.key_idle_timeout == 300
    assert ours.source_free_failures == 3
    assert ours.account_max_wait == 30 and ours.attempt_window == 3600
    assert ours.page_size == 25
    assert ours.cookie_secure is False
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
