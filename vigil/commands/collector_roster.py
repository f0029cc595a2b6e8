"""`vigil collector roster import FILE [--school CODE] [--apply]`: the roster import from a
shell, for a school that exports its MIS on a schedule. The same parser and plan as the Roster
page (dashboard/roster.py): a preview by default, written only with --apply, idempotent,
audited; one school's file at a time when the collector has schools (--school is then required,
so a nightly job for one school cannot be mistaken for the trust's whole roster)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register_roster_parsers"]

_IMPORT_HELP = """\
Read a roster CSV exported from SIMS, Arbor, Bromcom or Wonde/Groupcall (the shape is told from
the header row; docs/admin-guide.md, "Roster") and print what importing it would do: new,
changed, unchanged, on the roster but not in the file (kept and marked), and unreadable rows
with their line numbers. Nothing is written without --apply; with it the rows are written in one
transaction and the import is recorded in the audit log (counts only, never a name) and on the
Roster page. Importing the same file twice writes nothing the second time.

When the collector has schools, --school CODE says whose file it is (required): only that
school's pupils are compared, and a login already on another school's roster is listed as a
move ("moves from B to A") and moved with --apply."""

SHOWN = 10  # rows of each kind printed


def register_roster_parsers(sub: Any, data: Any) -> None:
    ros = sub.add_parser("roster", help="pupils' names from the school's MIS")
    rs = ros.add_subparsers(dest="roster_command", metavar="ACTION", required=True)
    p = rs.add_parser("import", help="preview (or with --apply, import) a roster CSV",
                      description=_IMPORT_HELP)
    data(p)
    p.add_argument("file", type=Path, metavar="FILE", help="the roster CSV")
    p.add_argument("--school", default="", metavar="CODE",
                   help="the school the file is for (required when the collector has schools)")
    p.add_argument("--apply", action="store_true", help="write the import (default: preview)")
    p.set_defaults(func=_roster_import)


def _read(path: Path) -> bytes:
    from collector.errors import BadRequest
    from dashboard import roster

    try:
        with path.open("rb") as f:
            return f.read(roster.MAX_BYTES + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def _roster_import(args: argparse.Namespace) -> int:
    from collector import audit
    from collector.errors import BadRequest
    from collector.store.models import RosterImport, utcnow
    from dashboard import roster
    from vigil.commands.collector import _database

    data = _read(args.file)
    try:
        parsed = roster.parse(data)
    except roster.RosterError as exc:
        raise BadRequest(f"{args.file}: {exc}") from None
    name = args.file.name[-120:]
    with _database(args) as (_, db):
        def work(session: Any) -> list[str]:
            try:
                school = roster.school_for(session, args.school)
            except roster.RosterError as exc:
                raise BadRequest(str(exc)) from None
            school_id = school.id if school is not None else None
            names = roster.school_names(session)
            if not args.apply:
                done = roster.plan(session, parsed, school_id)
                return _lines(parsed, done, done.counts(parsed), None, names, school_id)
            row = RosterImport(shape=parsed.shape.name, filename=name, data=None,
                               base_digest=roster.digest(session, school_id, parsed),
                               created_by="cli", school_id=school_id)
            session.add(row)
            session.flush()
            done = roster.apply(session, parsed, f"import #{row.id} ({parsed.shape.label}, cli)",
                                school_id)
            counts = done.counts(parsed)
            row.counts, row.applied_at = counts, utcnow()
            session.add(row)
            where = {"school": school.code} if school is not None else {}
            audit.record(session, "cli", "roster.import", f"roster_import:{row.id}",
                         {"shape": parsed.shape.name, **where, **counts})
            # Printed from inside the transaction: the rows are read while the session is open.
            return _lines(parsed, done, counts, row.id, names, school_id)

        lines = db.write(work)
    print("\n".join(lines))
    return 0


def _lines(parsed: Any, done: Any, counts: dict[str, int], import_id: int | None,
           names: dict[int | None, str], school_id: int | None) -> list[str]:
    def who(p: Any) -> str:
        where = ", ".join(x for x in (f"year {p.year}" if p.year else "", p.form) if x)
        return f"{p.username}: {p.given_name} {p.family_name}" + (f" ({where})" if where else "")

    verb = f"imported as #{import_id}" if import_id is not None else "preview, nothing written"
    of = f" for {names[school_id]}" if school_id is not None else ""
    out = [f"{parsed.shape.label} roster{of}, {verb}: " + ", ".join(
        f"{n} {k.replace('_', ' ')}" for k, n in counts.items())]
    for title, rows in (("new", done.new), ("changed", [p for p, _ in done.changed]),
                        ("not in this file (kept)", done.removed)):
        if rows:
            out.append(f"{title}:")
            out += [f"  {who(p)}" for p in rows[:SHOWN]]
            if len(rows) > SHOWN:
                out.append(f"  ... and {len(rows) - SHOWN} more")
    if done.moved:
        out.append("moving school:")
        out += [f"  {who(p)} moves from {names.get(row.school_id, '?')} to {names[school_id]}"
                for p, row in done.moved[:SHOWN]]
        if len(done.moved) > SHOWN:
            out.append(f"  ... and {len(done.moved) - SHOWN} more")
    if parsed.unreadable:
        out.append("unreadable:")
        out += [f"  line {line}: {reason}" for line, reason in parsed.unreadable[:SHOWN * 5]]
    if import_id is None:
        out.append("run again with --apply to import")
    return out
