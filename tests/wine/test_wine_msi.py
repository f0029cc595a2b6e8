"""The MSI of ``make windows``, installed, upgraded in place and removed by Wine's msiexec, silently.

Two MSIs are built from the working tree with wixl (installer/windows/msi.py, as ``make windows``
does), at 0.1.0 and 0.1.1. The first is installed with the properties a Group Policy or Intune
deployment passes (``/qn COLLECTOR=... TOKEN=... TRUST=... CAFINGERPRINT=...``): its custom action
enrols the machine against a real collector on loopback; the installed CPython runs ``vigil``.
The second replaces it in place (MajorUpgrade: one product left, the new version). ``msiexec /x``
removes every file. A wrong token fails the install (non-zero) and rolls it back.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.wine.conftest import REPO, Wine, wine_env

sys.path.insert(0, str(REPO / "installer" / "windows"))
from msi import build_msi  # installer/windows/msi.py

PROGRAM_FILES = wine_env.PREFIX / "drive_c" / "Program Files" / "Vigil"
MACHINE_ENROLMENT = wine_env.PREFIX / "drive_c" / "ProgramData" / "Vigil" / "enrolment"
INSTALLED_PYTHON = r"C:\Program Files\Vigil\python\python.exe"
UNINSTALL_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall"


def installed_versions(wine: Wine) -> list[str]:
    """DisplayVersion of every installed product named 'Vigil agent'."""
    done = wine.run("reg", "query", UNINSTALL_KEY, "/s", timeout=60)
    assert done.returncode == 0, done.stderr
    versions = []
    for block in re.split(r"\r?\n(?=HKEY_)", done.stdout):
        if re.search(r"DisplayName\s+REG_SZ\s+Vigil agent\s*$", block, re.MULTILINE):
            m = re.search(r"DisplayVersion\s+REG_SZ\s+(\S+)", block)
            versions.append(m.group(1) if m else "?")
    return versions


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.fixture
def msis(tmp_path: Path) -> dict[str, Path]:
    from windows_build import RUNTIME

    assert (RUNTIME / "python.exe").exists(), "run `make wine-env` (it builds the runtime)"
    return {v: build_msi(RUNTIME, tmp_path / f"bundle-{v}", tmp_path / "dist", v)
            for v in ("0.1.0", "0.1.1")}


@pytest.fixture
def clean_prefix(wine: Wine) -> Any:
    """No Vigil installed before or after (a failed test must not leave it for the next)."""
    def remove_all() -> None:
        for code in re.findall(r"\{[0-9A-F-]{36}\}", wine.run(
                "reg", "query", UNINSTALL_KEY, "/s", "/f", "Vigil agent", timeout=60).stdout):
            wine.run("msiexec", "/x", code, "/qn", timeout=300)
    remove_all()
    yield
    remove_all()


def test_msi_silent_install_enrols_upgrades_in_place_and_uninstalls(
        collector_server: Any, wine: Wine, clean_prefix: None, msis: dict[str, Path]) -> None:
    v1, v2 = msis["0.1.0"], msis["0.1.1"]
    assert installed_versions(wine) == []
    token = collector_server.make_token()
    props = [f"COLLECTOR={collector_server.url}", f"TOKEN={token}",
             f"TRUST={collector_server.keyset_fingerprint}",
             f"CAFINGERPRINT={collector_server.cert_fingerprint}"]

    done = wine.run("msiexec", "/i", wine_env.winpath(v1), "/qn", *props, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (PROGRAM_FILES / "python" / "python.exe").is_file()
    assert (PROGRAM_FILES / "python" / "Lib" / "site-packages" / "agent" / "runner.py").is_file()
    assert (PROGRAM_FILES / "python" / "Lib" / "site-packages" / "cryptography").is_dir()
    assert not (PROGRAM_FILES / "python" / "Lib" / "site-packages" / "collector").exists()
    assert installed_versions(wine) == ["0.1.0"]
    enrolment = json.loads((MACHINE_ENROLMENT / "enrolment.json").read_text())
    assert enrolment["collector"] == collector_server.url
    # the installed CPython (no test path in its python313._pth) runs the installed vigil
    ran = wine.run(INSTALLED_PYTHON, "-c", "import vigil, agent.runner, agent.sensors.windows; "
                   "print(vigil.__file__)", timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip().startswith(r"C:\Program Files\Vigil\python\Lib\site-packages")
    count_v1 = len(files_under(PROGRAM_FILES))

    done = wine.run("msiexec", "/i", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == ["0.1.1"]
    assert len(files_under(PROGRAM_FILES)) == count_v1
    assert (MACHINE_ENROLMENT / "enrolment.json").exists()  # an upgrade keeps the enrolment

    done = wine.run("msiexec", "/x", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == []
    assert files_under(PROGRAM_FILES) == []


def test_msi_with_a_wrong_token_fails_and_rolls_back(
        collector_server: Any, wine: Wine, clean_prefix: None, msis: dict[str, Path]) -> None:
    props = [f"COLLECTOR={collector_server.url}", "TOKEN=not-a-token",
             f"TRUST={collector_server.keyset_fingerprint}",
             f"CAFINGERPRINT={collector_server.cert_fingerprint}"]
    done = wine.run("msiexec", "/i", wine_env.winpath(msis["0.1.0"]), "/qn", *props, timeout=300)
    # Windows reports 1603 (ERROR_INSTALL_FAILURE); Wine 8.0's msiexec passes on the failed
    # custom action's own exit code (vigil's 91 for a refused enrolment). Either way: not 0.
    assert done.returncode in (1603, 91), (done.returncode, done.stdout + done.stderr)
    assert "refused the enrolment" in done.stderr
    assert installed_versions(wine) == []
    assert files_under(PROGRAM_FILES) == []
