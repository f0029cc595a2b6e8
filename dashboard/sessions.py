"""Server-side sign-in sessions: the cookie holds a random token, the database its hash.

Cookies are Secure, HttpOnly and SameSite=Strict, with the ``__Host-`` prefix so that no other
host or path can plant or shadow them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session

from collector.store.models import Account, utcnow
from dashboard.models import DashboardSession
from dashboard.security import aware, new_token, token_hash
from dashboard.settings import DashboardSettings

__all__ = ["SignedIn", "cookie_names", "end", "end_all_for", "ensure_table", "find", "start"]

# A session's last_seen is written at most this often, so reading pages does not mean writing rows.
_TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is making this request."""

    session: DashboardSession
    account: Account

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def session_id(self) -> str:
        return self.session.token_hash


_table_ready: set[int] = set()
_table_lock = threading.Lock()


def ensure_table(engine: Engine) -> None:
    """Create the dashboard_session table if the collector's migrations did not (once per engine)."""
    if id(engine) in _table_ready:
        return
    with _table_lock:
        if id(engine) not in _table_ready:
            DashboardSession.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
            _table_ready.add(id(engine))


def cookie_names(settings: DashboardSettings) -> tuple[str, str]:
    """(session cookie, pre-sign-in CSRF cookie)."""
    if settings.cookie_secure:
        return "__Host-vigil-session", "__Host-vigil-csrf"
    return "vigil-session", "vigil-csrf"


def start(db: Session, account: Account, client: str, verified: bool) -> tuple[str, DashboardSession]:
    """Create a session; returns the cookie value, which is never stored."""
    token = new_token()
    row = DashboardSession(
        token_hash=token_hash(token),
        account_id=account.id,  # type: ignore[arg-type]
        csrf=new_token(),
        verified=verified,
        client=client[:64],
    )
    db.add(row)
    db.commit()
    db.refresh(row)
    return token, row


def find(db: Session, token: str | None, settings: DashboardSettings) -> SignedIn | None:
    """The live session for this cookie value, or None (and expired ones are removed)."""
    if not token:
        return None
    row = db.get(DashboardSession, token_hash(token))
    if row is None:
        return None
    now = utcnow()
    idle = now - aware(row.last_seen) > timedelta(seconds=settings.session_idle_timeout)
    old = now - aware(row.created_at) > timedelta(seconds=settings.session_max_age)
    account = db.get(Account, row.account_id)
    if idle or old or account is None or account.disabled_at is not None:
        db.delete(row)
        db.commit()
        return None
    if now - aware(row.last_seen) > _TOUCH_EVERY:
        row.last_seen = now
        db.add(row)
        db.commit()
        db.refresh(row)
    return SignedIn(session=row, account=account)


def end(db: Session, session_id: str) -> None:
    row = db.get(DashboardSession, session_id)
    if row is not None:
        db.delete(row)
        db.commit()


def end_all_for(db: Session, account_id: int) -> None:
    db.exec(delete(DashboardSession).where(DashboardSession.account_id == account_id))
    db.commit()
