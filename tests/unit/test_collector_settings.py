"""Settings: written by init with every default, read back, bad files refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.errors import NotInitialised, SettingsError
from collector.settings import SETTINGS_FILE, Settings, SmtpSettings, render_settings_file


def test_defaults_round_trip_through_the_file(tmp_path: Path) -> None:
    written = Settings(data_dir=tmp_path, alert_recipients=("dsl@school.example",),
                       smtp=SmtpSettings(host="mail.example", port=2525))
    (tmp_path / SETTINGS_FILE).write_text(render_settings_file(written))
    loaded = Settings.load(tmp_path)
    assert loaded == written
    assert loaded.database_url == f"sqlite:///{tmp_path.resolve() / 'vigil.db'}"
    assert loaded.blob_dir == tmp_path.resolve() / "blobs"
    assert loaded.retention_days == 365 and loaded.alert_min_severity == 5
    assert loaded.dashboard.session_idle_minutes == 15
    assert 'database_url = ""' in (tmp_path / SETTINGS_FILE).read_text()  # data dir can move


def test_unknown_dashboard_and_policy_keys_are_kept_for_those_parts(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text(
        '[dashboard]\nsession_idle_minutes = 5\ntheme = "dark"\n[policy]\nflood_window_s = 30\n'
        'school_name = "Oak"\n')
    loaded = Settings.load(tmp_path)
    assert loaded.dashboard.session_idle_minutes == 5
    assert loaded.dashboard.get("theme") == "dark"
    assert loaded.policy.extra == {"school_name": "Oak"}
    assert loaded.policy.flood_window_s == 30


def test_overrides_from_the_command_line_win(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("port = 9000\n")
    assert Settings.load(tmp_path, port=9443, host=None).port == 9443


@pytest.mark.parametrize(("text", "expected"), [
    ("prot = 1\n", "unknown setting 'prot'"),
    ("port = \n", "settings.toml"),
    ("[smtp]\nhots = 'x'\n", "unknown key(s) in [smtp]: hots"),
    ("retention_days = 0\n", "retention_days must be a positive number"),
    ("alert_min_severity = 9\n", "alert_min_severity must be between 1 and 5"),
    ("blob_store = 's3'\n", 'blob_store must be "files" or "postgresql"'),
    ("blob_store = 'postgresql'\n", 'blob_store = "postgresql" needs a PostgreSQL database_url'),
])
def test_bad_settings_give_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / SETTINGS_FILE).write_text(text)
    with pytest.raises(SettingsError) as err:
        Settings.load(tmp_path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_missing_data_dir_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised, match="vigil collector init"):
        Settings.load(tmp_path / "nope")
