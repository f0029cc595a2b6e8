"""The roster page (issue 18): the technician imports pupils from the MIS (upload, preview,
confirm); the head looks; governors are refused. See dashboard/roster.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, delete, func, select

from collector.store.models import RosterImport, RosterPupil, utcnow
from dashboard import roster
from dashboard.auditing import audit
from dashboard.deps import KeyholderDep, SessionDep, TechnicianDep
from dashboard.errors import BadRequest, Conflict, NotFound
from dashboard.rendering import render
from dashboard.scope import trust_wide_only
from dashboard.sessions import SignedIn

__all__ = ["router"]

# A school-scoped account is refused (403) until this page is scoped per school (dashboard.scope).
router = APIRouter(tags=["dashboard"], dependencies=[trust_wide_only("The roster")])

SHOWN = 1000  # pupils listed on the page
PREVIEW_ROWS = 10  # first rows of each kind shown in a preview
PENDING_HOURS = 24  # an upload never confirmed is deleted after this


def _page(request: Request, db: SessionDep, who: SignedIn, **extra: object) -> Response:
    total = db.exec(select(func.count()).select_from(RosterPupil)).one()
    missing = db.exec(select(func.count()).select_from(RosterPupil)
                      .where(col(RosterPupil.missing_since).is_not(None))).one()
    pupils = db.exec(select(RosterPupil).order_by(
        col(RosterPupil.year), col(RosterPupil.form), col(RosterPupil.family_name),
        col(RosterPupil.given_name)).limit(SHOWN)).all()
    imports = db.exec(select(RosterImport).where(col(RosterImport.applied_at).is_not(None))
                      .order_by(col(RosterImport.id).desc()).limit(10)).all()
    audit(db, who.username, "roster.view", "roster", pupils=total)
    return render(request, "roster.html", who, pupils=pupils, total=total, missing=missing,
                  shown=SHOWN, imports=imports, shapes=roster.SHAPES,
                  max_mb=roster.MAX_BYTES // (1024 * 1024), flag_labels=roster.FLAG_LABELS,
                  **extra)


@router.get("/roster", include_in_schema=False)
def roster_page(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    return _page(request, db, who)


def _read(upload: UploadFile | None) -> tuple[bytes, str]:
    if upload is None or not upload.filename:
        raise BadRequest("Choose the roster CSV file to import.")
    data = upload.file.read(roster.MAX_BYTES + 1)
    return data, upload.filename[-120:]


@router.post("/roster/preview", include_in_schema=False)
def preview(request: Request, db: SessionDep, who: TechnicianDep,
            file: Annotated[UploadFile | None, File()] = None) -> Response:
    data, filename = _read(file)
    try:
        parsed = roster.parse(data)
    except roster.RosterError as exc:
        raise BadRequest(str(exc)) from None
    the_plan = roster.plan(db, parsed)
    counts = the_plan.counts(parsed)
    # Uploads never confirmed hold names for nothing: keep them a day at most.
    db.exec(delete(RosterImport).where(col(RosterImport.applied_at).is_(None),  # type: ignore[call-overload]
                                       col(RosterImport.created_at)
                                       < utcnow() - timedelta(hours=PENDING_HOURS)))
    row = RosterImport(shape=parsed.shape.name, filename=filename, data=data,
                       base_digest=roster.digest(db), counts=counts, created_by=who.username)
    db.add(row)
    db.flush()
    audit(db, who.username, "roster.preview", f"roster_import:{row.id}", shape=row.shape,
          **counts)
    return render(request, "roster_preview.html", who, imp=row, shape=parsed.shape,
                  plan=the_plan, parsed=parsed, counts=counts, first=PREVIEW_ROWS,
                  flag_labels=roster.FLAG_LABELS)


@router.post("/roster/imports/{import_id}/apply", include_in_schema=False)
def apply(import_id: int, db: SessionDep, who: TechnicianDep) -> Response:
    row = roster.pending(db, import_id)
    if row is None:
        raise NotFound("There is no such roster import waiting: it was applied, or is more than "
                       "a day old. Upload the file again.")
    if roster.digest(db) != row.base_digest:
        raise Conflict("The roster changed since this preview: upload the file again to see "
                       "what it would do now.")
    parsed = roster.parse(row.data or b"")
    shape = roster.shape_named(row.shape)
    done = roster.apply(db, parsed, f"import #{row.id} ({shape.label})")
    counts = done.counts(parsed)
    row.counts, row.applied_at, row.data = counts, utcnow(), None
    db.add(row)
    audit(db, who.username, "roster.import", f"roster_import:{row.id}", shape=row.shape,
          **counts)
    return RedirectResponse(f"/roster?applied={row.id}", status_code=303)
