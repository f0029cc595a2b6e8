"""Passwords, CSRF tokens, sign-in and unlock rate limits, TOTP, and the security headers.

Failed attempts live in the LoginAttempt table rather than in memory, so that several collector
instances behind one load balancer enforce the same limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlmodel import Session, select

from collector.store.models import LoginAttempt, utcnow
from dashboard.errors import LockedOut

__all__ = [
    "SECURITY_HEADERS",
    "aware",
    "clear_failures",
    "ensure_not_locked",
    "guarded_attempt",
    "hash_password",
    "new_token",
    "new_totp_secret",
    "record_failure",
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


def _failures(db: Session, kind: str, subject: str, since: datetime) -> tuple[int, datetime | None]:
    row = db.exec(
        select(func.count(), func.min(LoginAttempt.at)).where(
            LoginAttempt.kind == kind, LoginAttempt.subject == subject, LoginAttempt.at >= since
        )
    ).one()
    return int(row[0]), row[1]


def ensure_not_locked(
    db: Session, kind: str, subjects: Iterable[str], max_failures: int, window: int
) -> None:
    """Raise LockedOut when any subject (a username, a client address) has too many failures."""
    now = utcnow()
    since = now - timedelta(seconds=window)
    for subject in subjects:
        count, oldest = _failures(db, kind, subject, since)
        if count >= max_failures:
            free_at = aware(oldest or now) + timedelta(seconds=window)
            minutes = max(1, int((free_at - now).total_seconds() // 60) + 1)
            what = "sign-ins" if kind == "login" else "unlock attempts"
            raise LockedOut(
                f"Too many failed {what}: locked for {minutes} more minute(s). "
                "Ask another keyholder or the technician if you have forgotten your password."
            )


def record_failure(db: Session, kind: str, subjects: Iterable[str]) -> None:
    for subject in subjects:
        db.add(LoginAttempt(kind=kind, subject=subject[:128]))
    db.commit()


def clear_failures(db: Session, kind: str, subject: str) -> None:
    db.exec(delete(LoginAttempt).where(LoginAttempt.kind == kind, LoginAttempt.subject == subject))
    db.commit()


def guarded_attempt(
    db: Session,
    kind: str,
    subjects: list[str],
    max_failures: int,
    window: int,
    passes: Callable[[], bool],
) -> bool:
    """One rate-limited guess (a password, a code, a key password).

    Raises LockedOut without trying when a subject is locked; a failure counts against every
    subject, a success clears the first (the account's own count).

    The guess is recorded as a failure *before* it is checked, and the count is read after that
    commit: of parallel guesses, the last to count sees every other one that went ahead, so no
    more than ``max_failures`` are ever checked (checking first and recording after let twenty
    parallel guesses through a limit of five). A refused or successful guess takes its record back.
    """
    reserved = _reserve(db, kind, subjects)
    try:
        ensure_not_locked(db, kind, subjects, max_failures + 1, window)  # + 1: our own record
    except LockedOut:
        _release(db, reserved)
        raise
    ok = passes()
    if ok:
        _release(db, reserved)
        clear_failures(db, kind, subjects[0])
    return ok


def _reserve(db: Session, kind: str, subjects: Iterable[str]) -> list[int]:
    rows = [LoginAttempt(kind=kind, subject=subject[:128]) for subject in subjects]
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
