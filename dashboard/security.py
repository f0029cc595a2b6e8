"""Passwords, CSRF tokens, sign-in and unlock back-offs, TOTP, and the security headers.

Failed attempts live in the LoginAttempt table rather than in memory, so that several collector
instances behind one load balancer enforce the same back-off. Guesses are slowed, never locked
out: per client address hard (exponential, capped at minutes), per account gently (capped at
about a minute), so a stranger hammering from one address cannot keep a keyholder out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from collector.store.models import LoginAttempt, utcnow
from dashboard.errors import BackedOff

__all__ = [
    "SECURITY_HEADERS",
    "Attempt",
    "Backoff",
    "Limits",
    "aware",
    "backoff_left",
    "clear_failures",
    "ensure_not_backed_off",
    "guarded_attempt",
    "hash_password",
    "new_token",
    "new_totp_secret",
    "same_secret",
    "token_hash",
    "totp_step",
    "verify_password",
]

# Argon2id with the library's RFC 9106 "low memory" profile: ~50 ms on a school server.
_hasher = PasswordHasher()
# Verified against when the username does not exist, so that a wrong username costs the same
# time as a wrong password and cannot be told apart by timing.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'; img-src 'self' data: blob:; style-src 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Strict-Transport-Security": "max-age=31536000",
}


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always does the same Argon2 work, even without a hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(expected: str | None, provided: str | None) -> bool:
    """Constant-time comparison of two secrets; a missing side never matches."""
    if not expected or not provided:
        return False
    return hmac.compare_digest(expected.encode(), provided.encode())


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off for one kind of subject (a client address, or an account).

    After ``free`` failures within the window, each further ``every`` failures double the wait
    (starting at ``base`` seconds) before the next attempt is even tried, up to ``cap`` seconds.
    """

    free: int
    cap: int
    every: int = 1
    base: int = 1

    def wait(self, failures: int) -> int:
        """Seconds to wait after the last of ``failures`` failures before another try."""
        if failures < self.free:
            return 0
        doublings = min((failures - self.free) // max(1, self.every), 40)
        return int(min(self.cap, self.base * 2**doublings))


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-source and per-account back-offs, and how long a failure is remembered (seconds)."""

    source: Backoff
    account: Backoff
    window: int

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            source=Backoff(free=settings.source_free_failures, cap=settings.source_max_wait),
            account=Backoff(free=settings.account_free_failures, cap=settings.account_max_wait,
                            every=settings.account_doubling_every),
            window=settings.attempt_window,
        )


@dataclass(slots=True)
class Attempt:
    """The outcome of a guess that was tried: truthy when it passed. ``backoffs`` names the
    back-offs this failure started or lengthened, as (scope, seconds), for the audit log."""

    ok: bool
    backoffs: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def _subjects(account: str, source: str | None) -> list[tuple[str, str]]:
    """(scope, subject) pairs; the account comes first (a success clears its failures)."""
    pairs = [("account", f"user:{account.lower()}"[:128])]
    if source is not None:
        pairs.append(("source", f"addr:{source}"[:128]))
    return pairs


def _failures(
    db: Session, kind: str, subject: str, since: datetime, exclude: Iterable[int] = ()
) -> tuple[int, datetime | None]:
    query = select(func.count(), func.max(LoginAttempt.at)).where(
        LoginAttempt.kind == kind, LoginAttempt.subject == subject, LoginAttempt.at >= since
    )
    ids = list(exclude)
    if ids:
        query = query.where(LoginAttempt.id.not_in(ids))  # type: ignore[union-attr]
    count, last = db.exec(query).one()
    return int(count), (aware(last) if last is not None else None)


def backoff_left(
    db: Session, kind: str, account: str, source: str | None, limits: Limits,
    now: datetime | None = None, exclude: Iterable[int] = (),
) -> tuple[str, int] | None:
    """The longest back-off in force as (scope, whole seconds left), or None when free to try."""
    now = now or utcnow()
    since = now - timedelta(seconds=limits.window)
    ids = list(exclude)
    worst: tuple[str, int] | None = None
    for scope, subject in _subjects(account, source):
        count, last = _failures(db, kind, subject, since, ids)
        wait = (limits.source if scope == "source" else limits.account).wait(count)
        if wait <= 0 or last is None:
            continue
        left = (last + timedelta(seconds=wait) - now).total_seconds()
        if left > 0 and (worst is None or left > worst[1]):
            worst = (scope, math.ceil(left))
    return worst


def ensure_not_backed_off(
    db: Session, kind: str, account: str, source: str | None, limits: Limits,
    now: datetime | None = None, exclude: Iterable[int] = (),
) -> None:
    """Raise BackedOff when the source or the account must still wait before another try."""
    left = backoff_left(db, kind, account, source, limits, now, exclude)
    if left is not None:
        raise BackedOff(kind, *left)


def clear_failures(db: Session, kind: str, subject: str) -> None:
    db.exec(delete(LoginAttempt).where(LoginAttempt.kind == kind, LoginAttempt.subject == subject))
    db.commit()


def guarded_attempt(
    db: Session,
    kind: str,
    account: str,
    source: str | None,
    limits: Limits,
    passes: Callable[[], bool],
    clock: Callable[[], datetime] = utcnow,
) -> Attempt:
    """One rate-limited guess (a password, a code, a key password) for ``account`` from
    ``source`` (the client address; None when the source does not matter).

    Raises BackedOff without trying when the source or the account is in a back-off, so a right
    password during a back-off tells the guesser nothing. A failure counts against both the
    source and the account, a success clears the account's failures (not the source's).

    First a read-only check, so a refused guess writes nothing: a stranger hammering during
    their back-off leaves no rows, and cannot keep the account's own back-off running. Then the
    guess is recorded as a failure *before* it is checked, and the back-off is read again after
    that commit, without our own rows: of parallel guesses, the last to commit sees every other
    one that went ahead, so once failures reach the free allowance no two parallel guesses are
    both tried (checking first and recording after let twenty parallel guesses through a limit
    of five). A refused or successful guess takes its records back.
    """
    ensure_not_backed_off(db, kind, account, source, limits, clock())
    subjects = _subjects(account, source)
    reserved = _reserve(db, kind, [subject for _, subject in subjects], clock())
    try:
        ensure_not_backed_off(db, kind, account, source, limits, clock(), exclude=reserved)
    except BackedOff:
        _release(db, reserved)
        raise
    ok = passes()
    if ok:
        _release(db, reserved)
        clear_failures(db, kind, subjects[0][1])
        return Attempt(True)
    # The wait runs from the end of the failed check (a key's KDF can take a second).
    now = clock()
    db.exec(update(LoginAttempt).where(LoginAttempt.id.in_(reserved)).values(at=now))  # type: ignore[union-attr]
    db.commit()
    since = now - timedelta(seconds=limits.window)
    started = []
    for scope, subject in subjects:
        count, _ = _failures(db, kind, subject, since)
        wait = (limits.source if scope == "source" else limits.account).wait(count)
        if wait > 0:
            started.append((scope, wait))
    return Attempt(False, started)


def _reserve(db: Session, kind: str, subjects: Iterable[str], at: datetime) -> list[int]:
    rows = [LoginAttempt(kind=kind, subject=subject[:128], at=at) for subject in subjects]
    db.add_all(rows)
    db.commit()
    return [row.id for row in rows if row.id is not None]


def _release(db: Session, ids: list[int]) -> None:
    db.exec(delete(LoginAttempt).where(LoginAttempt.id.in_(ids)))  # type: ignore[union-attr]
    db.commit()


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The 30-second time step whose code ``code`` is (this one or either neighbour, for clock
    drift), or None. The caller records the step so that a code is accepted only once."""
    import pyotp

    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    for offset in (1, 0, -1):  # newest first: a code that fits two steps claims the later
        matched = hmac.compare_digest(totp.at(at, counter_offset=offset), code)
        if matched:
            return totp.timecode(at) + offset
    return None


def new_totp_secret() -> str:
    import pyotp

    return pyotp.random_base32()
