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
                                     "removed_from_file": 0, "unreadable": 1}
        roster.apply(db, sims, "import #1 (SIMS)")
        db.commit()
        before = roster.digest(db)
        stamps = {r.username: r.updated_at for r in db.exec(select(RosterPupil)).all()}

        # The same file again: nothing to do, and nothing written.
        assert _counts(db, sims) == {"new": 0, "changed": 0, "unchanged": 3,
                                     "removed_from_file": 0, "unreadable": 1}
        roster.apply(db, sims, "import #2 (SIMS)")
        db.commit()
        assert roster.digest(db) == before
        rows = db.exec(select(RosterPupil)).all()
        assert {r.username: r.updated_at for r in rows} == stamps
        assert {r.source for r in rows} == {"import #1 (SIMS)"}

        # Bromcom's export of two of them: Ben gains a CP plan, Dev is not in the file (kept).
        bromcom = _read("bromcom.csv")
        assert _counts(db, bromcom) == {"new": 0, "changed": 2, "unchanged": 0,
                                        "removed_from_file": 1, "unreadable": 0}
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
