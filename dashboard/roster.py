"""Pupils' names from the school's MIS (issue 18): read a roster CSV, preview it, apply it, and
look a sealed header's login name up in it.

A school exports its pupils from SIMS, Arbor, Bromcom or through Wonde/Groupcall; each names its
columns its own way. The shape is told from the header row (:func:`detect`); the columns
accepted per shape are in :data:`SHAPES` and docs/admin-guide.md ("Roster"). The vendors do not
publish one fixed export layout (every report is user-built), so each shape accepts the column
names those systems commonly give, and a file says which it is by the names only one of them uses.

The login name is the key: it is what agents seal in the header. :func:`login_key` (from
core.cohort, since the agent folds it the same way for the cohort map) folds it the
same way for a roster row and for a header (lower case, no ``DOMAIN\\`` prefix, no ``@domain``),
so ``SCHOOL\\JSmith``, ``jsmith@school.org`` and ``jsmith`` are one pupil.

Applying is idempotent: a row whose fields equal the stored ones is not written. Pupils missing
from a file are kept and marked (``missing_since``), never deleted: an export of one year group,
or a pupil's late entry in the MIS, must not take names off past events and incidents.

A file is one school's (``school_id``; None on a collector without schools): its plan compares
it with that school's pupils only, so School A's file never changes or marks School B's. A
login is one pupil across the trust (``RosterPupil.username`` is unique: one directory signs
every school's pupils in), so a login already on the roster is matched wherever it is. Listed
under another school, it is a move (``Plan.moved``: "moves from B to A"), shown in the preview
and applied like a change, because a pupil changing school within a trust is real; listed under
no school (rows from before rosters were per school), the school's file claims it as a change.
The preview's base digest covers the rows its plan read (the school's, and those the file
names), so an import for another school in between does not stale it unless it touched them.

A name is shown for an event's login only when the pupil is of the event's device's school or
of no school (:func:`pupils_for`): a login on another school's roster is a stranger there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from collector.store.models import Device, Event, RosterImport, RosterPupil, School, utcnow
from core.cohort import login_key, normal_year

__all__ = [
    "FLAGS",
    "MAX_BYTES",
    "MAX_ROWS",
    "SHAPES",
    "Parsed",
    "Pupil",
    "RosterError",
    "Shape",
    "apply",
    "detect",
    "digest",
    "login_key",
    "lookup",
    "parse",
    "plan",
    "pupils_for",
    "school_for",
    "school_names",
]

MAX_BYTES = 4 * 1024 * 1024  # a trust's 20,000 pupils at ~150 bytes a row, with room
MAX_ROWS = 30_000
FLAGS = ("SEN", "LAC", "CP")  # special educational needs, looked-after, child protection plan
FLAG_LABELS = {"SEN": "SEN", "LAC": "looked after", "CP": "CP plan"}


class RosterError(ValueError):
    """The file cannot be used at all; the message is one line for the technician."""


def _norm(header: str) -> str:
    """Header names compared without case, spacing, underscores, dots or a BOM; camelCase
    splits ("RegGroup" is "reg group")."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", header.replace("\ufeff", ""))
    return re.sub(r"[\s_.\-]+", " ", spaced).strip().lower()


@dataclass(frozen=True)
class Shape:
    name: str  # sims | arbor | bromcom | wonde
    label: str
    marks: tuple[str, ...]  # header names that say "this is that system's export"
    columns: dict[str, tuple[str, ...]]  # field -> accepted header names, first found wins

    def accepted(self) -> str:
        return ", ".join(names[0] for names in self.columns.values())


_COMMON = {
    "username": ("username", "user name", "network username", "login", "login name",
                 "logon name", "network login"),
    "email": ("email", "email address", "school email", "pupil email", "student email"),
    "sen": ("sen", "sen status", "send", "send status", "sen provision"),
    "lac": ("looked after", "in care", "lac", "cla", "child looked after"),
    "cp": ("cp plan", "child protection", "cp", "child protection plan", "on cp register"),
    "flags": ("flags",),
}

