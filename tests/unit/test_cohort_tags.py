"""Issue 18, cohort tags: the map of hashed logins to year and form (collector.cohorts), its
lookup on the desktop (agent.cohorts), the tag in an event's clear metadata (core.envelope),
its check at ingest and routing rules that name a year (collector.routing)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cohorts import CohortState
from agent.config import ConfigDir
from collector.cohorts import cohort_map, salt_for
from collector.store.db import Database
from collector.store.models import (
    Device,
    Event,
    RosterImport,
    RosterPupil,
    RouteRule,
    School,
    utcnow,
)
from core import envelope
from core.cohort import check_tag, login_key, tag_key
from core.errors import EnvelopeError, MetadataMismatch
from tests.fixtures.keys import Keyholder

T0 = datetime(2026, 12, 7, 10, 14, tzinfo=UTC)


def _pupils(db: Database) -> None:
    db.write(lambda s: s.add_all([
        RosterPupil(username="ann.y7", given_name="Ann", family_name="Example", upn="A123456789012",
                    year="7", form="7B", flags=["SEN", "LAC"]),
        RosterPupil(username="cara.y9", given_name="Cara", family_name="Testcase", year="9",
                    form="9G", flags=["CP"]),
        RosterPupil(username="left.y8", given_name="Len", family_name="Gone", year="8",
                    form="8R", missing_since=utcnow()),
        RosterPupil(username="noyear", given_name="Nia", family_name="Blank"),
    ]))


def _school(db: Database) -> int:
    def add(s: Any) -> int:
        school = School(code="NHA", name="North Hill Academy")
        s.add(school)
        s.flush()
        return school.id or 0

    return db.write(add)


def test_the_fold_and_the_key_are_the_rosters_and_an_hmac_under_the_salt() -> None:
    salt = bytes(range(32))
    for login in ("SCHOOL\\Ann.Y7", "ann.y7@school.example", " ann.y7 ", "ANN.Y7"):
        assert login_key(login) == "ann.y7"
        assert tag_key(salt, login) == hmac.new(salt, b"ann.y7", hashlib.sha256
                                                ).digest()[:16].hex()
    assert tag_key(salt, "ann.y7") != tag_key(bytes(32), "ann.y7")  # per school
    assert len(tag_key(salt, "x")) == 32
    from dashboard import roster

    assert roster.login_key is login_key  # one fold, shared with the roster


def test_a_tag_is_short_plain_text() -> None:
    assert check_tag("7", "7B") is None and check_tag("", "") is None
    assert check_tag("Reception", "7 O'Neill & Co") is None
    assert "at most 16" in (check_tag("7" * 17, "") or "")
    assert "at most 32" in (check_tag("7", "F" * 33) or "")
    assert check_tag("7", "<b>") is not None and check_tag("7\n", "") is not None
    assert check_tag(7, "") == "year must be text"


def test_the_map_holds_year_and_form_of_pupils_on_the_roster_only(database: Database) -> None:
    _pupils(database)
    found = cohort_map(database, None)
    doc = json.loads(found.body)
    salt = bytes.fromhex(doc["salt"])
    assert salt == salt_for(database, None) and len(salt) == 32
    assert doc["enabled"] is True and found.pupils == 2
    # Missing from the MIS, or with neither year nor form: left out.
    assert doc["pupils"] == {tag_key(salt, "ann.y7"): {"year": "7", "form": "7B"},
                             tag_key(salt, "cara.y9"): {"year": "9", "form": "9G"}}
    for secret in ("Ann", "Example", "A123456789012", "SEN", "LAC", "CP", "ann.y7", "Len",
                   "noyear", "8R"):
        assert secret not in found.body.decode()
    assert found.etag == "sha256:" + hashlib.sha256(found.body).hexdigest()
    assert cohort_map(database, None).etag == found.etag  # stable: the salt is kept


def test_each_school_has_its_own_stable_salt_and_tagging_can_be_off(database: Database) -> None:
    _pupils(database)
    school = _school(database)
    own, trust = cohort_map(database, school), cohort_map(database, None)
    assert salt_for(database, school) != salt_for(database, None)
    assert set(json.loads(own.body)["pupils"]).isdisjoint(json.loads(trust.body)["pupils"])
    assert salt_for(database, school) == salt_for(database, school)
    off = json.loads(cohort_map(database, school, enabled=False).body)
    assert off["enabled"] is False and off["pupils"] == {}
    # A roster change (an applied import, dashboard or CLI) is a new map: the cache follows it.
    def change(s: Any) -> None:
        s.add(RosterPupil(username="dan.y7", given_name="Dan", year="7", form="7C"))
        s.add(RosterImport(shape="sims", base_digest="x", created_by="t", applied_at=utcnow()))

    database.write(change)
    assert cohort_map(database, school).etag != own.etag
    assert cohort_map(database, school).pupils == 3


def test_a_schools_map_holds_its_own_pupils_and_those_of_no_school(database: Database) -> None:
    from dashboard import roster

    _pupils(database)  # imported before rosters were per school: no school
    north = _school(database)

    def add(s: Any) -> int:
        school = School(code="SVP", name="South Vale Primary")
        s.add(school)
        s.flush()
        return school.id or 0

    south = database.write(add)
    head = b"Adno,Legal Surname,Forename,Year,Reg Group,Username\n"

    def imported(school: int, *rows: bytes) -> None:
        def work(s: Any) -> None:
            roster.apply(s, roster.parse(head + b"".join(rows)), "import", school)
            s.add(RosterImport(shape="sims", base_digest="x", created_by="t", school_id=school,
                               applied_at=utcnow()))

        database.write(work)

    imported(north, b"1,North,Nel,7,7N,nel.n\n")
    imported(south, b"1,South,Sam,8,8S,sam.s\n", b"2,South,Sue,9,9S,sue.s\n")

    def keys(school: int) -> dict[str, dict[str, str]]:
        return json.loads(cohort_map(database, school).body)["pupils"]

    salt = salt_for(database, north)
    assert keys(north) == {tag_key(salt, "nel.n"): {"year": "7", "form": "7N"},
                           tag_key(salt, "ann.y7"): {"year": "7", "form": "7B"},
                           tag_key(salt, "cara.y9"): {"year": "9", "form": "9G"}}
    assert cohort_map(database, south).pupils == 4  # Sam, Sue, Ann, Cara
    assert cohort_map(database, None).pupils == 5  # the trust's own devices: every pupil
    # South's import rebuilds North's map to the same bytes (so its desktops keep it); North's
    # own import, here one that takes Sue from South, is a new map for both.
    north_etag, south_etag = cohort_map(database, north).etag, cohort_map(database, south).etag
    imported(south, b"1,South,Sam,8,8T,sam.s\n", b"2,South,Sue,9,9S,sue.s\n")
    assert cohort_map(database, north).etag == north_etag
    assert cohort_map(database, south).etag != south_etag
    south_etag = cohort_map(database, south).etag
    imported(north, b"1,North,Nel,7,7N,nel.n\n", b"2,South,Sue,9,9N,sue.s\n")
    assert keys(north)[tag_key(salt, "sue.s")] == {"year": "9", "form": "9N"}
    assert cohort_map(database, south).etag != south_etag
    assert tag_key(salt_for(database, south), "sue.s") not in keys(south)


def test_a_school_switches_tagging_off_by_its_code(database: Database, tmp_path: Path) -> None:
    from collector.cohorts import tagging_on
    from collector.errors import SettingsError
    from collector.settings import Settings
    school = _school(database)
    on, off = Settings(data_dir=tmp_path), Settings(data_dir=tmp_path, cohort_tags_off=["nha"])
    assert tagging_on(database, on, school) and tagging_on(database, on, None)
    assert not tagging_on(database, off, school) and tagging_on(database, off, None)
    assert not tagging_on(database, Settings(data_dir=tmp_path, cohort_tags=False), None)
    with pytest.raises(SettingsError):
        Settings(data_dir=tmp_path, cohort_tags="no")  # type: ignore[arg-type]


def test_the_agent_looks_the_login_up_and_keeps_the_map_beside_the_policy(
        database: Database, tmp_path: Path) -> None:
    _pupils(database)
    found = cohort_map(database, None)
    config = ConfigDir(tmp_path / "config")
    cohorts = CohortState(config)
    assert cohorts.lookup("ann.y7") == ("", "") and cohorts.etag is None  # no map yet
    assert cohorts.offer(found.body, f'"{found.etag}"')
    assert cohorts.lookup("SCHOOL\\Ann.Y7") == ("7", "7B")
    assert cohorts.lookup("cara.y9@school.example") == ("9", "9G")
    assert cohorts.lookup("left.y8") == ("", "") and cohorts.lookup("") == ("", "")
    assert (config.path / "cohorts.json").exists()
    again = CohortState(config)  # a restart without the network still tags
    assert again.lookup("ann.y7") == ("7", "7B") and again.etag == f'"{found.etag}"'
    assert not again.offer(b"{not json", '"x"')  # refused; the old map stays
    assert again.lookup("ann.y7") == ("7", "7B")
    off = cohort_map(database, None, enabled=False)
    assert again.offer(off.body, f'"{off.etag}"') and again.lookup("ann.y7") == ("", "")


def _meta(**tag: str) -> envelope.Metadata:
    return envelope.Metadata(event_id=str(uuid.uuid4()), device_id="d1", time=T0,
                             category="suicide", severity=5, rule="suicide.r", source="typed",
                             **tag)


def test_the_tag_is_clear_metadata_bound_by_the_seal(head_key: Keyholder) -> None:
    untagged = _meta()
    assert "year" not in untagged.to_dict()  # an untagged event keeps its old bytes
    envelope.check_meta(untagged, {"year": "", "form": ""})  # as its row has it
    with pytest.raises(MetadataMismatch):
        envelope.check_meta(untagged, {"year": "7", "form": ""})
    tagged = _meta(year="7", form="7B")
    data = envelope.seal(tagged, {"user": "ann.y7"}, b"png", [head_key.public])
    meta, _ = envelope.read_meta(data)
    assert (meta.year, meta.form) == ("7", "7B")
    row = {"year": "7", "form": "7B", "severity": 5}
    envelope.check_meta(meta, row)
    with pytest.raises(MetadataMismatch):  # a row relabelled to another year is refused
        envelope.check_meta(meta, {**row, "year": "9"})
    with pytest.raises(EnvelopeError):
        envelope.Metadata.from_dict({**untagged.to_dict(), "year": ""})
    with pytest.raises(EnvelopeError):
        _meta(year="7" * 65)


def _device(db: Database) -> Device:
    device = Device(id=str(uuid.uuid4()), hostname="pc", secret_hash="0" * 64)
    db.write(lambda s: s.add(device))
    return device


def test_ingest_stores_the_tag_and_refuses_a_malformed_one_with_422(
        database: Database, head_key: Keyholder, tmp_path: Path) -> None:
    import base64

    from collector.errors import BadRequest
    from collector.ingest import IncomingEvent, ingest
    from collector.settings import Settings
    from collector.store.blobs import BlobStore

    settings = Settings(data_dir=tmp_path)
    blobs = BlobStore(tmp_path / "blobs")
    device = _device(database)

    def sealed(**tag: str) -> IncomingEvent:
        meta = envelope.Metadata(event_id=str(uuid.uuid4()), device_id=device.id, time=T0,
                                 category="suicide", severity=5, rule="suicide.r",
                                 source="typed", **tag)
        data = envelope.seal(meta, {"user": "x"}, b"", [head_key.public])
        return IncomingEvent(meta.event_id, base64.b64encode(data).decode())

    good, plain = sealed(year="7", form="7B"), sealed()
    assert ingest(database, blobs, settings, device, [good, plain]).stored == [good.id, plain.id]
    with database.session() as s:
        assert (s.get(Event, good.id).year, s.get(Event, good.id).form) == ("7", "7B")
        assert (s.get(Event, plain.id).year, s.get(Event, plain.id).form) == ("", "")
    for bad in ({"year": "<script>"}, {"form": "7B\x00"}, {"year": "1" * 17}):
        event = sealed(**bad)
        with pytest.raises(BadRequest) as refused:
            ingest(database, blobs, settings, device, [event])
        assert refused.value.status == 422 and refused.value.code == "bad-metadata"
        assert "cohort tag" in str(refused.value)
        with database.session() as s:
            assert s.get(Event, event.id) is None


def test_a_rule_naming_a_year_matches_that_year_only() -> None:
    from collector.routing import _matches

    def event(year: str) -> Event:
        return Event(id="e", device_id="d", time=T0, category="suicide", severity=5, rule="r",
                     blob_key="k", size=1, sha256="s", year=year)

    year7 = RouteRule(name="Y7", min_severity=5, year="7", targets=[1], created_by="h")
    anyone = RouteRule(name="any", min_severity=5, targets=[1], created_by="h")
    assert _matches(year7, event("7"), "", None)
    assert not _matches(year7, event("9"), "", None)
    assert not _matches(year7, event(""), "", None)  # untagged: rules for any year only
    assert all(_matches(anyone, event(y), "", None) for y in ("7", "9", ""))
    with_group = RouteRule(name="g", min_severity=5, year="7", group="trolley", targets=[1],
                           created_by="h")
    assert not _matches(with_group, event("7"), "suite", None)


def test_an_accounts_years_fold_as_the_roster_does() -> None:
    """An account's years match events' tags only if written as the roster writes a year."""
    from core.cohort import join_years, split_years

    years = split_years(" Year 8, 7,Y07,, Reception ")
    assert years == frozenset({"7", "8", "Reception"})
    assert join_years(years) == "7,8,Reception"
    assert split_years("") == frozenset() and join_years(frozenset()) == ""
    for bad in ("<7>", "x" * 17):
        with pytest.raises(ValueError, match="is not a year group"):
            split_years(f"7,{bad}")
