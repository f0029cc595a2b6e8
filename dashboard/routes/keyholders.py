"""Keyholders: who can read (as the keyholders signed it), the change waiting for a signature,
adding a keyholder from the key they made on their own machine, removing and rejecting, and
signing the change with one's own key and password.

Every route is for keyholder accounts (head and technician); governors get 403. Names shown come
from uploaded files and are escaped by the templates like any other text. The keyholders read
every school's captures, so changing them (adding, removing, rejecting, signing) is for
trust-wide accounts only; a school's head or technician sees who can read and asks the trust.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from collector.errors import CollectorError
from collector.trust_root import proposed_change
from core.errors import WrongPassword
from dashboard.deps import DashSettingsDep, KeyholderDep, SessionDep
from dashboard.errors import BackedOff, BadCredentials, BadRequest, DashboardError
from dashboard.keyholders import (
    MAX_KEY_BYTES,
    overview,
    parse_key_upload,
    reject_proposal,
    signer_for,
)
from dashboard.rendering import render
from dashboard.routes._common import client_address, key_password_guess
from dashboard.scope import trust_wide_only
from dashboard.sessions import SignedIn

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

# Changing who reads every school's captures: trust-wide accounts only.
TRUST_WIDE = trust_wide_only("Who can read every school's captures")
UNAPPROVED_WARNING = ("No keyholder has approved this key. It cannot read anything until a "
                      "keyholder signs it. If you did not expect it, reject it.")


def _page(request: Request, db: Session, who: SignedIn, status_code: int = 200,
          **extra: Any) -> Response:
    view = overview(db)
    context: dict[str, Any] = {
        "view": view,
        "warning": UNAPPROVED_WARNING,
        "add_error": "",
        "sign_error": "",
        "done": request.query_params.get("done", "")[:40],
        "max_kib": MAX_KEY_BYTES // 1024,
        "trust_wide": who.account.school_id is None,
    }
    context.update(extra)
    return render(request, "keyholders.html", who, status_code=status_code, **context)


@router.get("/keyholders", include_in_schema=False)
def keyholders_page(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    return _page(request, db, who)


async def _read_upload(upload: UploadFile | None) -> bytes:
    if upload is None:
        return b""
    data = await upload.read(MAX_KEY_BYTES + 1)  # never more than a key could be
    await upload.close()
    return data


@router.post("/keyholders/add", include_in_schema=False, dependencies=[TRUST_WIDE])
async def add_keyholder(request: Request, who: KeyholderDep,
                        key: Annotated[UploadFile | None, File()] = None) -> Response:
    data = await _read_upload(key)
    # The rest touches the database and the KDF-free parser only; it runs off the event loop.
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_add, request, who, data)


def _add(request: Request, who: SignedIn, data: bytes) -> Response:
    from collector.admin import add_keyholder_key

    database = request.app.state.db
    with database.session() as db:
        try:
            key = parse_key_upload(data)
            holder = add_keyholder_key(database, key, actor=who.username)
        except BadRequest as exc:
            return _page(request, db, who, status_code=exc.status, add_error=str(exc))
        except CollectorError as exc:  # a duplicate name or key, a recovery key's private half
            return _page(request, db, who, status_code=400, add_error=f"{exc.detail}.")
        return RedirectResponse(f"/keyholders?done=added#fp-{holder.fingerprint}",
                                status_code=303)


@router.post("/keyholders/{keyholder_id}/remove", include_in_schema=False,
             dependencies=[TRUST_WIDE])
def remove_keyholder(keyholder_id: int, db: SessionDep, who: KeyholderDep) -> Response:
    """Propose a removal: the account is disabled at once (collector.keyholders.retire), the key
    stops being a reader when a keyholder signs the change."""
    from collector.keyholders import retire
    from dashboard.keyholders import active_row

    row = active_row(db, keyholder_id)
    try:
        retire(db, row.name, who.username)  # records keyholder.retire in the audit log
    except CollectorError as exc:
        db.rollback()
        raise BadRequest(f"{exc.detail}.") from exc
    db.commit()
    return RedirectResponse("/keyholders?done=removal#changes", status_code=303)


@router.post("/keyholders/{keyholder_id}/reject", include_in_schema=False,
             dependencies=[TRUST_WIDE])
def reject_keyholder(keyholder_id: int, db: SessionDep, who: KeyholderDep) -> Response:
    reject_proposal(db, keyholder_id, who.username)
    return RedirectResponse("/keyholders?done=rejected#changes", status_code=303)


@router.post("/keyholders/approve", include_in_schema=False, dependencies=[TRUST_WIDE])
def approve_change(
    request: Request,
    db: SessionDep,
    settings: DashSettingsDep,
    who: KeyholderDep,
    change: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    from collector.publishing import approve_as

    try:
        signer = signer_for(db, who, proposed_change(db))
    except DashboardError as exc:
        return _page(request, db, who, status_code=exc.status, sign_error=str(exc))
    address = client_address(request)
    outcome: list[Any] = []

    def passes() -> bool:
        # approve_as unlocks the key first: WrongPassword is a failed guess. Anything after the
        # unlock (a stale change code) proves the password right and is reported below.
        try:
            outcome.append(approve_as(request.app.state.db, request.app.state.settings,
                                      signer.name, password, change, who.username))
        except WrongPassword:
            return False
        except CollectorError as exc:
            outcome.append(exc)
        return True

    try:
        key_password_guess(db, who, signer.fingerprint, address, settings, passes,
                           "keyholder.approve_failed",
                           "That password does not unlock your key: the change was not signed.")
    except (BackedOff, BadCredentials) as exc:
        return _page(request, db, who, status_code=exc.status, sign_error=str(exc))
    result = outcome[0]
    if isinstance(result, CollectorError):
        db.rollback()
        return _page(request, db, who, status_code=409,
                     sign_error=f"Not signed: {result.detail}")
    return RedirectResponse(f"/keyholders?done=signed-{result.serial}#readers", status_code=303)
