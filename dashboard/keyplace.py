"""Which collector instance holds a session's unlocked key: a cookie that names it.

An unlocked key lives only in the memory of the instance that unlocked it (dashboard.keysessions).
With several instances behind a load balancer, a keyholder's next request may land on another
one, or the instance that held the key may have restarted. This cookie lets the instance that
answers tell "your key is unlocked, but not here" from "your key is locked", and send the
keyholder to the unlock page with one line saying why, rather than an error page.

The cookie names an instance (random, per process) and a digest of the session it was set for;
it carries nothing secret and grants nothing: a forged one only shows the unlock page.
"""

from __future__ import annotations

import hashlib
import secrets

from fastapi import Request, Response

from dashboard.errors import KeyLocked
from dashboard.keysessions import KeyRing, UnlockedKey
from dashboard.security import same_secret
from dashboard.sessions import SignedIn
from dashboard.settings import DashboardSettings

__all__ = [
    "ELSEWHERE",
    "INSTANCE",
    "KeyElsewhere",
    "forget",
    "held_elsewhere",
    "key_here",
    "remember",
]

INSTANCE = secrets.token_hex(8)  # this process
ELSEWHERE = ("Your key was unlocked on another of this service's servers (or that server has "
             "restarted), and a key never leaves the server that unlocked it: unlock it again "
             "here to carry on.")


class KeyElsewhere(KeyLocked):
    """The session's key is unlocked on another instance; a browser is sent to unlock here."""

    code = "key-elsewhere"

    def __init__(self) -> None:
        super(KeyLocked, self).__init__(ELSEWHERE)


def _name(settings: DashboardSettings) -> str:
    return "__Host-vigil-key" if settings.cookie_secure else "vigil-key"


def _value(session_id: str, instance: str = INSTANCE) -> str:
    return f"{instance}.{hashlib.sha256(session_id.encode()).hexdigest()[:16]}"


def remember(response: Response, settings: DashboardSettings, who: SignedIn) -> None:
    """After an unlock: this instance holds ``who``'s key."""
    response.set_cookie(_name(settings), _value(who.session_id), path="/",
                        secure=settings.cookie_secure, httponly=True, samesite="strict")


def forget(response: Response, settings: DashboardSettings) -> None:
    """After a lock or sign-out."""
    response.delete_cookie(_name(settings), path="/", secure=settings.cookie_secure,
                           httponly=True, samesite="strict")


def held_elsewhere(request: Request, settings: DashboardSettings, ring: KeyRing,
                   who: SignedIn) -> bool:
    """Whether ``who``'s key was unlocked in this session by another instance (or by this one
    before a restart) and is not held here."""
    value = request.cookies.get(_name(settings), "")
    instance, _, _session = value.partition(".")
    if not instance or ring.peek(who.session_id):
        return False
    same_session = same_secret(value, _value(who.session_id, instance))
    return same_session and not same_secret(instance, INSTANCE)


def key_here(request: Request, settings: DashboardSettings, ring: KeyRing,
             who: SignedIn) -> UnlockedKey | None:
    """The session's key if this instance holds it; None if it is locked; KeyElsewhere if
    another instance holds it (a page that would open captures asks to unlock here)."""
    key = ring.get(who.session_id)
    if key is None and held_elsewhere(request, settings, ring, who):
        raise KeyElsewhere()
    return key
