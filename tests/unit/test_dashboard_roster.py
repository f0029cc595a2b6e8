"""Roster import (issue 18): the shape from the header row, each shape's fields, folded login
names, unreadable rows with their reason, one-line refusals of a wrong file, and an import that
is idempotent with the preview's counts. The CSVs in tests/data/roster/ use made-up names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from collector.store.models import RosterPupil
from dashboard import roster

DATA = Path(__file__).resolve().parents[1] / "data" / "roster"


def _read(name: str) -> roster.Parsed:
    return roster.parse((DATA / name).read_bytes())


@pytest.mark.parametrize(("name", "shape"), [("sims.csv", "sims"), ("arbor.csv", "arbor"),
                                             ("bromcom.csv", "bromcom"), ("wonde.csv", "wonde")])
def test_the_shape_is_told_from_the_header_row(name: str, shape: str) -> None:
    assert _read(name).shape.name == shape


def test_sims_rows() -> None:
    parsed = _read("sims.csv")
    ann, ben, dev = parsed.pupils
    assert (ann.username, ann.given_name, ann.family_name, ann.year, ann.form, ann.upn,
            ann.admission_no, ann.flags) == ("aexample", "Ann", "Example", "7", "7B",
                                             "A123456789012", "001234", ())
    assert ben.flags == ("SEN", "LAC")  # SEN status K (SEN support), In Care Y
    assert dev.username == "ddummy" and dev.year == "10" and dev.flags == ("SEN",)  # SCHOOL\ prefix
    assert parsed.unreadable == [(4, "no username: Vigil matches pupils by their login name")]


def test_arbor_rows_take_the_preferred_name_and_the_email_local_part() -> None:
    ann, ben = _read("arbor.csv").pupils
    assert (ann.username, ann.given_name, ann.family_name, ann.form, ann.admission_no) == (
        "aexample", "Ann", "Example", "7B", "1234")
    assert ben.flags == ("SEN", "LAC")  # Flags "SEN;CLA"


def test_bromcom_rows_semicolons_and_a_cp_plan() -> None:
    ann, ben = _read("bromcom.csv").pupils
    assert (ann.username, ann.year, ann.form, ann.flags) == ("aexample", "7", "7B", ())
    assert ben.flags == ("CP",)


def test_wonde_rows() -> None:
    ann, ben = _read("wonde.csv").pupils
    assert (ann.username, ann.given_name, ann.year, ann.form) == ("aexample", "Ann", "7", "7B")
    assert ben.flags == ("SEN",)


@pytest.mark.parametrize(("user", "key"), [("AExample", "aexample"), (r"SCHOOL\AExample", "aexample"),
                                           ("aexample@school.example", "aexample"),
                                           ("  aexample ", "aexample")])
def test_login_names_fold_the_same_way_on_both_sides(user: str, key: str) -> None:
    assert roster.login_key(user) == key


@pytest.mark.parametrize(("data", "says"), [
    (b"", "empty"),
    (b"PK\x03\x04rest-of-a-zip", "spreadsheet (.xlsx)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV file"),
    (b"Name,Colour\nAnn,blue\n", "SIMS (adno, reg group, legal surname)"),
    (b"just one column\nAnn\n", "not a roster CSV"),
    (b"Adno,Legal Surname,Forename,Reg Group\n1,Example,Ann,7B\n", "no Username (or Email) column"),
    (b"Adno,Username\n" + b"1,a\n" * 10 + b"x" * roster.MAX_BYTES, "larger than 4 MB"),
])
def test_a_wrong_file_is_refused_in_one_line(data: bytes, says: str) -> None:
    with pytest.raises(roster.RosterError) as caught:
        roster.parse(data)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_bad_rows_are_listed_with_their_reason() -> None:
    data = (b"Adno,UPN,Legal Surname,Forename,Year,Reg Group,Username\n"
            b"1,A123456789012,Example,Ann,7,7B,aexample\n"
            b"2,,Example,Annie,7,7B,AEXAMPLE\n"
            b"3,XYZ,Sample,Ben,8,8R,bsample\n"
            b"4,,,,8,8R,nobody\n"
            b"5,,Spaces,Sam,8,8R,sam spaces\n")
    parsed = roster.parse(data)
    assert [p.username for p in parsed.pupils] == ["aexample"]
    assert parsed.unreadable == [
        (3, "the same username as line 2"),
        (4, "the UPN is not 13 letters and digits"),
        (5, "no name"),
        (6, "the username is not a login name (spaces or more than 64 characters)"),
    ]


def test_windows_1252_and_a_bom_are_read() -> None:
    data = "\ufeffAdno,Legal Surname,Forename,Username\n1,Ó Súilleabháin,Zoë,zoe\n"
    assert roster.parse(data.encode("utf-8")).pupils[0].family_name == "Ó Súilleabháin"
    assert roster.parse(data[1:].encode("cp1252")).pupils[0].given_name == "Zoë"


def _counts(db: Any, parsed: roster.Parsed) -> dict[str, int]:
    return roster.plan(db, parsed).counts(parsed)


def test_import_is_idempotent_and_the_preview_counts_what_it_does(database: Any) -> None:
    sims = _read("sims.csv")
    with database.session() as db:
        assert _counts(db, sims) == {"new": 3, "changed": 0, "unchanged": 0,
                                     "removed_from_file": 0, "moved": 0, "unreadable": 1}
        roster.apply(db, sims, "import #1 (SIMS)")
        db.commit()
        before = roster.digest(db)
        stamps = {r.username: r.updated_at for r in db.exec(select(RosterPupil)).all()}

        # The same file again: nothing to do, and nothing written.
        assert _counts(db, sims) == {"new": 0, "changed": 0, "unchanged": 3,
                                     "removed_from_file": 0, "moved": 0, "unreadable": 1}
        roster.apply(db, sims, "import #2 (SIMS)")
        db.commit()
        assert roster.digest(db) == before
        rows = db.exec(select(RosterPupil)).all()
        assert {r.username: r.updated_at for r in rows} == stamps
        assert {r.source for r in rows} == {"import #1 (SIMS)"}

        # Bromcom's export of two of them: Ben gains a CP plan, Dev is not in the file (kept).
        bromcom = _read("bromcom.csv")
        assert _counts(db, bromcom) == {"new": 0, "changed": 2, "unchanged": 0,
                                        "removed_from_file": 1, "moved": 0, "unreadable": 0}
        roster.apply(db, bromcom, "import #3 (Bromcom)")
        db.commit()
        dev = db.exec(select(RosterPupil).where(RosterPupil.username == "ddummy")).one()
        assert dev.missing_since is not None and dev.given_name == "Dev"
        marked = roster.digest(db)
        assert _counts(db, bromcom)["unchanged"] == 2
        roster.apply(db, bromcom, "import #4 (Bromcom)")
        db.commit()
        assert roster.digest(db) == marked  # kept and marked once, not again

        # Looking a sealed header's login name up, however the desktop spelt it.
        found = roster.lookup(db, [r"SCHOOL\BSample", "AEXAMPLE@school.example", "stranger", ""])
        assert sorted(found) == ["aexample", "bsample"]
        assert found["bsample"].flags == ["CP"]


# A roster per school: two schools of one trust, each importing its own SIMS export.
_HEAD = b"Adno,Legal Surname,Forename,Year,Reg Group,Username\n"


def _file(*rows: str) -> roster.Parsed:
    return roster.parse(_HEAD + "".join(f"{r}\n" for r in rows).encode())


def _two_schools(database: Any) -> tuple[int, int]:
    from collector.store.models import School

    def add(s: Any) -> tuple[int, int]:
        a, b = School(code="NHA", name="North Hill Academy"), School(code="SVP", name="South Vale")
        s.add_all([a, b])
        s.flush()
        return a.id or 0, b.id or 0

    return database.write(add)


def _by_user(db: Any) -> dict[str, RosterPupil]:
    return {r.username: r for r in db.exec(select(RosterPupil)).all()}


A_FILE = ("1,Example,Ann,7,7B,aexample", "2,Sample,Ben,8,8R,bsample")
B_FILE = ("1,Testcase,Cara,9,9G,ctestcase", "2,Dummy,Dev,10,10K,ddummy")


def test_each_school_imports_its_own_file_and_keeps_the_others(database: Any) -> None:
    a, b = _two_schools(database)
    with database.session() as db:
        roster.apply(db, _file("9,Old,Ola,7,7B,oldrow"), "before schools")  # no school
        roster.apply(db, _file(*A_FILE), "import #1", a)
        db.commit()
        a_digest = roster.digest(db, a, _file(*A_FILE))

        # B's file does not list A's pupils: they are not B's to mark, nor anyone's no-school row.
        b_plan = roster.plan(db, _file(*B_FILE), b)
        assert (len(b_plan.new), b_plan.removed, b_plan.moved) == (2, [], [])
        roster.apply(db, _file(*B_FILE), "import #2", b)
        db.commit()
        rows = _by_user(db)
        assert {u: (r.school_id, r.missing_since) for u, r in rows.items()} == {
            "aexample": (a, None), "bsample": (a, None), "ctestcase": (b, None),
            "ddummy": (b, None), "oldrow": (None, None)}
        # A preview of A's file made before B's import still applies: its rows did not change.
        assert roster.digest(db, a, _file(*A_FILE)) == a_digest

        # A's next file drops Ben: he is marked, B's pupils are untouched, and A's plan saw
        # only A's pupils.
        next_a = roster.plan(db, _file(A_FILE[0]), a)
        assert [r.username for r in next_a.removed] == ["bsample"]
        roster.apply(db, _file(A_FILE[0]), "import #3", a)
        db.commit()
        rows = _by_user(db)
        assert rows["bsample"].missing_since is not None
        assert rows["ctestcase"].missing_since is None and rows["ddummy"].missing_since is None
        assert rows["ctestcase"].source == "import #2"


def test_a_pupil_on_another_schools_roster_is_a_move_shown_then_applied(database: Any) -> None:
    a, b = _two_schools(database)
    with database.session() as db:
        roster.apply(db, _file(*A_FILE), "import #1", a)
        roster.apply(db, _file(*B_FILE), "import #2", b)
        db.commit()
        a_digest = roster.digest(db, a, _file(*A_FILE))
        # Ben joins South Vale (Year 8, form 8S there).
        ben_at_b = "3,Sample,Ben,8,8S,BSample"
        moving = roster.plan(db, _file(*B_FILE, ben_at_b), b)
        assert [(p.username, row.school_id) for p, row in moving.moved] == [("bsample", a)]
        assert moving.counts(_file(*B_FILE, ben_at_b))["moved"] == 1
        assert moving.changed == [] and moving.new == []
        roster.apply(db, _file(*B_FILE, ben_at_b), "import #3", b)
        db.commit()
        ben = _by_user(db)["bsample"]
        assert (ben.school_id, ben.form, ben.missing_since) == (b, "8S", None)
        # The move took a row the preview of A's file had read: that preview is stale now.
        assert roster.digest(db, a, _file(*A_FILE)) != a_digest
        # ... and A's next file without Ben does not mark him: he is B's now.
        assert roster.plan(db, _file(A_FILE[0]), a).removed == []


def test_a_name_is_shown_only_within_the_events_school(database: Any) -> None:
    import uuid

    from collector.store.models import Device, Event

    a, b = _two_schools(database)
    devices = {k: Device(id=str(uuid.uuid4()), hostname=f"pc-{k}", secret_hash="0" * 64,
                         school_id=school) for k, school in (("a", a), ("b", b), ("trust", None))}
    database.write(lambda s: s.add_all(list(devices.values())))
    with database.session() as db:
        roster.apply(db, _file(*A_FILE), "import #1", a)
        roster.apply(db, _file("9,Old,Ola,7,7B,oldrow"), "before schools")
        db.commit()

        def event(device: str) -> Event:
            return Event(id=str(uuid.uuid4()), device_id=devices[device].id)

        at_a, at_b, at_b_old, at_trust = event("a"), event("b"), event("b"), event("trust")
        found = roster.pupils_for(db, [(at_a, r"NHA\AExample"),
                                       (at_b, "aexample@nha.example"),
                                       (at_b_old, "oldrow"), (at_trust, "aexample")])
        assert {k: r.username for k, r in found.items()} == {
            at_a.id: "aexample", at_b_old.id: "oldrow", at_trust.id: "aexample"}
