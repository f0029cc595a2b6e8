"""collector.device_health on SQLite and PostgreSQL: silent devices, the policy each runs, and
tamper reports, as the devices page and the silent-device job see them."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from collector.device_health import health, silent
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import Device, Event, PolicyRecord, utcnow

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64
FORGED = "sha256:" + "f" * 64


def _device(session: Session, name: str, **fields: object) -> None:
    session.add(Device(id=name, hostname=name, secret_hash="0" * 64, **fields))


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, silent_after_minutes=30, silent_idle_days=16)


def test_silent_means_quiet_while_signed_in_or_away_longer_than_a_holiday(
        database: Database, tmp_path: Path) -> None:
    now = utcnow()

    def setup(s: Session) -> None:
        _device(s, "gone-quiet", last_seen=now - timedelta(hours=2), user_signed_in=True)
        _device(s, "shut-down", last_seen=now - timedelta(days=3), user_signed_in=False)
        _device(s, "away-a-month", last_seen=now - timedelta(days=30), user_signed_in=False)
        _device(s, "fine", last_seen=now - timedelta(minutes=1), user_signed_in=True)
        _device(s, "revoked", last_seen=now - timedelta(hours=2), user_signed_in=True,
                revoked_at=now)
        _device(s, "never-seen", enrolled_at=now - timedelta(hours=1))
        _device(s, "just-enrolled", enrolled_at=now - timedelta(minutes=5))

    database.write(setup)
    settings = _settings(tmp_path)
    with database.session() as s:
        assert [d.id for d in silent(s, settings)] == ["never-seen", "away-a-month", "gone-quiet"]
        devices = list(s.exec(select(Device)).all())
        states = {d: (h.state, h.why) for d, h in health(s, settings, devices).items()}
    assert states["gone-quiet"] == (
        "silent", ("no heartbeat for 2 hours while a user was signed in: the agent may have "
                   "been stopped"))
    assert states["away-a-month"] == ("silent", "not heard from for 30 days")
    assert states["never-seen"] == ("silent", "never heard from since it was enrolled")
    for fine in ("shut-down", "fine", "just-enrolled"):
        assert states[fine] == ("ok", ""), fine
    assert states["revoked"] == ("revoked", "")


def test_the_policy_a_device_runs_is_current_behind_or_other(
        database: Database, tmp_path: Path) -> None:
    now = utcnow()

    def setup(s: Session) -> None:
        s.add(PolicyRecord(serial=1, signed=b"x", etag=DIGEST_1, signer="k",
                           created_at=now - timedelta(days=2)))
        s.add(PolicyRecord(serial=2, signed=b"y", etag=DIGEST_2, signer="k",
                           created_at=now - timedelta(hours=1)))
        seen = {"last_seen": now, "user_signed_in": True}
        _device(s, "current", policy_serial=2, policy_digest=DIGEST_2, **seen)
        _device(s, "old-agent", policy_serial=2, **seen)  # reports no digest yet
        _device(s, "behind", policy_serial=1, policy_digest=DIGEST_1, **seen)
        _device(s, "off-since", policy_serial=1, policy_digest=DIGEST_1,
                last_seen=now - timedelta(hours=3))  # has not been on since serial 2
        _device(s, "forged", policy_serial=2, policy_digest=FORGED, **seen)
        _device(s, "foreign", policy_serial=9, policy_digest=FORGED, **seen)
        _device(s, "new", **seen)

    database.write(setup)
    with database.session() as s:
        devices = list(s.exec(select(Device)).all())
        policy = {d: h.policy for d, h in health(s, _settings(tmp_path), devices).items()}
    assert policy == {"current": "current", "old-agent": "current", "behind": "behind",
                      "off-since": "current", "forged": "other", "foreign": "other",
                      "new": "unknown"}


def test_tamper_reports_of_the_last_week_are_counted_per_device(
        database: Database, tmp_path: Path) -> None:
    now = utcnow()

    def event(s: Session, n: int, device: str, category: str, days: float) -> None:
        s.add(Event(id=f"{n:08d}-0000-4000-8000-000000000000", device_id=device,
                    time=now - timedelta(days=days), category=category, severity=4,
                    rule=f"{category}.x", source="supervisor", blob_key=f"k{n}", size=1,
                    sha256=hashlib.sha256(b"%d" % n).hexdigest()))

    def setup(s: Session) -> None:
        _device(s, "pc", last_seen=now, user_signed_in=True)
        _device(s, "other", last_seen=now, user_signed_in=True)
        s.flush()
        event(s, 1, "pc", "tamper", 1)
        event(s, 2, "pc", "tamper", 2)
        event(s, 3, "pc", "tamper", 9)  # older than a week
        event(s, 4, "pc", "suicide", 1)
        event(s, 5, "other", "bullying", 1)

    database.write(setup)
    with database.session() as s:
        devices = list(s.exec(select(Device)).all())
        found = health(s, _settings(tmp_path), devices)
    assert (found["pc"].tamper, found["other"].tamper) == (2, 0)
    assert not found["pc"].healthy and found["other"].healthy


def test_each_silence_is_recorded_once_and_a_new_one_again(
        database: Database, tmp_path: Path) -> None:
    from collector.silent_devices import SILENT, flag_silent
    from collector.store.models import AuditEntry

    settings = _settings(tmp_path)
    now = utcnow()
    database.write(lambda s: _device(s, "pc", last_seen=now - timedelta(hours=1),
                                     user_signed_in=True))
    assert flag_silent(database, settings) == 1
    assert flag_silent(database, settings) == 0  # the same silence

    def heard_again_then_quiet(s: Session) -> None:
        device = s.get(Device, "pc")
        assert device is not None and device.silent_alerted_at is not None
        device.last_seen = utcnow() + timedelta(seconds=1)  # a heartbeat after the alert...
        s.add(device)

    database.write(heard_again_then_quiet)
    assert flag_silent(database, settings) == 0  # ...so it is not silent now
    later = utcnow() + timedelta(hours=2)  # ...and two hours later it is, again
    from unittest import mock

    with mock.patch("collector.silent_devices.utcnow", return_value=later):
        assert flag_silent(database, settings) == 1
    with database.session() as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == SILENT)).all()
    assert [e.target for e in entries] == ["pc", "pc"]
