"""The signed-in user's own account: change the password, turn the TOTP second factor on or off."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard.accounts import MIN_PASSWORD_LENGTH, claim_totp_step, set_password
from dashboard.auditing import audit, audit_backoffs
from dashboard.deps import AnyRoleDep, DashSettingsDep, KeyRingDep, SessionDep
from dashboard.errors import BadCredentials, BadRequest, LockedOut
from dashboard.rendering import render
from dashboard.routes._common import client_address
from dashboard.security import (
    Limits,
    guarded_attempt,
    new_totp_secret,
    totp_step,
    verify_password,
)
from dashboard.sessions import SignedIn
from dashboard.settings import DashboardSettings

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

Password = Annotated[str, Form(max_length=1024)]


# A new secret is shown to the user and carried back by the confirm form (under its CSRF token),
# so setting up needs no server-side state; only a code from it turns it on.
TOTP_SECRET = re.compile(r"^[A-Z2-7]{32}$")


def _page(
    request: Request, who: SignedIn, status_code: int = 200, pending: str = "", **extra: object
) -> Response:
    context: dict[str, object] = {"error": "", "done": "", "otpauth": "", "pending": pending}
    if pending:
        import pyotp

        context["otpauth"] = pyotp.TOTP(pending).provisioning_uri(
            name=who.username, issuer_name="Vigil"
        )
    context.update(extra)
    return render(request, "account.html", who, status_code=status_code,
                  min_length=MIN_PASSWORD_LENGTH, **context)


def _check_password(db: SessionDep, settings: DashboardSettings, who: SignedIn, password: str,
                    address: str) -> None:
    """The current password, under the same back-off as sign-in (it is a password guess too)."""
    tried = guarded_attempt(db, "login", who.username, address, Limits.from_settings(settings),
                            lambda: verify_password(who.account.password_hash, password))
    if not tried:
        audit_backoffs(db, who.username, "signin.backoff", who.username, tried.backoffs)
        raise BadCredentials("Your current password is not right.")


@router.get("/account", include_in_schema=False)
def account(request: Request, who: AnyRoleDep) -> Response:
    return _page(request, who)


@router.post("/account/password", include_in_schema=False)
def change_password(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    ring: KeyRingDep,
    who: AnyRoleDep,
    current: Password,
    new: Password,
    confirm: Password,
) -> Response:
    try:
        _check_password(db, settings, who, current, client_address(request))
        if new != confirm:
            raise BadRequest("The two new passwords differ.")
        set_password(db, who.username, new)  # also ends every session of this account
    except (LockedOut, BadCredentials, BadRequest) as exc:
        return _page(request, who, status_code=exc.status, error=str(exc))
    ring.drop(who.session_id)
    audit(db, who.username, "account.password_changed", who.username)
    return RedirectResponse("/login", status_code=303)


@router.post("/account/totp/start", include_in_schema=False)
def totp_start(request: Request, who: AnyRoleDep) -> Response:
    return _page(request, who, pending=new_totp_secret())


@router.post("/account/totp/confirm", include_in_schema=False)
def totp_confirm(
    request: Request,
    db: SessionDep,
    who: AnyRoleDep,
    secret: Annotated[str, Form(max_length=64)],
    code: Annotated[str, Form(max_length=16)],
) -> Response:
    if not TOTP_SECRET.match(secret):
        return _page(request, who, status_code=400, error="Start the set-up again.")
    step = totp_step(secret, code)
    # The confirming code is claimed too, so it cannot be replayed at the next sign-in.
    if step is None or not claim_totp_step(db, who.account.id or 0, step):
        return _page(request, who, status_code=400, pending=secret,
                     error="That code does not match or was already used; check the key you "
                           "entered and your clock.")
    who.account.totp_secret = secret
    db.add(who.account)
    audit(db, who.username, "account.totp_enabled", who.username)
    return _page(request, who, done="The second factor is on: sign-ins now ask for a code.")


@router.post("/account/totp/disable", include_in_schema=False)
def totp_disable(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    who: AnyRoleDep,
    current: Password,
) -> Response:
    try:
        _check_password(db, settings, who, current, client_address(request))
    except (LockedOut, BadCredentials) as exc:
        return _page(request, who, status_code=exc.status, error=str(exc))
    who.account.totp_secret = None
    db.add(who.account)
    audit(db, who.username, "account.totp_disabled", who.username)
    return _page(request, who, done="The second factor is off.")
