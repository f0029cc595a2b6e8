"""agent/selftest.py's lines and verdicts, and the Run entry's adoption of the machine's enrolment
(vigil/commands/agent.py), without a display or a collector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import ConfigDir, Enrolment
from agent.selftest import FAIL, OK, SKIP, Check, _Selftest, run_selftest
from agent.settings import Settings
from vigil.commands.agent import _adopt_machine_enrolment


def enrolment(device: str = "dev-1") -> Enrolment:
    return Enrolment(collector="https://127.0.0.1:1", device_id=device, secret="s3cret",
                     keyset_fingerprint="vks1:abc", cert_fingerprints=("00" * 32,))


def test_line_format_and_model_switched_off(tmp_path: Path) -> None:
    assert Check("title", OK, "read").line() == "OK    title       read"
    test = _Selftest(Settings(config_dir=tmp_path, model=False))
    check = test.model_check()
    assert check.state == SKIP and "switched off" in check.reason


def test_unenrolled_fails_and_skips_what_needs_the_enrolment(tmp_path: Path) -> None:
    test = _Selftest(Settings(config_dir=tmp_path / "none"))
    assert test.collector_check().state == SKIP
    assert test.policy_check().state == SKIP


def test_unreachable_collector_is_one_failed_line_and_no_secret(tmp_path: Path) -> None:
    ConfigDir(tmp_path).save_enrolment(enrolment())
    test = _Selftest(Settings(config_dir=tmp_path, http_timeout_s=2))
    assert test.enrolment_check().state == OK
    check = test.collector_check()
    assert check.state == FAIL and "\n" not in check.reason and "s3cret" not in check.line()


def test_exit_code_counts_failures(tmp_path: Path) -> None:
    # Every check runs for real; whatever this machine lacks (no enrolment here, maybe no
    # display) fails, and the summary and exit code must say exactly that.
    out: list[str] = []
    code = run_selftest(Settings(config_dir=tmp_path / "none", model=False), out.append)
    failed = [line for line in out[:-1] if line.startswith("FAIL")]
    assert code == 1 and out[0].startswith("FAIL  enrolment")
    assert out[-1] == f"selftest: {len(failed)} check(s) failed"


def test_no_display_fails_the_keyboard_check_at_once_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a display the hook thread would die with a traceback and the check wait 10 s.
    import time

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    out: list[str] = []
    started = time.monotonic()
    run_selftest(Settings(config_dir=tmp_path / "none", model=False), out.append)
    (keyboard,) = [line for line in out if "keyboard" in line.split(":")[0]]
    assert keyboard.startswith("FAIL") and "DISPLAY is not set" in keyboard, keyboard
    assert time.monotonic() - started < 9, "the keyboard check waited for a hook"


def test_machine_enrolment_is_copied_once_and_renewed_when_it_changes(tmp_path: Path) -> None:
    machine, user = ConfigDir(tmp_path / "machine"), tmp_path / "user"
    _adopt_machine_enrolment(machine.path, user)  # nothing installed: nothing happens
    assert not user.exists()
    machine.save_enrolment(enrolment("dev-1"))
    machine.save_trust(json.dumps({"pin": "vks1:abc"}))
    _adopt_machine_enrolment(machine.path, user)
    assert ConfigDir(user).load_enrolment().device_id == "dev-1"
    assert (user / "trust.json").read_bytes() == machine.file("trust.json").read_bytes()
    ConfigDir(user).save_policy(b"{}", "etag")
    _adopt_machine_enrolment(machine.path, user)  # unchanged: the user's policy stays
    assert (user / "policy.json").exists()
    machine.save_enrolment(enrolment("dev-2"))  # enrolled again: a new copy, no stale policy
    _adopt_machine_enrolment(machine.path, user)
    assert ConfigDir(user).load_enrolment().device_id == "dev-2"
    assert not (user / "policy.json").exists()
