"""Let go of the installed files before Windows Installer removes them (the MSI's ReleaseFiles
custom action, run as SYSTEM between StopServices and RemoveFiles on removal and upgrade).

Why: the service reports SERVICE_STOPPED and then ends (agent/supervisor/windows.py), but the
process, and the session agents it ends, take a moment to go. msiexec goes on to RemoveFiles as
soon as the service control manager says "stopped"; a DLL or .pyd still mapped then is left in
Program Files for the next reboot. Fresh-clone CI runs under Wine left ``_cffi_backend`` and
``ahocorasick`` behind this way, after both earlier mitigations (waiting for a terminated agent,
``os._exit`` after SERVICE_STOPPED). Waiting here for every process that runs from the install
directory closes the race instead of narrowing it: msiexec waits for this action to end.

Processes still there after the wait are ended: the product is being removed, and only Vigil's
own interpreter runs from its directory. Nothing here fails the removal (the action's return is
ignored); what it did is printed for the Windows Installer log.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import time
from ctypes import wintypes as w
from pathlib import Path
from typing import Any

__all__ = ["main", "processes_under", "release"]

WAIT_S = 20.0  # the service's own stop takes up to ~5 s per session agent it ends
TH32CS_SNAPPROCESS = 0x2
PROCESS_TERMINATE = 0x0001
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
SYNCHRONIZE = 0x00100000
WAIT_OBJECT_0 = 0


class PROCESSENTRY32W(ctypes.Structure):
    _fields_ = [("dwSize", w.DWORD), ("cntUsage", w.DWORD), ("th32ProcessID", w.DWORD),
                ("th32DefaultHeapID", ctypes.c_size_t), ("th32ModuleID", w.DWORD),
                ("cntThreads", w.DWORD), ("th32ParentProcessID", w.DWORD),
                ("pcPriClassBase", w.LONG), ("dwFlags", w.DWORD),
                ("szExeFile", w.WCHAR * 260)]


@functools.cache
def _kernel32() -> Any:
    # Toolhelp and handles, not psutil: psutil's process list fails under Wine (NtQuery-
    # SystemInformation: invalid parameter), and this must work wherever the MSI runs.
    k = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    k.CreateToolhelp32Snapshot.restype = w.HANDLE
    k.CreateToolhelp32Snapshot.argtypes = [w.DWORD, w.DWORD]
    k.Process32FirstW.argtypes = [w.HANDLE, ctypes.POINTER(PROCESSENTRY32W)]
    k.Process32NextW.argtypes = [w.HANDLE, ctypes.POINTER(PROCESSENTRY32W)]
    k.OpenProcess.restype = w.HANDLE
    k.OpenProcess.argtypes = [w.DWORD, w.BOOL, w.DWORD]
    k.QueryFullProcessImageNameW.argtypes = [w.HANDLE, w.DWORD, w.LPWSTR, ctypes.POINTER(w.DWORD)]
    k.WaitForSingleObject.restype = w.DWORD
    k.WaitForSingleObject.argtypes = [w.HANDLE, w.DWORD]
    k.TerminateProcess.argtypes = [w.HANDLE, w.UINT]
    k.CloseHandle.argtypes = [w.HANDLE]
    return k


def _pids(k: Any) -> list[int]:
    snap = k.CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)
    if not snap or snap == w.HANDLE(-1).value:
        raise OSError(ctypes.get_last_error(), "CreateToolhelp32Snapshot")  # type: ignore[attr-defined]
    try:
        entry = PROCESSENTRY32W()
        entry.dwSize = ctypes.sizeof(entry)
        pids = []
        more = k.Process32FirstW(snap, ctypes.byref(entry))
        while more:
            pids.append(int(entry.th32ProcessID))
            more = k.Process32NextW(snap, ctypes.byref(entry))
        return pids
    finally:
        k.CloseHandle(snap)


def _image(k: Any, handle: int) -> str:
    size = w.DWORD(32768)
    buf = ctypes.create_unicode_buffer(size.value)
    if not k.QueryFullProcessImageNameW(handle, 0, buf, ctypes.byref(size)):
        return ""
    return buf.value


def processes_under(directory: Path) -> dict[int, int]:
    """{pid: handle} of the processes, other than this one, whose executable lies under
    ``directory`` (the caller closes the handles)."""
    k = _kernel32()
    root = os.path.normcase(str(directory.resolve())).rstrip("\\/") + os.sep
    found: dict[int, int] = {}
    for pid in _pids(k):
        if pid in (0, os.getpid()):
            continue
        handle = k.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE | PROCESS_TERMINATE,
                               False, pid)
        if not handle:
            continue  # gone already, or not ours to open
        if os.path.normcase(_image(k, handle)).startswith(root):
            found[pid] = handle
        else:
            k.CloseHandle(handle)
    return found


def release(directory: Path, wait_s: float = WAIT_S) -> tuple[int, int]:
    """Wait up to ``wait_s`` for the processes running from ``directory`` to end, then end the
    rest. Returns (how many were running, how many had to be ended)."""
    k = _kernel32()
    running = processes_under(directory)
    deadline = time.monotonic() + wait_s
    ended = 0
    try:
        for handle in running.values():
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if k.WaitForSingleObject(handle, left_ms) != WAIT_OBJECT_0:
                k.TerminateProcess(handle, 1)
                k.WaitForSingleObject(handle, 5000)
                ended += 1
    finally:
        for handle in running.values():
            k.CloseHandle(handle)
    return len(running), ended


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # the installed interpreter's own directory holds every file the MSI installs but one
    # registry value: <install dir>\python
    directory = Path(args[0]) if args else Path(sys.executable).resolve().parent
    started = time.monotonic()
    try:
        running, ended = release(directory)
    except OSError as exc:
        print(f"vigil: could not look for processes running from {directory}: {exc}")
        return 0
    print(f"vigil: {running} process(es) were running from {directory}; {ended} ended after "
          f"{time.monotonic() - started:.1f} s of waiting" if running else
          f"vigil: nothing running from {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
