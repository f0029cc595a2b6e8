"""The MSI of ``make windows``, installed, upgraded in place and removed by Wine's msiexec, silently.

Two MSIs are built from the working tree with wixl (installer/windows/msi.py, as ``make windows``
does), at 0.1.0 and 0.1.1. The first is installed with the properties a Group Policy or Intune
deployment passes (``/qn COLLECTOR=... TOKEN=... TRUST=... CAFINGERPRINT=...``): its custom action
enrols the machine against a real collector on loopback; the installed CPython runs ``vigil``.
The second replaces it in place (MajorUpgrade: one product left, the new version). ``msiexec /x``
removes every file, also with a process from the install directory still holding DLLs (the
ReleaseFiles custom action ends it first). A wrong token fails the install (non-zero) and rolls it back.

The MSI installs the supervisor service (ServiceInstall: VigilSupervisor, LocalSystem, automatic,
``python.exe -m vigil agent supervise --service``) and Wine's msiexec starts it (StartServices)
after the enrolment; ``msiexec /x`` stops and deletes it. Its registration is read from the
service control manager's key; that it ran is read from its log.

The MSI's Registry table writes the per-machine Run entry (HKLM ... Run key, "Vigil agent"), the
fallback for a machine without the service: present with the installed pythonw.exe after the
install, still one value after the upgrade, gone after the removal. With the service installed,
its exact command line, run under Wine as a signed-in user would, ends at once and leaves the
session to the service, whose session agent runs, supervised over its pipe.
"""

from __future__ import annotations

import getpass
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
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
SERVICE_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\VigilSupervisor"
SERVICE_IMAGE = (r'"C:\Program Files\Vigil\python\python.exe" '
                 r'-X "pycache_prefix=C:\ProgramData\Vigil\state\pycache" '
                 "-m vigil agent supervise --service")
STATE = wine_env.PREFIX / "drive_c" / "ProgramData" / "Vigil" / "state"
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


def service_registration(wine: Wine) -> dict[str, str]:
    """The VigilSupervisor service's values in the service control manager's key ({} if none)."""
    done = wine.run("reg", "query", SERVICE_KEY, timeout=60)
    if done.returncode != 0:
        return {}
    return {m.group(1): m.group(2).strip() for m in
            re.finditer(r"^\s*(\w+)\s+REG_\w+\s+(.*)$", done.stdout, re.MULTILINE)}


def supervisor_log() -> str:
    log = STATE / "supervisor.log"
    return log.read_text(errors="replace") if log.exists() else ""


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


