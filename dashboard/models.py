"""The dashboard's own tables: server-side sign-in sessions and the last TOTP step used.

They share the collector's SQLModel metadata, so the collector's ``create_all`` and migrations see
it. Only a hash of the session token is stored: a copy of the database cannot be replayed as a
cookie.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from collector.store.models import utcnow

__all__ = ["DashboardSession", "TotpStep"]


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


class TotpStep(SQLModel, table=True):
    """The last TOTP time step accepted for an account: a code is good once, so one read over a
    shoulder or phished and relayed cannot be used again, even within its 90-second window."""

    __tablename__ = "dashboard_totp_step"

    account_id: int = Field(primary_key=True, foreign_key="account.id")
    step: int  # Unix time // 30 of the accepted code