SHAPES: tuple[Shape, ...] = (
    Shape("sims", "SIMS", marks=("adno", "reg group", "legal surname", "legal forename"),
          columns={
              "family": ("legal surname", "surname", "preferred surname"),
              "given": ("forename", "preferred forename", "legal forename"),
              "upn": ("upn",),
              "adno": ("adno", "admission number"),
              "year": ("year", "year group", "nc year"),
              "form": ("reg group", "reg", "registration group", "form"),
              **_COMMON,
          }),
    Shape("arbor", "Arbor", marks=("registration form", "legal first name", "legal last name",
                                   "preferred first name", "arbor id"),
          columns={
              "family": ("legal last name", "last name", "preferred last name"),
              "given": ("preferred first name", "first name", "legal first name"),
              "upn": ("upn",),
              "adno": ("admission number", "admission no"),
              "year": ("year group", "year"),
              "form": ("registration form", "form", "registration group"),
              **_COMMON,
          }),
    Shape("bromcom", "Bromcom", marks=("tutor group", "admission no", "bromcom id",
                                       "student id"),
          columns={
              "family": ("surname", "legal surname", "last name"),
              "given": ("preferred forename", "forename", "first name"),
              "upn": ("upn",),
              "adno": ("admission no", "admission number"),
              "year": ("year group", "year"),
              "form": ("tutor group", "reg group", "form"),
              **_COMMON,
          }),
    Shape("wonde", "Wonde / Groupcall", marks=("mis id", "registration group", "legal forename"),
          columns={
              "family": ("surname", "legal surname"),
              "given": ("forename", "legal forename"),
              "upn": ("upn",),
              "adno": ("admission number", "adno", "mis id"),
              "year": ("year group", "year"),
              "form": ("registration group", "form group", "form"),
              **_COMMON,
          }),
)
_BY_NAME = {s.name: s for s in SHAPES}
# Wonde and Groupcall write snake_case names (year_group, legal_surname): a header row in that
# style is theirs even where SIMS uses the same words with spaces.
_SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


_LOGIN = re.compile(r"^[^\s\x00-\x1f\\/@\"]{1,64}$")


def detect(headers: list[str]) -> Shape:
    """The shape whose marker columns the header row has most of; RosterError if none."""
    raw = [h.replace("\ufeff", "").strip() for h in headers]
    names = {_norm(h) for h in raw}
    snake = sum(1 for h in raw if _SNAKE.match(h)) >= 2
    scores = []
    for order, shape in enumerate(SHAPES):
        score = sum(1 for mark in shape.marks if mark in names)
        if shape.name == "wonde" and snake:
            score += 10
        scores.append((score, -order, shape))
    score, _, best = max(scores, key=lambda s: s[:2])
    if score == 0:
        raise RosterError(
            "This file's header row is not one Vigil knows. Accepted: "
            + "; ".join(f"{s.label} ({', '.join(s.marks[:3])})" for s in SHAPES)
            + ". See the administrator's guide, Roster.")
    return best


@dataclass(frozen=True)
class Pupil:
    """One readable row, folded for storage."""

    line: int
    username: str
    upn: str = ""
    admission_no: str = ""
    given_name: str = ""
    family_name: str = ""
    year: str = ""
    form: str = ""
    flags: tuple[str, ...] = ()

    def values(self) -> tuple[Any, ...]:
        return (self.upn, self.admission_no, self.given_name, self.family_name, self.year,
                self.form, list(self.flags))


def _stored(row: RosterPupil) -> tuple[Any, ...]:
    return (row.upn, row.admission_no, row.given_name, row.family_name, row.year, row.form,
            list(row.flags or []))


@dataclass
class Parsed:
    shape: Shape
    pupils: list[Pupil] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


_NO = {"", "n", "no", "none", "false", "0", "-", "not sen", "nsen"}
_YES = {"y", "yes", "true", "1", "x", "t", "✓"}
_FLAG_WORDS = {
    "sen": "SEN", "send": "SEN", "ehcp": "SEN", "sen support": "SEN",
    "lac": "LAC", "cla": "LAC", "looked after": "LAC", "in care": "LAC", "cic": "LAC",
    "cp": "CP", "cp plan": "CP", "child protection": "CP", "cpp": "CP",
}


def _text(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit]


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise RosterError("This is not a CSV file (it has binary content): export the roster as CSV.")
    for encoding in ("utf-8-sig", "cp1252"):  # SIMS and Excel often write Windows-1252
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RosterError("This is not a CSV file Vigil can read (unknown text encoding).")


