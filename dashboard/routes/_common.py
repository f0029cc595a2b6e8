"""Small helpers the route modules share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlmodel import Session

from dashboard.auditing import audit, audit_backoffs
from dashboard.errors import BadCredentials
from dashboard.security import Limits, guarded_attempt
from dashboard.sessions import SignedIn

__all__ = ["client_address", "home_for", "key_password_guess", "safe_next"]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: an open redirect would make the sign-in page a phishing aid."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def home_for(role: str) -> str:
    return {"technician": "/triage", "head": "/review", "governor": "/reports"}.get(role, "/login")


def key_password_guess(db: Session, who: SignedIn, fingerprint: str, address: str,
                       settings: Any, passes: Callable[[], bool], failed_action: str,
                       message: str) -> None:
    """One guess of a keyholder's key password (unlocking, or signing a change), under the
    unlock back-off: the same password, so the same limit wherever it is typed. A wrong one is
    audited as ``failed_action`` and raises BadCredentials(message); BackedOff passes through."""
    tried = guarded_attempt(db, "unlock", who.username, address, Limits.from_settings(settings),
                            passes)
    if not tried:
        audit(db, who.username, failed_action, fingerprint)
        audit_backoffs(db, who.username, "key.unlock_backoff", fingerprint, tried.backoffs)
        raise BadCredentials(message)
