"""[policy] language_packs: the collector's policy carries the language packs a school keeps on
(all by default), the dashboard's rule tester uses the same set, a typo is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.admin import open_database, register_keyholder
from collector.errors import SettingsError
from collector.policy_builder import current_policy
from collector.settings import (
    SETTINGS_FILE,
    PolicySettings,
    Settings,
    render_settings_file,
)
from core.matcher import Matcher
from core.rules import PACK_PREFIX, language_packs, load_policy_files
from tests.fixtures.keys import Keyholders


def _policy(tmp_path: Path, keyholders: Keyholders, packs: list[str] | None) -> object:
    policy = PolicySettings() if packs is None else PolicySettings(language_packs=packs)
    settings = Settings(data_dir=tmp_path, policy=policy)
    db = open_database(settings)
    try:
        register_keyholder(db, keyholders.head.key_file, keyholders.head.password, actor="test")
        return db.write(lambda s: current_policy(s, settings))
    finally:
        db.close()


def _packs_in(policy: object) -> set[str]:
    names = policy.wordlists  # type: ignore[attr-defined]
    prefix = f"default/{PACK_PREFIX}"
    return {n[len(prefix):-len(".toml")] for n in names if n.startswith(prefix)}


def test_default_is_every_pack_and_is_written_out(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.policy.language_packs == ["all"]
    (tmp_path / SETTINGS_FILE).write_text(render_settings_file(settings))
    assert 'language_packs = ["all"]' in (tmp_path / SETTINGS_FILE).read_text()
    assert Settings.load(tmp_path) == settings


def test_a_settings_file_can_switch_packs_off(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text('[policy]\nlanguage_packs = ["cy", "ur-latn"]\n')
    assert Settings.load(tmp_path).policy.language_packs == ["cy", "ur-latn"]


@pytest.mark.parametrize(("value", "expected"), [
    ('["cy", "klingon"]', "unknown language pack 'klingon'"),
    ('"cy"', "must be a list of codes"),
])
def test_a_bad_pack_setting_is_one_clear_line(tmp_path: Path, value: str, expected: str) -> None:
    (tmp_path / SETTINGS_FILE).write_text(f"[policy]\nlanguage_packs = {value}\n")
    with pytest.raises(SettingsError) as err:
        Settings.load(tmp_path)
    assert expected in str(err.value) and "language_packs" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("packs", "expected"), [
    (None, set(language_packs())),
    (["all"], set(language_packs())),
    (["cy", "ur-latn"], {"cy", "ur-Latn"}),
    ([], set()),
])
def test_the_policy_carries_the_chosen_packs(tmp_path: Path, keyholders: Keyholders,
                                             packs: list[str] | None,
                                             expected: set[str]) -> None:
    policy = _policy(tmp_path, keyholders, packs)
    assert _packs_in(policy) == expected
    assert "default/suicide.toml" in policy.wordlists  # type: ignore[attr-defined]
    assert "default/eating_disorder.toml" in policy.wordlists  # type: ignore[attr-defined]
    # What the agent builds from it: the Welsh pack fires only when it was kept on.
    matcher = Matcher(load_policy_files(policy.wordlists))  # type: ignore[attr-defined]
    fired = {m.rule.id for m in matcher.match("dwi isio marw")}
    assert ("suicide.cy.isio_marw" in fired) == ("cy" in expected)
