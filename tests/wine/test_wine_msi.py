"""The MSI of ``make windows``, installed, upgraded in place and removed by Wine's msiexec, silently.

Two MSIs are built from the working tree with wixl (installer/windows/msi.py, as ``make windows``
does), at 0.1.0 and 0.1.1. The first is installed with the properties a Group Policy or Intune
deployment passes (``/qn COLLECTOR=... TOKEN=... TRUST=... CAFINGERPRINT=...``): its custom action
enrols the machine against a real collector on loopback; the installed CPython runs ``vigil``.
The second replaces it in place (MajorUpgrade: one product left, the new version). ``msiexec /x``
removes every file. A wrong token fails the install (non-zero) and rolls it back.

The MSI's Registry table writes the per-machine Run entry (HKLM ... Run key, "Vigil agent") that
starts the agent at every user's log-on: present with the installed pythonw.exe after the install,
still one value after the upgrade, gone after the removal. Its exact command line, run under Wine
as a signed-in user would, copies the machine's enrolment into the user's profile and starts the
agent, which heartbeats to the collector.
"""

from __future__ import annotations

import getpass
import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.x11 import wait_until
from tests.wine.conftest import REPO, Wine, wine_env

sys.path.insert(0, str(REPO / "installer" / "windows"))
from msi import build_msi  # installer/windows/msi.py

PROGRAM_FILES = wine_env.PREFIX / "drive_c" / "Program Files" / "Vigil"
MACHINE_ENROLMENT = wine_env.PREFIX / "drive_c" / "ProgramData" / "Vigil" / "enrolment"
INSTALLED_PYTHON = r"C:\Program Files\Vigil\python\python.exe"
UNINSTALL_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall"
RUN_KEY = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run"
RUN_COMMAND = (r'"C:\Program Files\Vigil\python\pythonw.exe" -m vigil agent run '
               r'--machine-enrolment "C:\ProgramData\Vigil\enrolment"')
# platformdirs' user_config_dir on Windows: %LOCALAPPDATA%\vigil-agent (the spool is below it)
USER_AGENT_DIR = (wine_env.PREFIX / "drive_c" / "users" / getpass.getuser() / "AppData" / "Local"
                  / "vigil-agent")


def run_values(wine: Wine) -> list[str]:
    """The data of every value of HKLM ... Run key named 'Vigil agent' (64-bit view)."""
    done = wine.run("reg", "query", RUN_KEY, timeout=60)
    if done.returncode != 0 and "Unable to find" in done.stdout + done.stderr:
        return []  # no Run key at all (a fresh prefix has none; removal takes an empty one)
    assert done.returncode == 0, done.stdout + done.stderr
    return [m.group(1).strip() for m in
            re.finditer(r"^\s*Vigil agent\s+REG_SZ\s+(.*)$", done.stdout, re.MULTILINE)]


def installed_products(wine: Wine) -> list[tuple[str, str]]:
    """(product code, DisplayVersion) of every installed product named 'Vigil agent'. Wine
    8.0's reg has no /f, so the whole Uninstall key is read and filtered here."""
    done = wine.run("reg", "query", UNINSTALL_KEY, "/s", timeout=60)
    assert done.returncode == 0, done.stderr
    found = []
    for block in re.split(r"\r?\n(?=HKEY_)", done.stdout):
        if re.search(r"DisplayName\s+REG_SZ\s+Vigil agent\s*$", block, re.MULTILINE):
            code = re.search(r"\{[0-9A-Fa-f-]{36}\}", block.splitlines()[0])
            m = re.search(r"DisplayVersion\s+REG_SZ\s+(\S+)", block)
            found.append((code.group(0) if code else "", m.group(1) if m else "?"))
    return found


def installed_versions(wine: Wine) -> list[str]:
    """DisplayVersion of every installed product named 'Vigil agent'."""
    return [version for _, version in installed_products(wine)]


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
        wine.run("taskkill", "/f", "/im", "pythonw.exe", timeout=60)  # a started agent holds files
        for code, _ in installed_products(wine):
            if code:
                wine.run("msiexec", "/x", code, "/qn", timeout=300)
        assert installed_versions(wine) == [], "a Vigil agent left in the Wine prefix"
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
    assert run_values(wine) == [RUN_COMMAND]
    assert (PROGRAM_FILES / "python" / "pythonw.exe").is_file()

    done = wine.run("msiexec", "/i", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == ["0.1.1"]
    assert len(files_under(PROGRAM_FILES)) == count_v1
    assert (MACHINE_ENROLMENT / "enrolment.json").exists()  # an upgrade keeps the enrolment
    assert run_values(wine) == [RUN_COMMAND]  # one value, not one per version

    done = wine.run("msiexec", "/x", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == []
    assert files_under(PROGRAM_FILES) == []
    assert run_values(wine) == []


def test_msi_run_entry_starts_the_agent_at_log_on(
        collector_server: Any, wine: Wine, clean_prefix: None, msis: dict[str, Path]) -> None:
    """The Run entry's exact command line, as Windows' shell starts it at log-on (Explorer runs
    HKLM Run values in the user's session, as the user): the agent adopts the machine's
    enrolment and runs (pythonw.exe has no console; the collector seeing its heartbeat and its
    status file are the proof that it started)."""
    shutil.rmtree(USER_AGENT_DIR, ignore_errors=True)
    token = collector_server.make_token()
    done = wine.run("msiexec", "/i", wine_env.winpath(msis["0.1.0"]), "/qn",
                    f"COLLECTOR={collector_server.url}", f"TOKEN={token}",
                    f"TRUST={collector_server.keyset_fingerprint}",
                    f"CAFINGERPRINT={collector_server.cert_fingerprint}", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (command,) = run_values(wine)
    argv = shlex.split(command)  # the Windows quoting of RUN_COMMAND reads the same here
    assert argv[0] == r"C:\Program Files\Vigil\python\pythonw.exe"
    device = json.loads((MACHINE_ENROLMENT / "enrolment.json").read_text())["device_id"]
    try:
        agent = wine.start(*argv, extra={"VIGIL_AGENT_HEARTBEAT_S": "1"})
        status = USER_AGENT_DIR / "spool" / "status.json"
        wait_until(lambda: status.exists() and json.loads(status.read_text()).get(
            "last_heartbeat"), 90, interval=0.2, what="the agent's first heartbeat")
        adopted = json.loads((USER_AGENT_DIR / "enrolment.json").read_text())
        assert adopted["device_id"] == device
        assert agent.proc.poll() is None, agent.output()
        # if Wine hands pythonw.exe the pipe as stderr, the log says so too
        if agent.lines:
            agent.wait_line("agent running", 30, "the agent's start line")
    finally:
        # The agent must be gone before clean_prefix uninstalls (it tears down before the
        # wine fixture would stop it): a running pythonw.exe keeps the product installed.
        wine.stop_all()
        wine.run("taskkill", "/f", "/im", "pythonw.exe", timeout=60)
        shutil.rmtree(USER_AGENT_DIR, ignore_errors=True)


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
