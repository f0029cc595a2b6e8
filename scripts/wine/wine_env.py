"""Make the Wine test environment (``make wine-env``): TEST HARNESS ONLY, nothing here ships.

    build/wine/prefix   a 64-bit Wine prefix (Debian 12's wine 8.0), with the one-function
                        bcryptprimitives.dll of bcryptprimitives.c in its system32 and Wine's WMI
                        provider (wbemprox) disabled
    build/wine/python   a copy of build/windows/runtime (the embeddable CPython 3.13.2 win_amd64
                        and the locked wheels, exactly what the MSI ships) whose python313._pth
                        also lists the source tree, so the tests run the working tree's agent
                        code, not a stale copy

Why Wine: Debian's Wine runs the unmodified Windows CPython and the agent's real Win32 calls
(SetWindowsHookExW through pynput, GetForegroundWindow/GetWindowTextW, GDI BitBlt through mss) on
these Linux machines, where no Windows VM is available. Why the shims: Wine 8.0 lacks
bcryptprimitives.dll (cryptography's _rust.pyd imports ProcessPrng from it: "DLL load failed while
importing _rust"), and its WMI provider crashes into Wine's debugger on the query Python 3.13's
``platform.system()`` makes (the agent sends it at enrolment), through the unimplemented
propsys.VariantToString. With wbemprox disabled the query fails at once and ``platform`` falls
back to the registry, as CPython does on a Windows without WMI. Both gaps are Wine's, not
Windows'; both shims live in the prefix, none in Python, so the CPython that runs here is byte for
byte the one the MSI installs (and the MSI's own custom action runs under the same prefix).

Idempotent: each part is rebuilt only when its inputs changed. Every Wine call has a timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WINE = REPO / "build" / "wine"
PREFIX = WINE / "prefix"
PYTHON = WINE / "python"
SHIM_SRC = HERE / "bcryptprimitives.c"
SHIM = WINE / "bcryptprimitives.dll"
# Disabled built-ins: mscoree and mshtml (no Mono/Gecko download prompts: nothing here needs .NET
# or the HTML engine); wbemprox (Wine's WMI, see above). Also written into the prefix's registry,
# for processes Wine starts itself (msiexec's custom actions).
DISABLED_DLLS = ("mscoree", "mshtml", "wbemprox")
DLL_OVERRIDES = ",".join(DISABLED_DLLS) + "="

sys.path.insert(0, str(REPO / "installer" / "windows"))
from windows_build import build_runtime, inputs_digest  # installer/windows/windows_build.py


def winpath(path: Path) -> str:
    """A Linux path as Wine's Z: drive shows it."""
    return "Z:" + str(path.resolve()).replace("/", "\\")


def wine_environ(display: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(WINEPREFIX=str(PREFIX), WINEARCH="win64", WINEDEBUG="-all",
               WINEDLLOVERRIDES=DLL_OVERRIDES)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    if display is None:
        env.pop("DISPLAY", None)
    else:
        env["DISPLAY"] = display
    return env


def build_shim() -> Path:
    digest = inputs_digest(SHIM_SRC.read_bytes())
    stamp = SHIM.with_suffix(".stamp")
    if SHIM.exists() and stamp.exists() and stamp.read_text() == digest:
        return SHIM
    WINE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["x86_64-w64-mingw32-gcc", "-shared", "-O2", "-s",
                    "-Wl,--no-insert-timestamp", "-o", str(SHIM), str(SHIM_SRC), "-ladvapi32"],
                   check=True, timeout=120)
    stamp.write_text(digest)
    return SHIM


def make_prefix() -> Path:
    if not (PREFIX / "system.reg").exists():
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(["wineboot", "-i"], env=wine_environ(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
                       check=False)
        subprocess.run(["wineserver", "-w"], env=wine_environ(), timeout=120, check=False)
        if not (PREFIX / "system.reg").exists():
            sys.exit(f"wineboot did not create the prefix {PREFIX}")
    if any(f'"{dll}"=""' not in (PREFIX / "user.reg").read_text() for dll in DISABLED_DLLS):
        for dll in DISABLED_DLLS:
            subprocess.run(["wine", "reg", "add", r"HKCU\Software\Wine\DllOverrides", "/v", dll,
                            "/d", "", "/f"], env=wine_environ(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120, check=True)
        subprocess.run(["wineserver", "-w"], env=wine_environ(), timeout=120, check=False)
    system32 = PREFIX / "drive_c" / "windows" / "system32"
    target = system32 / "bcryptprimitives.dll"
    if not target.exists() or target.read_bytes() != SHIM.read_bytes():
        shutil.copyfile(SHIM, target)
    return PREFIX


def make_python(runtime: Path) -> Path:
    pth_lines = ["python313.zip", ".", "Lib\\site-packages", winpath(REPO)]
    pth = "\r\n".join(pth_lines) + "\r\n"
    digest = inputs_digest((runtime / ".vigil-stamp").read_bytes(), pth.encode())
    stamp = PYTHON / ".wine-stamp"
    if stamp.exists() and stamp.read_text() == digest:
        return PYTHON
    shutil.rmtree(PYTHON, ignore_errors=True)
    shutil.copytree(runtime, PYTHON)
    (PYTHON / "python313._pth").write_text(pth, newline="")
    stamp.write_text(digest)
    return PYTHON


def check() -> None:
    """One run of the Windows CPython: the version, cryptography's Rust core, the DLLs."""
    code = ("import sys, platform, cryptography.hazmat.bindings._rust, PIL._imaging, psutil, mss;"
            "import agent.sensors.windows, pynput.keyboard;"
            "print(sys.version.split()[0], sys.platform, platform.release(), pynput.__name__)")
    done = subprocess.run(["wine", str(PYTHON / "python.exe"), "-c", code],
                          env=wine_environ(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        sys.exit(f"the Windows CPython under Wine failed:\n{done.stdout}{done.stderr}")
    print(f"wine-env ready: Windows CPython {done.stdout.strip()} in {PYTHON}")


def main() -> int:
    runtime = build_runtime()
    build_shim()
    make_prefix()
    make_python(runtime)
    check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
