"""The dashboard's own table: server-side sign-in sessions.

It shares the collector's SQLModel metadata, so the collector's ``create_all`` and migrations see
it. Only a hash of the session token is stored: a copy of the database cannot be replayed as a
cookie.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from collector.store.models import utcnow

__all__ = ["DashboardSession"]


class DashboardSession(SQLModel, table=True):
    __tablename__ = "dashboard_session"

    token_hash: str = Field(primary_key=True, max_length=64)  # SHA-256 hex of the cookie value
    account_id: int = Field(foreign_key="account.id", index=True)
    csrf: str = Field(max_length=64)  # the synchroniser token every form of this session carries
    #: False between the password and the TOTP code, when the account has a second factor.
    verified: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    client: str = Field(default="", max_length=64)
