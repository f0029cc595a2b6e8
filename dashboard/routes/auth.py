"""Sign-in (password, then an optional TOTP code) and sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import select

from collector.admin import PASSWORD_FROM_KEY
from collector.store.models import Account
from dashboard import keyplace, sessions
from dashboard.accounts import claim_totp_step, first_sign_in_unlocks, store_first_password
from dashboard.auditing import audit, audit_backoffs
from dashboard.deps import DashSettingsDep, KeyRingDep, MaybeSignedInDep, SessionDep
from dashboard.errors import BackedOff, BadCredentials, NotSignedIn
from dashboard.rendering import render
from dashboard.routes._common import client_address, home_for, safe_next
from dashboard.security import (
    Limits,
    guarded_attempt,
    new_token,
    totp_step,
    verify_password,
)
from dashboard.settings import DashboardSettings

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

_WRONG = "Wrong username or password."


def _login_page(
    request: Request, settings: DashboardSettings, error: str = "", status_code: int = 200
) -> Response:
    _, pre_cookie = sessions.cookie_names(settings)
    token = request.cookies.get(pre_cookie) or new_token()
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        pre_csrf=token,
        error=error,
        next=safe_next(request.query_params.get("next"), ""),
    )
    response.set_cookie(
        pre_cookie, token, secure=settings.cookie_secure, httponly=True, samesite="strict", path="/"
    )
    return response


def _set_session_cookie(response: Response, settings: DashboardSettings, token: str) -> None:
    cookie, _ = sessions.cookie_names(settings)
    response.set_cookie(
        cookie,
        token,
        max_age=settings.session_max_age,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
        path="/",
    )


@router.get("/", include_in_schema=False)
def home(who: MaybeSignedInDep) -> Response:
    if who is None or not who.session.verified:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_for(who.role), status_code=303)


@router.get("/login", include_in_schema=False)
def login_form(request: Request, settings: DashSettingsDep, who: MaybeSignedInDep) -> Response:
    if who is not None and who.session.verified:
        return RedirectResponse(home_for(who.role), status_code=303)
    return _login_page(request, settings)


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    username = username.strip()
    address = client_address(request)
    account = db.exec(select(Account).where(Account.username == username)).first()

    def passes() -> bool:
        if account is not None and account.password_hash == PASSWORD_FROM_KEY:
            ok = first_sign_in_unlocks(db, account, password)
        else:
            ok = verify_password(account.password_hash if account else None, password)
        return ok and account is not None and account.disabled_at is None

    try:
        ok = guarded_attempt(db, "login", username, address, Limits.from_settings(settings),
                             passes)
    except BackedOff as exc:
        return _login_page(request, settings, str(exc), status_code=429)
    if not ok or account is None:
        audit(db, f"anonymous@{address}", "signin.failed", username[:64])
        audit_backoffs(db, f"anonymous@{address}", "signin.backoff", username[:64], ok.backoffs)
        return _login_page(request, settings, _WRONG, status_code=401)
    if account.password_hash == PASSWORD_FROM_KEY:
        store_first_password(db, account, password)
        audit(db, account.username, "signin.first", account.username, address=address)
    token, _ = sessions.start(db, account, address, verified=not account.totp_secret)
    if account.totp_secret:
        response: Response = RedirectResponse(
            f"/login/totp?next={safe_next(next, '')}", status_code=303
        )
    else:
        audit(db, account.username, "signin", account.username, address=address)
        response = RedirectResponse(safe_next(next, home_for(account.role)), status_code=303)
    _set_session_cookie(response, settings, token)
    return response


@router.get("/login/totp", include_in_schema=False)
def totp_form(request: Request, who: MaybeSignedInDep) -> Response:
    if who is None:
        return RedirectResponse("/login", status_code=303)
    return render(
        request, "totp.html", who, error="", next=safe_next(request.query_params.get("next"), "")
    )


@router.post("/login/totp", include_in_schema=False)
def totp_check(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    who: MaybeSignedInDep,
    code: Annotated[str, Form(max_length=16)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if who is None or not who.account.totp_secret:
        raise NotSignedIn()
    secret, account_id = who.account.totp_secret, who.account.id or 0
    address = client_address(request)

    def fresh_code() -> bool:
        step = totp_step(secret, code)
        return step is not None and claim_totp_step(db, account_id, step)

    try:
        tried = guarded_attempt(db, "login", who.username, address,
                                Limits.from_settings(settings), fresh_code)
        if not tried:
            audit_backoffs(db, who.username, "signin.backoff", who.username, tried.backoffs)
            raise BadCredentials("That code is not right or was already used: wait for the "
                                 "next code, and check your authenticator's clock.")
    except (BackedOff, BadCredentials) as exc:
        return render(request, "totp.html", who, status_code=exc.status, error=str(exc), next=next)
    who.session.verified = True
    db.add(who.session)
    audit(db, who.username, "signin", who.username, address=address, totp=True)
    return RedirectResponse(safe_next(next, home_for(who.role)), status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(
    db: SessionDep, settings: DashSettingsDep, ring: KeyRingDep, who: MaybeSignedInDep
) -> Response:
    response = RedirectResponse("/login", status_code=303)
    if who is not None:
        ring.drop(who.session_id)
        username = who.username
        sessions.end(db, who.session_id)
        audit(db, username, "signout", username)
    cookie, _ = sessions.cookie_names(settings)
    response.delete_cookie(cookie, path="/", secure=settings.cookie_secure, httponly=True)
    keyplace.forget(response, settings)
    return response