def msiexec(wine: Wine, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """``wine msiexec args...`` until msiexec ends. Not wine.run, which waits for the end of its
    output: the service that StartServices starts (and the session agent it starts) keep
    msiexec's stdout pipe open after msiexec has ended."""
    proc = wine.start("msiexec", *args)
    try:
        code = proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"msiexec {' '.join(args)}: not done in {timeout} s:\n"
                             f"{proc.output()}\n{supervisor_log()[-2000:]}") from None
    time.sleep(0.3)  # let the reader take the last lines
    out = proc.output()
    return subprocess.CompletedProcess(["msiexec", *args], code, out, out)


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
                msiexec(wine, "/x", code, "/qn", timeout=300)
        assert installed_versions(wine) == [], "a Vigil agent left in the Wine prefix"
        shutil.rmtree(STATE, ignore_errors=True)  # the service's log and spool
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

    done = msiexec(wine, "/i", wine_env.winpath(v1), "/qn", *props, timeout=300)
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
    service = service_registration(wine)
    # Windows Installer quotes the path; Wine 8.0's InstallServices writes it unquoted (and
    # its services.exe still starts it: CreateProcess tries the spaces one by one)
    assert service.get("ImagePath", "").replace('"', "") == SERVICE_IMAGE.replace('"', ""), service
    assert service.get("ObjectName") == "LocalSystem" and service.get("Start") == "0x2", service
    # StartServices ran it, enrolled (the custom action runs before it)
    assert "service VigilSupervisor started" in supervisor_log(), supervisor_log()
    assert "not supervising yet" not in supervisor_log(), supervisor_log()
    assert (PROGRAM_FILES / "python" / "pythonw.exe").is_file()

    done = msiexec(wine, "/i", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == ["0.1.1"]
    assert len(files_under(PROGRAM_FILES)) == count_v1
    assert (MACHINE_ENROLMENT / "enrolment.json").exists()  # an upgrade keeps the enrolment
    assert run_values(wine) == [RUN_COMMAND]  # one value, not one per version
    assert service_registration(wine).get("ImagePath", "").replace('"', "") \
        == SERVICE_IMAGE.replace('"', "")

    # A process from the install directory that would not end by itself, holding two .pyd
    # files as a session agent slow to go does: the removal's ReleaseFiles action (between
    # StopServices and RemoveFiles) waits for it, then ends it, so no DLL is left for a reboot.
    straggler = wine.start(INSTALLED_PYTHON, "-B", "-c", "import _cffi_backend, ahocorasick, "
                           "time; print('holding', flush=True); time.sleep(900)")
    straggler.wait_line("holding", 120)
    done = msiexec(wine, "/x", wine_env.winpath(v2), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert straggler.proc.poll() is not None or straggler.proc.wait(30) is not None
    assert installed_versions(wine) == []
    assert files_under(PROGRAM_FILES) == []
    assert run_values(wine) == []
    assert service_registration(wine) == {}


def test_msi_service_runs_the_agent_and_the_run_entry_gives_way(
        collector_server: Any, wine: Wine, clean_prefix: None, msis: dict[str, Path]) -> None:
    """The service the MSI installed and started (StartServices) finds the console session and
    runs the session agent in it, supervised over the service's pipe. The Run entry's exact
    command line, as Windows' shell starts it at log-on (Explorer runs HKLM Run values in the
    user's session, as the user), sees the service installed and ends at once (exit 0) without
    adopting the machine's enrolment: the fallback is for machines without the service.

    Under Wine a program stays open throughout (notepad): when the last ordinary process of the
    prefix ends, Wine shuts it down and stops its services (SERVICE_CONTROL_SHUTDOWN)."""
    shutil.rmtree(USER_AGENT_DIR, ignore_errors=True)
    wine.notepad()
    token = collector_server.make_token()
    done = msiexec(wine, "/i", wine_env.winpath(msis["0.1.0"]), "/qn",
                    f"COLLECTOR={collector_server.url}", f"TOKEN={token}",
                    f"TRUST={collector_server.keyset_fingerprint}",
                    f"CAFINGERPRINT={collector_server.cert_fingerprint}", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    device = json.loads((MACHINE_ENROLMENT / "enrolment.json").read_text())["device_id"]
    sessions = STATE / "sessions"

    def agent_running() -> bool:
        return any("agent running" in p.read_text(errors="replace") and
                   "supervised over \\\\.\\pipe\\vigil-supervisor" in p.read_text(errors="replace")
                   for p in sessions.glob("*.log")) if sessions.is_dir() else False

    try:
        wait_until(agent_running, 120, interval=0.2,
                   what="the MSI's service to run the session agent:\n" + supervisor_log())
        assert device in supervisor_log()
        (command,) = run_values(wine)
        argv = shlex.split(command)  # the Windows quoting of RUN_COMMAND reads the same here
        assert argv[0] == r"C:\Program Files\Vigil\python\pythonw.exe"
        ran = wine.run(*argv, timeout=120, extra={"VIGIL_AGENT_HEARTBEAT_S": "1"})
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert not (USER_AGENT_DIR / "enrolment.json").exists()  # nothing adopted
    finally:
        print(f"--- supervisor.log ---\n{supervisor_log()[-3000:]}")
        # The service's agents must be gone before clean_prefix uninstalls (msiexec /x stops
        # the service, which ends them; a started pythonw.exe would keep files in use).
        wine.stop_all()
        wine.run("taskkill", "/f", "/im", "pythonw.exe", timeout=60)
        shutil.rmtree(USER_AGENT_DIR, ignore_errors=True)


def test_msi_with_a_wrong_token_fails_and_rolls_back(
        collector_server: Any, wine: Wine, clean_prefix: None, msis: dict[str, Path]) -> None:
    props = [f"COLLECTOR={collector_server.url}", "TOKEN=not-a-token",
             f"TRUST={collector_server.keyset_fingerprint}",
             f"CAFINGERPRINT={collector_server.cert_fingerprint}"]
    done = msiexec(wine, "/i", wine_env.winpath(msis["0.1.0"]), "/qn", *props, timeout=300)
    # Windows reports 1603 (ERROR_INSTALL_FAILURE); Wine 8.0's msiexec passes on the failed
    # custom action's own exit code (vigil's 91 for a refused enrolment). Either way: not 0.
    assert done.returncode in (1603, 91), (done.returncode, done.stdout + done.stderr)
    assert "refused the enrolment" in done.stderr
    assert installed_versions(wine) == []
    assert files_under(PROGRAM_FILES) == []
