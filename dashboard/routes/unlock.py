"""Unlocking a keyholder's key for this session, and locking it again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from collector.audit import checkpoint, record
from collector.store.models import Keyholder
from core.errors import KeyFileError, WrongPassword
from dashboard import keyplace
from dashboard.auditing import audit
from dashboard.deps import DashSettingsDep, KeyholderDep, KeyRingDep, SessionDep
from dashboard.errors import BackedOff, BadCredentials, BadRequest, NotAReader
from dashboard.keyholders import is_reader
from dashboard.keyplace import ELSEWHERE, held_elsewhere
from dashboard.rendering import render
from dashboard.routes._common import client_address, key_password_guess, safe_next
from dashboard.sessions import SignedIn

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])


def _keyholder(db: SessionDep, who: SignedIn) -> Keyholder:
    keyholder = db.get(Keyholder, who.account.keyholder_id) if who.account.keyholder_id else None
    if keyholder is None or keyholder.key_file is None or keyholder.retired_at is not None:
        raise BadRequest("Your account has no keyholder key; ask the technician to link one.")
    return keyholder


@router.get("/unlock", include_in_schema=False)
def unlock_form(request: Request, settings: DashSettingsDep, ring: KeyRingDep,
                who: KeyholderDep) -> Response:
    return render(
        request, "unlock.html", who, error="", next=safe_next(request.query_params.get("next"), ""),
        elsewhere=ELSEWHERE if held_elsewhere(request, settings, ring, who) else "",
    )


@router.post("/unlock", include_in_schema=False)
def unlock(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    ring: KeyRingDep,
    who: KeyholderDep,
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    from core.keys import KeyFile

    address = client_address(request)
    keyholder = _keyholder(db, who)
    if not is_reader(db, keyholder):
        # Before the password is tried: a key the keyholders never signed opens nothing, and
        # must not become the dashboard's way of reading or of anchoring the audit chain.
        audit(db, who.username, "key.unlock_refused", keyholder.fingerprint,
              reason="not among the signed readers", address=address)
        return render(request, "unlock.html", who, status_code=NotAReader.status,
                      error=str(NotAReader()), next=next)
    unlocked: list[Any] = []

    def passes() -> bool:
        try:
            unlocked.append(KeyFile.from_bytes(keyholder.key_file or b"").unlock(password))
        except WrongPassword:
            return False
        return True

    try:
        key_password_guess(db, who, keyholder.fingerprint, address, settings, passes,
                           "key.unlock_failed", "That password does not unlock your key.")
    except (BackedOff, BadCredentials) as exc:
        return render(request, "unlock.html", who, status_code=exc.status, error=str(exc), next=next)
    except KeyFileError as exc:
        raise BadRequest(f"Your key file cannot be used: {exc}") from exc
    key = unlocked[0]
    ring.put(who.session_id, key, keyholder.id or 0, keyholder.fingerprint)
    record(db, who.username, "key.unlock", keyholder.fingerprint,
           {"address": address, "idle_timeout": settings.key_idle_timeout})
    # The unlocked key signs the audit chain's head (the unlock entry included): a checkpoint
    # the database cannot forge, so a later rewrite or truncation of the chain shows.
    checkpoint(db, key, who.username, "unlock")
    db.commit()
    response = RedirectResponse(safe_next(next, "/triage"), status_code=303)
    keyplace.remember(response, settings, who)  # another instance can then say where it is
    return response


@router.post("/lock", include_in_schema=False)
def lock(db: SessionDep, settings: DashSettingsDep, ring: KeyRingDep,
         who: KeyholderDep) -> Response:
    ring.drop(who.session_id)
    audit(db, who.username, "key.lock", who.username)
    response = RedirectResponse("/triage", status_code=303)
    keyplace.forget(response, settings)
    return response