def parse(data: bytes) -> Parsed:
    """Read a roster file; RosterError (one line) when the file as a whole cannot be used."""
    if not data.strip():
        raise RosterError("The file is empty: export the roster as CSV with a header row.")
    if len(data) > MAX_BYTES:
        raise RosterError(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB: "
                          "export only pupils (one row each) as CSV.")
    if data[:4] == b"PK\x03\x04":
        raise RosterError("This is a spreadsheet (.xlsx), not a CSV file: save it as CSV first.")
    text = _decode(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        dialect: Any = csv.Sniffer().sniff(first, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise RosterError(f"This is not a CSV file Vigil can read: {exc}.") from None
    if not rows or len(rows[0][1]) < 2:
        raise RosterError("This is not a roster CSV: its first row should name the columns "
                          "(e.g. Legal Surname, Forename, Year, Reg Group, UPN, Username).")
    if len(rows) - 1 > MAX_ROWS:
        raise RosterError(f"The file has more than {MAX_ROWS} rows: import one school at a time.")
    headers = rows[0][1]
    shape = detect(headers)
    where = _columns(shape, headers)
    if "username" not in where and "email" not in where:
        raise RosterError(f"This {shape.label} file has no Username (or Email) column: Vigil "
                          "matches pupils by the login name their desktop reports. Add one.")
    if "family" not in where and "given" not in where:
        raise RosterError(f"This {shape.label} file has no name columns: expected "
                          f"{shape.columns['family'][0]} and {shape.columns['given'][0]}.")
    parsed = Parsed(shape)
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        pupil, reason = _pupil(line, row, where)
        if pupil is None:
            parsed.unreadable.append((line, reason))
        elif pupil.username in seen:
            parsed.unreadable.append((line, f"the same username as line {seen[pupil.username]}"))
        else:
            seen[pupil.username] = line
            parsed.pupils.append(pupil)
    return parsed


def _columns(shape: Shape, headers: list[str]) -> dict[str, int]:
    names = [_norm(h) for h in headers]
    where: dict[str, int] = {}
    for fld, accepted in shape.columns.items():
        for name in accepted:
            if name in names:
                where[fld] = names.index(name)
                break
    return where


def _pupil(line: int, row: list[str], where: dict[str, int]) -> tuple[Pupil | None, str]:
    def get(fld: str) -> str:
        at = where.get(fld)
        return row[at].strip() if at is not None and at < len(row) else ""

    user = get("username") or get("email")
    if not user:
        return None, "no username: Vigil matches pupils by their login name"
    key = login_key(user)
    if not _LOGIN.match(key):
        return None, "the username is not a login name (spaces or more than 64 characters)"
    given, family = _text(get("given"), 100), _text(get("family"), 100)
    if not (given or family):
        return None, "no name"
    upn = get("upn").upper()
    if upn and not re.fullmatch(r"[A-Z0-9]{13}", upn):
        return None, "the UPN is not 13 letters and digits"
    flags = set()
    if get("sen").casefold() not in _NO:
        flags.add("SEN")
    if get("lac").casefold() in _YES:
        flags.add("LAC")
    if get("cp").casefold() in _YES:
        flags.add("CP")
    for word in re.split(r"[;,|/]", get("flags")):
        if word.strip().casefold() in _FLAG_WORDS:
            flags.add(_FLAG_WORDS[word.strip().casefold()])
    return Pupil(
        line=line, username=key, upn=upn, admission_no=_text(get("adno"), 20),
        given_name=given, family_name=family, year=normal_year(get("year")),
        form=_text(get("form"), 32), flags=tuple(f for f in FLAGS if f in flags),
    ), ""


def _read(db: Session, school_id: int | None, parsed: Parsed | None) -> dict[str, RosterPupil]:
    """The rows an import for ``school_id`` depends on: the school's own, and any row the file
    names (a pupil elsewhere, or of no school). Filtered here rather than with an IN of the
    file's logins, which at 30,000 rows would pass SQLite's and PostgreSQL's parameter limits;
    the whole roster is a trust's 20,000 short rows."""
    names = {p.username for p in parsed.pupils} if parsed is not None else set()
    rows = db.exec(select(RosterPupil).order_by(col(RosterPupil.username))).all()
    return {r.username: r for r in rows if r.school_id == school_id or r.username in names}


def digest(db: Session, school_id: int | None = None, parsed: Parsed | None = None) -> str:
    """A fingerprint of the rows a preview of ``parsed`` for ``school_id`` was computed on: it
    is applied only to those rows as they were, whatever other schools imported since."""
    h = hashlib.sha256()
    for row in _read(db, school_id, parsed).values():
        h.update(repr((row.username, row.school_id, _stored(row),
                       row.missing_since is None)).encode())
    return h.hexdigest()


@dataclass
class Plan:
    """What applying a parsed file would do; counts go to the audit log, rows only to the page."""

    new: list[Pupil] = field(default_factory=list)
    changed: list[tuple[Pupil, RosterPupil]] = field(default_factory=list)
    unchanged: list[Pupil] = field(default_factory=list)
    removed: list[RosterPupil] = field(default_factory=list)  # the school's, not in the file
    moved: list[tuple[Pupil, RosterPupil]] = field(default_factory=list)  # from another school

    def counts(self, parsed: Parsed) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed),
                "unchanged": len(self.unchanged), "removed_from_file": len(self.removed),
                "moved": len(self.moved), "unreadable": len(parsed.unreadable)}


