"""FastAPI dependencies: who is asking, what their role allows, their unlocked key, CSRF.

Every dashboard route takes one of the role aliases below, so the role check happens on the
server for every request; templates only hide what the server would refuse anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from collector.deps import BlobsDep, SessionDep, SettingsDep
from collector.store.models import AccountRole
from dashboard import sessions
from dashboard.audit_chain import ChainVerifier
from dashboard.errors import CsrfRejected, Forbidden, KeyLocked, NotSignedIn
from dashboard.keyplace import key_here
from dashboard.keysessions import KeyRing, UnlockedKey
from dashboard.security import same_secret, token_hash
from dashboard.sessions import SignedIn
from dashboard.settings import DashboardSettings

__all__ = [
    "KEYHOLDER_ROLES",
    "AnyRoleDep",
    "BlobsDep",
    "ChainVerifierDep",
    "DashSettingsDep",
    "HeadDep",
    "KeyRingDep",
    "KeyholderDep",
    "MaybeSignedInDep",
    "SessionDep",
    "SettingsDep",
    "TechnicianDep",
    "Unlocked",
    "UnlockedDep",
    "check_csrf",
]

KEYHOLDER_ROLES = frozenset({AccountRole.TECHNICIAN.value, AccountRole.HEAD.value})
ALL_ROLES = KEYHOLDER_ROLES | {AccountRole.GOVERNOR.value}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its
# thread pool, and each hop there costs more than the work itself on a busy server.


async def _dash_settings(request: Request, settings: SettingsDep) -> DashboardSettings:
    cached = getattr(request.app.state, "dashboard_settings", None)
    if cached is None:
        cached = DashboardSettings.from_collector(settings)
        request.app.state.dashboard_settings = cached
    return cached


DashSettingsDep = Annotated[DashboardSettings, Depends(_dash_settings)]


async def _keyring(request: Request, settings: DashSettingsDep) -> KeyRing:
    ring = getattr(request.app.state, "dashboard_keys", None)
    if ring is None:
        ring = KeyRing(settings.key_idle_timeout)
        request.app.state.dashboard_keys = ring
    return ring


KeyRingDep = Annotated[KeyRing, Depends(_keyring)]


async def _chain_verifier(request: Request) -> ChainVerifier:
    verifier = getattr(request.app.state, "dashboard_chain", None)
    if verifier is None:  # install() makes it; an app assembled otherwise gets one here
        verifier = request.app.state.dashboard_chain = ChainVerifier()
    return verifier


ChainVerifierDep = Annotated[ChainVerifier, Depends(_chain_verifier)]


def _maybe_signed_in(
    request: Request, db: SessionDep, settings: DashSettingsDep, ring: KeyRingDep
) -> SignedIn | None:
    sessions.ensure_table(db.get_bind())  # type: ignore[arg-type]
    cookie, _ = sessions.cookie_names(settings)
    who = sessions.find(db, request.cookies.get(cookie), settings)
    token = request.cookies.get(cookie)
    if who is None and token:  # an expired session must not leave its key behind
        ring.drop(token_hash(token))
    request.state.dashboard_who = who  # for error pages rendered outside the route
    # The unapproved-keys banner is asked for only when a keyholder page is rendered.
    request.state.dashboard_unapproved = lambda: _unapproved(db)
    request.state.dashboard_scope_label = lambda: _scope_label(db, who)
    return who


def _unapproved(db: Any) -> int:
    from dashboard.keyholders import unapproved_count

    return unapproved_count(db)


def _scope_label(db: Any, who: SignedIn | None) -> str:
    from dashboard.scope import scope_label

    return scope_label(db, who.account.school_id, who.account.years) if who is not None else ""


MaybeSignedInDep = Annotated[SignedIn | None, Depends(_maybe_signed_in)]


def _require(roles: frozenset[str]) -> Callable[..., Awaitable[SignedIn]]:
    async def dependency(who: MaybeSignedInDep) -> SignedIn:
        if who is None or not who.session.verified:
            raise NotSignedIn()
        if who.role not in roles:
            raise Forbidden()
        return who

    return dependency


AnyRoleDep = Annotated[SignedIn, Depends(_require(ALL_ROLES))]
KeyholderDep = Annotated[SignedIn, Depends(_require(KEYHOLDER_ROLES))]
TechnicianDep = Annotated[SignedIn, Depends(_require(frozenset({AccountRole.TECHNICIAN.value})))]
HeadDep = Annotated[SignedIn, Depends(_require(frozenset({AccountRole.HEAD.value})))]


class Unlocked:
    """A keyholder with their key unlocked in this session."""

    def __init__(self, who: SignedIn, key: UnlockedKey) -> None:
        self.who = who
        self.key = key

    @property
    def username(self) -> str:
        return self.who.username

    @property
    def private_key(self) -> Any:
        return self.key.key


async def _unlocked(request: Request, who: KeyholderDep, ring: KeyRingDep,
                    settings: DashSettingsDep) -> Unlocked:
    key = key_here(request, settings, ring, who)  # KeyElsewhere: unlocked on another instance
    if key is None:
        raise KeyLocked()
    return Unlocked(who, key)


UnlockedDep = Annotated[Unlocked, Depends(_unlocked)]


async def check_csrf(request: Request, who: MaybeSignedInDep, settings: DashSettingsDep) -> None:
    """Refuse any unsafe request whose token does not match its session (or pre-sign-in cookie)."""
    if request.method not in UNSAFE_METHODS:
        return
    provided = request.headers.get("x-csrf-token")
    if provided is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf")
            provided = value if isinstance(value, str) else None
    _, pre_cookie = sessions.cookie_names(settings)
    # A half-signed-in session (awaiting its TOTP code) may still post the sign-in form.
    expected = [who.csrf] if who is not None else []
    if who is None or not who.session.verified:
        expected.append(request.cookies.get(pre_cookie) or "")
    if not any(same_secret(token, provided) for token in expected):
        raise CsrfRejected()
