"""The roster page (issue 18): the technician imports pupils from the MIS (upload, preview,
confirm), one school's file at a time when the collector has schools; the head looks; governors
are refused. See dashboard/roster.py.

The page stays trust-wide only, with each school's counts. A school's own technician importing
its file looks contained but is not: a login already under another school is a move, which
changes that school's roster, and the preview would show that school's pupil's name and form to
an account that may not see them. A trust-wide technician can see both sides of a move."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, delete, func, select

from collector.store.models import RosterImport, RosterPupil, School, utcnow
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


def _per_school(db: SessionDep) -> list[dict[str, object]]:
    """Pupils and pupils missing from the latest file, per school, and of no school if any."""
    def counted(*where: object) -> dict[int | None, int]:
        return dict(db.exec(select(RosterPupil.school_id, func.count()).where(*where)
                            .group_by(col(RosterPupil.school_id))).all())

    totals, missing = counted(), counted(col(RosterPupil.missing_since).is_not(None))
    rows: list[dict[str, object]] = [
        {"code": s.code, "name": s.name, "pupils": totals.get(s.id, 0),
         "missing": missing.get(s.id, 0)}
        for s in db.exec(select(School).order_by(col(School.code))).all()]
    if rows and totals.get(None):
        rows.append({"code": "", "name": "No school (imported before the trust had schools)",
                     "pupils": totals[None], "missing": missing.get(None, 0)})
    return rows


def _page(request: Request, db: SessionDep, who: SignedIn, **extra: object) -> Response:
    per_school = _per_school(db)
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
                  per_school=per_school, school_names=roster.school_names(db),
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
            file: Annotated[UploadFile | None, File()] = None,
            school: Annotated[str, Form(max_length=32)] = "") -> Response:
    data, filename = _read(file)
    try:
        chosen = roster.school_for(db, school)
        parsed = roster.parse(data)
    except roster.RosterError as exc:
        raise BadRequest(str(exc)) from None
    school_id = chosen.id if chosen is not None else None
    the_plan = roster.plan(db, parsed, school_id)
    counts = the_plan.counts(parsed)
    # Uploads never confirmed hold names for nothing: keep them a day at most.
    db.exec(delete(RosterImport).where(col(RosterImport.applied_at).is_(None),  # type: ignore[call-overload]
                                       col(RosterImport.created_at)
                                       < utcnow() - timedelta(hours=PENDING_HOURS)))
    row = RosterImport(shape=parsed.shape.name, filename=filename, data=data,
                       base_digest=roster.digest(db, school_id, parsed), counts=counts,
                       created_by=who.username, school_id=school_id)
    db.add(row)
    db.flush()
    audit(db, who.username, "roster.preview", f"roster_import:{row.id}", shape=row.shape,
          **_school_detail(chosen), **counts)
    return render(request, "roster_preview.html", who, imp=row, shape=parsed.shape,
                  plan=the_plan, parsed=parsed, counts=counts, first=PREVIEW_ROWS,
                  flag_labels=roster.FLAG_LABELS, school=chosen,
                  school_names=roster.school_names(db))


def _school_detail(school: School | None) -> dict[str, str]:
    return {"school": school.code} if school is not None else {}


@router.post("/roster/imports/{import_id}/apply", include_in_schema=False)
def apply(import_id: int, db: SessionDep, who: TechnicianDep) -> Response:
    row = roster.pending(db, import_id)
    if row is None:
        raise NotFound("There is no such roster import waiting: it was applied, or is more than "
                       "a day old. Upload the file again.")
    parsed = roster.parse(row.data or b"")
    if roster.digest(db, row.school_id, parsed) != row.base_digest:
        raise Conflict("The roster changed since this preview: upload the file again to see "
                       "what it would do now.")
    shape = roster.shape_named(row.shape)
    done = roster.apply(db, parsed, f"import #{row.id} ({shape.label})", row.school_id)
    counts = done.counts(parsed)
    row.counts, row.applied_at, row.data = counts, utcnow(), None
    db.add(row)
    school = db.get(School, row.school_id) if row.school_id is not None else None
    audit(db, who.username, "roster.import", f"roster_import:{row.id}", shape=row.shape,
          **_school_detail(school), **counts)
    return RedirectResponse(f"/roster?applied={row.id}", status_code=303)