def plan(db: Session, parsed: Parsed, school_id: int | None = None) -> Plan:
    stored = _read(db, school_id, parsed)
    out = Plan()
    for pupil in parsed.pupils:
        row = stored.pop(pupil.username, None)
        if row is None:
            out.new.append(pupil)
        elif row.school_id is not None and row.school_id != school_id:
            out.moved.append((pupil, row))
        elif (_stored(row) != pupil.values() or row.missing_since is not None
              or row.school_id != school_id):
            out.changed.append((pupil, row))
        else:
            out.unchanged.append(pupil)
    # What is left is the school's own (_read): rows of other schools the file names were popped.
    out.removed = sorted(stored.values(), key=lambda r: (r.family_name, r.given_name))
    return out


def apply(db: Session, parsed: Parsed, source: str, school_id: int | None = None) -> Plan:
    """Write the plan (caller commits). Unchanged rows are not touched; removed ones are kept
    and marked once, so the same file applied twice changes nothing the second time."""
    done = plan(db, parsed, school_id)
    now = utcnow()
    for pupil in done.new:
        db.add(RosterPupil(username=pupil.username, upn=pupil.upn,
                           admission_no=pupil.admission_no, given_name=pupil.given_name,
                           family_name=pupil.family_name, year=pupil.year, form=pupil.form,
                           flags=list(pupil.flags), source=source, updated_at=now,
                           school_id=school_id))
    for pupil, row in done.changed + done.moved:
        (row.upn, row.admission_no, row.given_name, row.family_name, row.year, row.form,
         row.flags) = pupil.values()
        row.missing_since, row.source, row.updated_at = None, source, now
        row.school_id = school_id
        db.add(row)
    for row in done.removed:
        if row.missing_since is None:
            row.missing_since = now
            db.add(row)
    return done


def lookup(db: Session, users: Iterable[str]) -> dict[str, RosterPupil]:
    """Roster rows by login_key for the login names a keyholder's request has just opened,
    whatever their school: :func:`pupils_for` is what pages use."""
    keys = {login_key(u) for u in users if u}
    keys.discard("")
    if not keys:
        return {}
    rows = db.exec(select(RosterPupil).where(col(RosterPupil.username).in_(sorted(keys)))).all()
    return {row.username: row for row in rows}


def pupils_for(db: Session, opened: Iterable[tuple[Event, str]]) -> dict[str, RosterPupil]:
    """The pupil of each opened event's login name, by event id: a pupil of the event's device's
    school or of no school. Another school's pupil is left out: the same login at another
    school of the trust is another child (or the roster is stale), and naming them beside this
    capture would be worse than naming nobody. A device of no school is the trust's: any pupil."""
    pairs = [(event, login) for event, login in opened if login_key(login)]
    known = lookup(db, (login for _, login in pairs))
    if not known:
        return {}
    devices = sorted({event.device_id for event, _ in pairs})
    school_of: dict[str, int | None] = dict(
        db.exec(select(Device.id, Device.school_id).where(col(Device.id).in_(devices))).all())
    out: dict[str, RosterPupil] = {}
    for event, login in pairs:
        row, school = known.get(login_key(login)), school_of.get(event.device_id)
        if row is not None and (school is None or row.school_id in (None, school)):
            out[event.id] = row
    return out


def school_for(db: Session, code: str) -> School | None:
    """The school a file is for, from its code (case-insensitive); RosterError (one line) when
    the collector has schools and none is named, or names one it does not have. None on a
    collector without schools: its roster is one list, as before schools."""
    known = db.exec(select(School).order_by(col(School.code))).all()
    wanted = code.strip().upper()
    if not known:
        if wanted:
            raise RosterError(f"This collector has no schools, so no school {wanted!r}: import "
                              "the roster without one.")
        return None
    codes = ", ".join(s.code for s in known)
    if not wanted:
        raise RosterError(f"Say which school this file is for ({codes}): each school imports "
                          "its own roster.")
    for school in known:
        if school.code == wanted:
            return school
    raise RosterError(f"There is no school with code {wanted!r} (known: {codes}).")


def school_names(db: Session) -> dict[int | None, str]:
    """Each school's code by id, and "no school" for None, for "moves from B to A"."""
    names: dict[int | None, str] = {None: "no school"}
    names.update({s.id: s.code for s in db.exec(select(School)).all()})
    return names


def has_roster(db: Session) -> bool:
    return db.exec(select(RosterPupil.id).limit(1)).first() is not None


def pending(db: Session, import_id: int) -> RosterImport | None:
    row = db.get(RosterImport, import_id)
    return row if row is not None and row.applied_at is None and row.data is not None else None


def shape_named(name: str) -> Shape:
    return _BY_NAME[name]
