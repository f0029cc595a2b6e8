"""The Win32 calls of the Windows supervisor, through ctypes (pywin32 is not among the embedded
wheels): the service control manager (advapi32), terminal-services sessions (wtsapi32), tokens
and security descriptors (advapi32), processes, jobs and named pipes (kernel32), environment
blocks (userenv).

Only this module touches ctypes; it imports on any platform (for the unit tests' sake) but every
call needs Windows, or Wine. ``under_wine()`` says which (ntdll exports ``wine_get_version``):
the few places where Wine's answer differs from Windows' are named for it where they are used.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import wintypes as w
from typing import Any

__all__ = ["SYSTEM_SID", "WinError", "under_wine"]

SYSTEM_SID = "S-1-5-18"

if sys.platform == "win32":
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    wtsapi32 = ctypes.WinDLL("wtsapi32", use_last_error=True)
    userenv = ctypes.WinDLL("userenv", use_last_error=True)
else:  # pragma: no cover - imported for its constants and types only
    kernel32 = advapi32 = wtsapi32 = userenv = None  # type: ignore[assignment]


class WinError(OSError):
    """A Win32 call failed: its name and GetLastError()."""

    def __init__(self, call: str, code: int | None = None) -> None:
        code = ctypes.get_last_error() if code is None else code  # type: ignore[attr-defined]
        msg = ctypes.FormatError(code).strip() if sys.platform == "win32" else ""  # type: ignore[attr-defined]
        super().__init__(code, f"{call} failed: [{code}] {msg}")
        self.winerror_code = code
        self.call = call


def _fn(dll: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    if dll is None:
        return None
    f = getattr(dll, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


def check(ok: Any, call: str) -> Any:
    if not ok:
        raise WinError(call)
    return ok


def under_wine() -> bool:
    if sys.platform != "win32":
        return False
    try:
        return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")
    except OSError:
        return False


# --- constants ----------------------------------------------------------------------------------
INVALID_HANDLE_VALUE = w.HANDLE(-1).value
ERROR_PIPE_CONNECTED = 535
ERROR_BROKEN_PIPE = 109
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_PIPE_BUSY = 231
ERROR_FILE_NOT_FOUND = 2
ERROR_SERVICE_DOES_NOT_EXIST = 1060
WAIT_OBJECT_0 = 0
WAIT_TIMEOUT = 0x102
INFINITE = 0xFFFFFFFF
STILL_ACTIVE = 259

PIPE_ACCESS_DUPLEX = 0x3
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
PIPE_TYPE_BYTE = 0x0
PIPE_READMODE_BYTE = 0x0
PIPE_WAIT = 0x0
PIPE_REJECT_REMOTE_CLIENTS = 0x8
PIPE_UNLIMITED_INSTANCES = 255
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
OPEN_EXISTING = 3
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
PROCESS_TERMINATE = 0x0001
SYNCHRONIZE = 0x00100000
TOKEN_QUERY = 0x0008
TokenUser = 1

CREATE_UNICODE_ENVIRONMENT = 0x00000400
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
CREATE_BREAKAWAY_FROM_JOB = 0x01000000
STARTF_USESTDHANDLES = 0x00000100
HANDLE_FLAG_INHERIT = 0x1
JobObjectExtendedLimitInformation = 9
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000

SE_FILE_OBJECT = 1
SE_KERNEL_OBJECT = 6
WRITE_DAC = 0x00040000
DACL_SECURITY_INFORMATION = 0x4
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
SDDL_REVISION_1 = 1

WTS_CURRENT_SERVER_HANDLE = None
WTSActive = 0
WTSUserName = 5
WTSDomainName = 7

SERVICE_WIN32_OWN_PROCESS = 0x10
SERVICE_STOPPED = 1
SERVICE_START_PENDING = 2
SERVICE_STOP_PENDING = 3
SERVICE_RUNNING = 4
SERVICE_ACCEPT_STOP = 0x1
SERVICE_ACCEPT_SHUTDOWN = 0x4
SERVICE_CONTROL_STOP = 1
SERVICE_CONTROL_INTERROGATE = 4
SERVICE_CONTROL_SHUTDOWN = 5
SC_MANAGER_CONNECT = 0x1
SERVICE_QUERY_STATUS = 0x4


# --- structures ---------------------------------------------------------------------------------
class SECURITY_ATTRIBUTES(ctypes.Structure):
    _fields_ = [("nLength", w.DWORD), ("lpSecurityDescriptor", w.LPVOID),
                ("bInheritHandle", w.BOOL)]


class STARTUPINFOW(ctypes.Structure):
    _fields_ = [("cb", w.DWORD), ("lpReserved", w.LPWSTR), ("lpDesktop", w.LPWSTR),
                ("lpTitle", w.LPWSTR), ("dwX", w.DWORD), ("dwY", w.DWORD),
                ("dwXSize", w.DWORD), ("dwYSize", w.DWORD), ("dwXCountChars", w.DWORD),
                ("dwYCountChars", w.DWORD), ("dwFillAttribute", w.DWORD), ("dwFlags", w.DWORD),
                ("wShowWindow", w.WORD), ("cbReserved2", w.WORD), ("lpReserved2", w.LPVOID),
                ("hStdInput", w.HANDLE), ("hStdOutput", w.HANDLE), ("hStdError", w.HANDLE)]


class PROCESS_INFORMATION(ctypes.Structure):
    _fields_ = [("hProcess", w.HANDLE), ("hThread", w.HANDLE), ("dwProcessId", w.DWORD),
                ("dwThreadId", w.DWORD)]


class WTS_SESSION_INFOW(ctypes.Structure):
    _fields_ = [("SessionId", w.DWORD), ("pWinStationName", w.LPWSTR), ("State", ctypes.c_int)]


class SERVICE_STATUS(ctypes.Structure):
    _fields_ = [("dwServiceType", w.DWORD), ("dwCurrentState", w.DWORD),
                ("dwControlsAccepted", w.DWORD), ("dwWin32ExitCode", w.DWORD),
                ("dwServiceSpecificExitCode", w.DWORD), ("dwCheckPoint", w.DWORD),
                ("dwWaitHint", w.DWORD)]


# stdcall callbacks (WINFUNCTYPE exists on Windows only; CFUNCTYPE elsewhere, never called)
_FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
LPSERVICE_MAIN_FUNCTIONW = _FUNCTYPE(None, w.DWORD, ctypes.POINTER(w.LPWSTR))
LPHANDLER_FUNCTION_EX = _FUNCTYPE(w.DWORD, w.DWORD, w.DWORD, w.LPVOID, w.LPVOID)


class SERVICE_TABLE_ENTRYW(ctypes.Structure):
    _fields_ = [("lpServiceName", w.LPWSTR), ("lpServiceProc", LPSERVICE_MAIN_FUNCTIONW)]


class IO_COUNTERS(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in ("ReadOperationCount", "WriteOperationCount",
                                                   "OtherOperationCount", "ReadTransferCount",
                                                   "WriteTransferCount", "OtherTransferCount")]


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_longlong),
                ("PerJobUserTimeLimit", ctypes.c_longlong), ("LimitFlags", w.DWORD),
                ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", w.DWORD),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", w.DWORD),
                ("SchedulingClass", w.DWORD)]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
                ("IoInfo", IO_COUNTERS), ("ProcessMemoryLimit", ctypes.c_size_t),
                ("JobMemoryLimit", ctypes.c_size_t), ("PeakProcessMemoryUsed", ctypes.c_size_t),
                ("PeakJobMemoryUsed", ctypes.c_size_t)]


# --- functions ----------------------------------------------------------------------------------
H, B, D, P = w.HANDLE, w.BOOL, w.DWORD, w.LPVOID
PD = ctypes.POINTER(w.DWORD)
CloseHandle = _fn(kernel32, "CloseHandle", B, H)
GetCurrentProcess = _fn(kernel32, "GetCurrentProcess", H)
OpenProcess = _fn(kernel32, "OpenProcess", H, D, B, D)
GetExitCodeProcess = _fn(kernel32, "GetExitCodeProcess", B, H, PD)
TerminateProcess = _fn(kernel32, "TerminateProcess", B, H, w.UINT)
WaitForSingleObject = _fn(kernel32, "WaitForSingleObject", D, H, D)
ProcessIdToSessionId = _fn(kernel32, "ProcessIdToSessionId", B, D, PD)
WTSGetActiveConsoleSessionId = _fn(kernel32, "WTSGetActiveConsoleSessionId", D)
SetHandleInformation = _fn(kernel32, "SetHandleInformation", B, H, D, D)
CreateFileW = _fn(kernel32, "CreateFileW", H, w.LPCWSTR, D, D, P, D, D, H)
CreateNamedPipeW = _fn(kernel32, "CreateNamedPipeW", H, w.LPCWSTR, D, D, D, D, D, D,
                       ctypes.POINTER(SECURITY_ATTRIBUTES))
ConnectNamedPipe = _fn(kernel32, "ConnectNamedPipe", B, H, P)
DisconnectNamedPipe = _fn(kernel32, "DisconnectNamedPipe", B, H)
GetNamedPipeClientProcessId = _fn(kernel32, "GetNamedPipeClientProcessId", B, H, PD)
GetNamedPipeServerProcessId = _fn(kernel32, "GetNamedPipeServerProcessId", B, H, PD)
WaitNamedPipeW = _fn(kernel32, "WaitNamedPipeW", B, w.LPCWSTR, D)
ReadFile = _fn(kernel32, "ReadFile", B, H, P, D, PD, P)
WriteFile = _fn(kernel32, "WriteFile", B, H, P, D, PD, P)
FlushFileBuffers = _fn(kernel32, "FlushFileBuffers", B, H)
CreateJobObjectW = _fn(kernel32, "CreateJobObjectW", H, P, w.LPCWSTR)
SetInformationJobObject = _fn(kernel32, "SetInformationJobObject", B, H, ctypes.c_int, P, D)
AssignProcessToJobObject = _fn(kernel32, "AssignProcessToJobObject", B, H, H)
TerminateJobObject = _fn(kernel32, "TerminateJobObject", B, H, w.UINT)
ResumeThread = _fn(kernel32, "ResumeThread", D, H)
LocalFree = _fn(kernel32, "LocalFree", P, P)

OpenProcessToken = _fn(advapi32, "OpenProcessToken", B, H, D, ctypes.POINTER(H))
GetTokenInformation = _fn(advapi32, "GetTokenInformation", B, H, ctypes.c_int, P, D, PD)
ConvertSidToStringSidW = _fn(advapi32, "ConvertSidToStringSidW", B, P,
                             ctypes.POINTER(w.LPWSTR))
ConvertStringSecurityDescriptorToSecurityDescriptorW = _fn(
    advapi32, "ConvertStringSecurityDescriptorToSecurityDescriptorW", B, w.LPCWSTR, D,
    ctypes.POINTER(P), PD)
ConvertSecurityDescriptorToStringSecurityDescriptorW = _fn(
    advapi32, "ConvertSecurityDescriptorToStringSecurityDescriptorW", B, P, D, D,
    ctypes.POINTER(w.LPWSTR), PD)
GetSecurityDescriptorDacl = _fn(advapi32, "GetSecurityDescriptorDacl", B, P, PD,
                                ctypes.POINTER(P), PD)
SetNamedSecurityInfoW = _fn(advapi32, "SetNamedSecurityInfoW", D, w.LPWSTR, ctypes.c_int, D, P,
                            P, P, P)
GetNamedSecurityInfoW = _fn(advapi32, "GetNamedSecurityInfoW", D, w.LPCWSTR, ctypes.c_int, D,
                            P, P, P, P, ctypes.POINTER(P))
SetSecurityInfo = _fn(advapi32, "SetSecurityInfo", D, H, ctypes.c_int, D, P, P, P, P)
GetSecurityInfo = _fn(advapi32, "GetSecurityInfo", D, H, ctypes.c_int, D, P, P, P, P,
                      ctypes.POINTER(P))
CreateProcessAsUserW = _fn(advapi32, "CreateProcessAsUserW", B, H, w.LPCWSTR, w.LPWSTR, P, P, B,
                           D, P, w.LPCWSTR, ctypes.POINTER(STARTUPINFOW),
                           ctypes.POINTER(PROCESS_INFORMATION))
OpenSCManagerW = _fn(advapi32, "OpenSCManagerW", H, w.LPCWSTR, w.LPCWSTR, D)
OpenServiceW = _fn(advapi32, "OpenServiceW", H, H, w.LPCWSTR, D)
CloseServiceHandle = _fn(advapi32, "CloseServiceHandle", B, H)
StartServiceCtrlDispatcherW = _fn(advapi32, "StartServiceCtrlDispatcherW", B,
                                  ctypes.POINTER(SERVICE_TABLE_ENTRYW))
RegisterServiceCtrlHandlerExW = _fn(advapi32, "RegisterServiceCtrlHandlerExW", H, w.LPCWSTR,
                                    LPHANDLER_FUNCTION_EX, P)
SetServiceStatus = _fn(advapi32, "SetServiceStatus", B, H, ctypes.POINTER(SERVICE_STATUS))

WTSEnumerateSessionsW = _fn(wtsapi32, "WTSEnumerateSessionsW", B, H, D, D,
                            ctypes.POINTER(ctypes.POINTER(WTS_SESSION_INFOW)), PD)
WTSQuerySessionInformationW = _fn(wtsapi32, "WTSQuerySessionInformationW", B, H, D, ctypes.c_int,
                                  ctypes.POINTER(w.LPWSTR), PD)
WTSQueryUserToken = _fn(wtsapi32, "WTSQueryUserToken", B, w.ULONG, ctypes.POINTER(H))
WTSFreeMemory = _fn(wtsapi32, "WTSFreeMemory", None, P)

CreateEnvironmentBlock = _fn(userenv, "CreateEnvironmentBlock", B, ctypes.POINTER(P), H, B)
DestroyEnvironmentBlock = _fn(userenv, "DestroyEnvironmentBlock", B, P)
GetUserProfileDirectoryW = _fn(userenv, "GetUserProfileDirectoryW", B, H, w.LPWSTR, PD)


# --- helpers ------------------------------------------------------------------------------------
def token_sid(token: int) -> str:
    """The user SID of an access token, as S-1-5-..."""
    size = w.DWORD()
    GetTokenInformation(token, TokenUser, None, 0, ctypes.byref(size))
    buf = ctypes.create_string_buffer(max(size.value, 1))
    check(GetTokenInformation(token, TokenUser, buf, size, ctypes.byref(size)),
          "GetTokenInformation")
    psid = ctypes.cast(buf, ctypes.POINTER(ctypes.c_void_p))[0]
    out = w.LPWSTR()
    check(ConvertSidToStringSidW(psid, ctypes.byref(out)), "ConvertSidToStringSidW")
    try:
        return str(out.value)
    finally:
        LocalFree(out)


def process_sid(pid: int) -> str:
    """The user SID of process ``pid`` (its primary token)."""
    proc = check(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid), "OpenProcess")
    try:
        token = H()
        check(OpenProcessToken(proc, TOKEN_QUERY, ctypes.byref(token)), "OpenProcessToken")
        try:
            return token_sid(token.value)
        finally:
            CloseHandle(token)
    finally:
        CloseHandle(proc)


def own_sid() -> str:
    return process_sid(os.getpid())


class SecurityDescriptor:
    """A self-relative security descriptor made from SDDL (freed with LocalFree)."""

    def __init__(self, sddl: str) -> None:
        self.sddl = sddl
        self.ptr = P()
        check(ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl, SDDL_REVISION_1, ctypes.byref(self.ptr), None),
            f"ConvertStringSecurityDescriptorToSecurityDescriptorW({sddl})")

    def attributes(self) -> SECURITY_ATTRIBUTES:
        return SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES), self.ptr, False)

    def dacl(self) -> int:
        present, defaulted, acl = w.DWORD(), w.DWORD(), P()
        check(GetSecurityDescriptorDacl(self.ptr, ctypes.byref(present), ctypes.byref(acl),
                                        ctypes.byref(defaulted)), "GetSecurityDescriptorDacl")
        return int(acl.value or 0)

    def __del__(self) -> None:
        if self.ptr and LocalFree is not None:
            LocalFree(self.ptr)
            self.ptr = P()


def set_file_dacl(path: str, sddl: str) -> None:
    """Give ``path`` exactly the DACL of ``sddl``, protected (no inherited entries)."""
    sd = SecurityDescriptor(sddl)
    err = SetNamedSecurityInfoW(path, SE_FILE_OBJECT,
                                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                None, None, ctypes.c_void_p(sd.dacl()), None)
    if err:
        raise WinError(f"SetNamedSecurityInfoW({path})", err)


def file_dacl_sddl(path: str) -> str:
    """The DACL of ``path`` as SDDL ("D:P(A;;FA;;;SY)...")."""
    sd = P()
    err = GetNamedSecurityInfoW(path, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, None, None,
                                None, None, ctypes.byref(sd))
    if err:
        raise WinError(f"GetNamedSecurityInfoW({path})", err)
    return _sddl_of(sd)


def handle_dacl_sddl(handle: int) -> str:
    """The DACL of a kernel object (a pipe) as SDDL."""
    sd = P()
    err = GetSecurityInfo(handle, SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, None, None, None,
                          None, ctypes.byref(sd))
    if err:
        raise WinError("GetSecurityInfo", err)
    return _sddl_of(sd)


def _sddl_of(sd: Any) -> str:
    try:
        out = w.LPWSTR()
        check(ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, ctypes.byref(out), None),
            "ConvertSecurityDescriptorToStringSecurityDescriptorW")
        try:
            return str(out.value)
        finally:
            LocalFree(out)
    finally:
        LocalFree(sd)


def service_installed(name: str) -> bool:
    """Whether the service control manager knows a service called ``name``."""
    scm = OpenSCManagerW(None, None, SC_MANAGER_CONNECT)
    if not scm:
        return False
    try:
        svc = OpenServiceW(scm, name, SERVICE_QUERY_STATUS)
        if not svc:
            return False
        CloseServiceHandle(svc)
        return True
    finally:
        CloseServiceHandle(scm)
