"""The supervisor on Windows: ``vigil agent supervise --service``, a LocalSystem service.

Everything that is not Windows-specific is agent/supervisor/service.py's Supervisor (the loop,
tamper, uploads, heartbeat, policy, file and clock checks); this module gives it what differs:

- **Sessions** (``discover_sessions``): WTSEnumerateSessionsW, each *active* session other than
  0 with a signed-in user (WTSQuerySessionInformationW), its user's SID from WTSQueryUserToken.
- **Session agents** (``start_in_session``): ``vigil agent run`` started in that session as its
  user with WTSQueryUserToken + CreateProcessAsUserW on ``winsta0\\default``, the user's own
  environment (CreateEnvironmentBlock), in a job object so that stopping it ends its notice and
  tray helpers too. Its stdout and stderr come through a pipe into
  ``state\\sessions\\USER@N.log``.
- **Exit codes**: Windows has no signals. TerminateProcess (Task Manager's End task,
  ``taskkill /f``) leaves exit code 1, which is also what an unhandled Python error leaves: both
  are reported as ``tamper.agent_killed``; 0 as ``tamper.agent_stopped``; anything else
  (an NTSTATUS such as 0xC0000005, a Vigil error code) as ``tamper.agent_crashed``.
- **The pipe** (``PipeServer``): ``\\\\.\\pipe\\vigil-supervisor`` in place of the Unix socket, the
  same protocol (protocol.py) and connection loop (server.serve_connection). Each instance's
  DACL lets SYSTEM and the signed-in sessions' users connect (read and write data only: not
  FILE_CREATE_PIPE_INSTANCE, so a user cannot add a server instance of their own); the first
  instance is created with FILE_FLAG_FIRST_PIPE_INSTANCE, so a pipe squatted before the service
  started is found and refused. Every connection's client is identified by the operating
  system (GetNamedPipeClientProcessId, then the SID of that process's token), as SO_PEERCRED
  does on Linux, and must be SYSTEM or a session's user. The session agent checks the other way
  (``connect_pipe``): the process serving the pipe (GetNamedPipeServerProcessId) must run as
  SYSTEM.
- **Files**: %ProgramData%\\Vigil (store.SystemConfig with ``apply_acls``): SYSTEM and
  Administrators full control, Users read-only; the enrolment (the device credential) SYSTEM and
  Administrators only.

**Under Wine** (the tests, tests/wine/test_wine_service.py) three things differ, each handled by
a path named for Wine and taken only when ntdll says it is Wine (winapi.under_wine):
WTSEnumerateSessionsW returns no session at all (``_wine_console_session`` takes the console
session, WTSGetActiveConsoleSessionId, and its user); there is only one account, so the service
does not run as SYSTEM (``_wine_one_account``: the session agent accepts a server running as its
own account); and Wine's services.exe does not apply the service key's Environment value
(``apply_service_environment`` does it, which is harmless on Windows where the SCM already did).
docs/agent.md's table says what that leaves unproven.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import subprocess
import sys
import threading
import time
from ctypes import wintypes as w
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.children import vigil_command
from agent.errors import ConfigError, NotEnrolled
from agent.settings import Settings
from agent.supervisor import winapi as api
from agent.supervisor.server import Handler, serve_connection
from agent.supervisor.service import _OWN, SessionAgent, Supervisor

__all__ = ["PIPE_NAME", "SERVICE_NAME", "PipeServer", "WinSession", "WindowsSupervisor",
           "connect_pipe", "discover_sessions", "run_service"]

log = logging.getLogger(__name__)

SERVICE_NAME = "VigilSupervisor"
PIPE_NAME = r"\\.\pipe\vigil-supervisor"
SERVICE_KEY = rf"SYSTEM\CurrentControlSet\Services\{SERVICE_NAME}"
# What a session's user may do with the pipe: FILE_GENERIC_READ | FILE_WRITE_DATA. Not
# FILE_CREATE_PIPE_INSTANCE (in FILE_GENERIC_WRITE): that would let them serve it.
CLIENT_ACCESS = 0x0012008B
TIMEOUT_MS = 5000


# --- sessions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WinSession:
    session_id: int
    user: str  # DOMAIN\name as WTS gives it (name alone when there is no domain)
    uid: str   # the user's SID: what the pipe's clients are checked against

    @property
    def display(self) -> str:
        return f"session {self.session_id}"

    @property
    def key(self) -> str:  # a file name: no backslash
        return f"{self.user.rpartition(chr(92))[2]}@{self.session_id}"


def _session_string(session_id: int, info: int) -> str:
    buf, size = w.LPWSTR(), w.DWORD()
    if not api.WTSQuerySessionInformationW(None, session_id, info, ctypes.byref(buf),
                                           ctypes.byref(size)):
        return ""
    try:
        return str(buf.value or "")
    finally:
        api.WTSFreeMemory(buf)


def user_token(session_id: int) -> int:
    """The primary token of the user signed in to ``session_id`` (needs SYSTEM: SE_TCB)."""
    token = w.HANDLE()
    api.check(api.WTSQueryUserToken(session_id, ctypes.byref(token)),
              f"WTSQueryUserToken({session_id})")
    return int(token.value or 0)


def _session(session_id: int) -> WinSession | None:
    name = _session_string(session_id, api.WTSUserName)
    if not name:
        return None  # nobody signed in (the log-on screen)
    domain = _session_string(session_id, api.WTSDomainName)
    try:
        token = user_token(session_id)
    except api.WinError as exc:
        log.warning("session %d (%s): %s", session_id, name, exc)
        return None
    try:
        sid = api.token_sid(token)
    finally:
        api.CloseHandle(token)
    return WinSession(session_id, f"{domain}\\{name}" if domain else name, sid)


def _wine_console_session() -> list[WinSession]:
    """Wine only: Wine 8.0's WTSEnumerateSessionsW succeeds with no session at all, while the
    console session (WTSGetActiveConsoleSessionId, 1) has the Wine user signed in."""
    found = _session(int(api.WTSGetActiveConsoleSessionId()))
    if found is not None and not _wine_said:
        _wine_said.append(found.key)
        log.info("Wine: WTSEnumerateSessionsW listed no session; taking the console session "
                 "(%s) instead", found.key)
    return [found] if found is not None else []


_wine_said: list[str] = []


def discover_sessions() -> list[WinSession]:
    """The active sessions (not session 0) with a signed-in user."""
    info = ctypes.POINTER(api.WTS_SESSION_INFOW)()
    count = w.DWORD()
    api.check(api.WTSEnumerateSessionsW(None, 0, 1, ctypes.byref(info), ctypes.byref(count)),
              "WTSEnumerateSessionsW")
    try:
        ids = [info[i].SessionId for i in range(count.value)
               if info[i].State == api.WTSActive and info[i].SessionId != 0]
    finally:
        api.WTSFreeMemory(info)
    if not count.value and api.under_wine():
        return _wine_console_session()
    return [s for s in map(_session, ids) if s is not None]


# --- session agents -------------------------------------------------------------------------------
class WinProcess:
    """A process started by CreateProcessAsUserW, with the calls the supervisor's loop makes
    on a subprocess.Popen (poll, wait, terminate, pid, returncode)."""

    def __init__(self, handle: int, pid: int, job: int | None) -> None:
        self._handle, self.pid, self._job = handle, pid, job
        self.returncode: int | None = None
        self.args = ["vigil", "agent", "run"]

    def poll(self) -> int | None:
        if self.returncode is None and api.WaitForSingleObject(self._handle, 0) == api.WAIT_OBJECT_0:
            code = w.DWORD()
            api.GetExitCodeProcess(self._handle, ctypes.byref(code))
            self.returncode = int(code.value)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        ms = api.INFINITE if timeout is None else int(timeout * 1000)
        if api.WaitForSingleObject(self._handle, ms) == api.WAIT_TIMEOUT:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        code = self.poll()
        assert code is not None
        return code

    def terminate(self) -> None:
        """End the agent with its notice and tray helpers (its job), exit code 0, and wait (up
        to 5 s) until it has gone: termination is asynchronous, and an uninstall that removes
        the files while the agent still holds its DLLs leaves them behind."""
        if not (self._job and api.TerminateJobObject(self._job, 0)):
            api.TerminateProcess(self._handle, 0)
        api.WaitForSingleObject(self._handle, 5000)

    kill = terminate

    def __del__(self) -> None:
        for h in (self._handle, self._job):
            if h and api.CloseHandle is not None:
                api.CloseHandle(h)


def _environment_block(token: int) -> dict[str, str]:
    """The user's own environment (their profile, APPDATA, TEMP...), as Windows builds it."""
    block = w.LPVOID()
    if not api.CreateEnvironmentBlock(ctypes.byref(block), token, False):
        log.warning("CreateEnvironmentBlock failed (%d): the service's environment instead",
                    ctypes.get_last_error())
        return {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_AGENT_")}
    try:
        env: dict[str, str] = {}
        addr = block.value or 0
        while True:
            item = ctypes.wstring_at(addr)
            if not item:
                return env
            key, sep, value = item.partition("=")
            if sep and key:  # "=C:=C:\..." entries have an empty name
                env[key] = value
            addr += (len(item) + 1) * ctypes.sizeof(ctypes.c_wchar)
    finally:
        api.DestroyEnvironmentBlock(block)


def _command_line(argv: list[str]) -> str:
    return subprocess.list2cmdline(argv)


def _new_job() -> int | None:
    job = api.CreateJobObjectW(None, None)
    return int(job) if job else None


def start_in_session(session: WinSession, env: dict[str, str], argv: list[str],
                     out: IO[bytes]) -> WinProcess:
    """``argv`` in ``session`` as its user (CreateProcessAsUserW with WTSQueryUserToken), its
    output copied into ``out`` by a thread (a pipe, not a file handle: under Wine, python.exe
    refuses a regular file as a standard handle)."""
    token = user_token(session.session_id)
    read_fd, write_fd = os.pipe()
    in_read, in_write = os.pipe()
    os.close(in_write)  # the agent's stdin: at end of file at once
    try:
        import msvcrt

        child_out = msvcrt.get_osfhandle(write_fd)
        child_in = msvcrt.get_osfhandle(in_read)
        for h in (child_out, child_in):
            os.set_handle_inheritable(h, True)
        user_env = {**_environment_block(token), **env}
        block = ctypes.create_unicode_buffer(
            "".join(f"{k}={v}\0" for k, v in sorted(user_env.items())) + "\0")
        si = api.STARTUPINFOW()
        si.cb = ctypes.sizeof(si)
        si.lpDesktop = "winsta0\\default"
        si.dwFlags = api.STARTF_USESTDHANDLES
        si.hStdInput, si.hStdOutput, si.hStdError = child_in, child_out, child_out
        pi = api.PROCESS_INFORMATION()
        cmd = ctypes.create_unicode_buffer(_command_line(argv))
        cwd = user_env.get("USERPROFILE") or None
        flags = (api.CREATE_UNICODE_ENVIRONMENT | api.CREATE_NO_WINDOW
                 | api.CREATE_NEW_PROCESS_GROUP | 0x4)  # CREATE_SUSPENDED: in its job first
        api.check(api.CreateProcessAsUserW(token, None, cmd, None, None, True, flags, block,
                                           cwd if cwd and os.path.isdir(cwd) else None,
                                           ctypes.byref(si), ctypes.byref(pi)),
                  "CreateProcessAsUserW")
    finally:
        os.close(write_fd)
        os.close(in_read)
        api.CloseHandle(token)
    job = _new_job()
    if job and not api.AssignProcessToJobObject(job, pi.hProcess):
        log.warning("the agent of %s is not in a job (%d): its helpers outlive a stop",
                    session.key, ctypes.get_last_error())
        api.CloseHandle(job)
        job = None
    api.ResumeThread(pi.hThread)
    api.CloseHandle(pi.hThread)
    proc = WinProcess(int(pi.hProcess), int(pi.dwProcessId), job)
    threading.Thread(target=_copy_output, args=(read_fd, out.name), name="vigil-agent-log",
                     daemon=True).start()
    return proc


def _copy_output(fd: int, path: str) -> None:
    with open(fd, "rb", buffering=0) as src, open(path, "ab", buffering=0) as dst:
        dst.writelines(iter(lambda: src.read(65536), b""))


# --- the pipe -------------------------------------------------------------------------------------
class _PipeRaw(io.RawIOBase):
    def __init__(self, handle: int, server: bool) -> None:
        self.handle, self.server = handle, server

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        buf = (ctypes.c_char * len(view)).from_buffer(view)
        done = w.DWORD()
        if not api.ReadFile(self.handle, buf, len(view), ctypes.byref(done), None):
            err = ctypes.get_last_error()
            if err in (api.ERROR_BROKEN_PIPE, api.ERROR_NO_DATA, api.ERROR_PIPE_NOT_CONNECTED):
                return 0  # the other side hung up
            raise api.WinError("ReadFile", err)
        return int(done.value)

    def write(self, b: Any) -> int:
        data = bytes(b)
        sent = 0
        while sent < len(data):
            chunk = data[sent:]
            done = w.DWORD()
            if not api.WriteFile(self.handle, chunk, len(chunk), ctypes.byref(done), None):
                raise api.WinError("WriteFile")
            sent += int(done.value)
        return sent

    def close(self) -> None:
        if self.handle and not self.closed:
            if self.server:  # not DisconnectNamedPipe: it drops what the client has not read
                api.FlushFileBuffers(self.handle)
            api.CloseHandle(self.handle)
            self.handle = 0
        super().close()


class PipeStream:
    """The calls protocol.py makes on a stream (readline, write, flush, close) on a pipe."""

    def __init__(self, handle: int, server: bool = False) -> None:
        self._raw = _PipeRaw(handle, server)
        self._reader = io.BufferedReader(self._raw, 65536)

    @property
    def handle(self) -> int:
        return self._raw.handle

    def readline(self, limit: int = -1) -> bytes:
        return self._reader.readline(limit)

    def write(self, data: bytes) -> int:
        return self._raw.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._raw.close()


def pipe_sddl(sids: list[str]) -> str:
    """SYSTEM full control; each session user read and write data only."""
    return "D:P(A;;GA;;;SY)" + "".join(f"(A;;0x{CLIENT_ACCESS:08X};;;{sid})"
                                       for sid in sorted(set(sids)))


class PipeServer:
    """``\\\\.\\pipe\\vigil-supervisor``: one thread waits for the next client, one thread serves
    each connection (server.serve_connection, the Unix socket's loop)."""

    def __init__(self, name: str, handler: Handler, allowed: Any, sids: Any) -> None:
        self.name = name
        self._handler, self._allowed, self._sids = handler, allowed, sids
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="vigil-pipe", daemon=True)
        self._first = True
        self._made_for: list[str] = []  # the session users the pipe's DACL admits
        self._listening = 0  # the instance waiting for the next client

    def _instance(self) -> int:
        sids = sorted(set(self._sids()))
        sd = api.SecurityDescriptor(pipe_sddl(sids))
        sa = sd.attributes()
        mode = (api.PIPE_ACCESS_DUPLEX | api.WRITE_DAC
                | (api.FILE_FLAG_FIRST_PIPE_INSTANCE if self._first else 0))
        h = api.CreateNamedPipeW(self.name, mode, api.PIPE_TYPE_BYTE | api.PIPE_READMODE_BYTE
                                 | api.PIPE_WAIT | api.PIPE_REJECT_REMOTE_CLIENTS,
                                 api.PIPE_UNLIMITED_INSTANCES, 65536, 65536, 0, ctypes.byref(sa))
        if not h or h == api.INVALID_HANDLE_VALUE:
            raise api.WinError(f"CreateNamedPipeW({self.name})")
        self._first, self._made_for = False, sids
        return int(h)

    def refresh(self) -> None:
        """A session came or went: give the pipe a DACL naming the current session users. The
        security descriptor is the pipe's, shared by its instances and set by the first one, so
        it is changed on the listening instance's handle (opened with WRITE_DAC)."""
        sids = sorted(set(self._sids()))
        h = self._listening
        if sids == self._made_for or not h:
            return
        sd = api.SecurityDescriptor(pipe_sddl(sids))
        err = api.SetSecurityInfo(h, api.SE_KERNEL_OBJECT, api.DACL_SECURITY_INFORMATION
                                  | api.PROTECTED_DACL_SECURITY_INFORMATION, None, None,
                                  ctypes.c_void_p(sd.dacl()), None)
        if err:
            log.error("cannot set the DACL of %s: %s", self.name,
                      api.WinError("SetSecurityInfo", err))
        else:
            self._made_for = sids

    def _wake(self) -> None:
        h = api.CreateFileW(self.name, api.GENERIC_READ | api.GENERIC_WRITE, 0, None,
                            api.OPEN_EXISTING, 0, None)
        if h and h != api.INVALID_HANDLE_VALUE:
            api.CloseHandle(h)

    def start(self) -> None:
        # The first instance now, so that a pipe someone created before us fails the start
        # (FILE_FLAG_FIRST_PIPE_INSTANCE) instead of serving the session agents.
        self._pending = self._instance()
        self._thread.start()
        log.info("serving session agents on %s", self.name)

    def stop(self) -> None:
        self._stopping.set()
        self._wake()  # the thread blocked in ConnectNamedPipe
        self._thread.join(5)

    def _accept(self) -> None:
        h = self._pending
        while not self._stopping.is_set():
            self._listening = h
            ok = api.ConnectNamedPipe(h, None)
            self._listening = 0
            if not ok and ctypes.get_last_error() != api.ERROR_PIPE_CONNECTED:
                api.CloseHandle(h)
                h = 0
            if self._stopping.is_set():
                break
            if h:
                threading.Thread(target=self._serve, args=(h,), name="vigil-pipe-conn",
                                 daemon=True).start()
            while not self._stopping.is_set():
                try:
                    h = self._instance()
                    break
                except (OSError, api.WinError) as exc:
                    log.error("cannot make the next instance of %s: %s", self.name, exc)
                    self._stopping.wait(1)
        if h:
            api.CloseHandle(h)

    def _serve(self, h: int) -> None:
        stream = PipeStream(h, server=True)
        pid = w.DWORD()
        sid = "?"
        try:
            api.check(api.GetNamedPipeClientProcessId(h, ctypes.byref(pid)),
                      "GetNamedPipeClientProcessId")
            sid = api.process_sid(pid.value)
        except OSError as exc:
            log.warning("cannot tell who is at the other end of %s: %s", self.name, exc)
        allowed = sid == api.SYSTEM_SID or (sid != "?" and self._allowed(sid))
        serve_connection(stream, sid, int(pid.value), allowed, self._handler, self._stopping)


def _wine_one_account(sid: str) -> bool:
    """Wine only: every process, the service included, runs as the one Wine account (Wine has
    no LocalSystem token), so a server running as our own account is the service."""
    return api.under_wine() and sid == api.own_sid()


def connect_pipe(name: str, timeout: float) -> PipeStream:
    """Open the supervisor's pipe, check that SYSTEM serves it, and return the stream."""
    deadline = time.monotonic() + timeout
    while True:
        h = api.CreateFileW(name, api.GENERIC_READ | api.GENERIC_WRITE, 0, None,
                            api.OPEN_EXISTING,
                            api.SECURITY_SQOS_PRESENT | api.SECURITY_IDENTIFICATION, None)
        if h and h != api.INVALID_HANDLE_VALUE:
            break
        err = ctypes.get_last_error()
        if err not in (api.ERROR_PIPE_BUSY, api.ERROR_FILE_NOT_FOUND) \
                or time.monotonic() > deadline:
            raise api.WinError(f"CreateFileW({name})", err)
        if err == api.ERROR_PIPE_BUSY:
            api.WaitNamedPipeW(name, 1000)
        else:  # between two instances, or the service is starting
            time.sleep(0.2)
    stream = PipeStream(int(h))
    try:
        pid = w.DWORD()
        api.check(api.GetNamedPipeServerProcessId(h, ctypes.byref(pid)),
                  "GetNamedPipeServerProcessId")
        sid = api.process_sid(pid.value)
    except OSError:
        stream.close()
        raise
    if sid != api.SYSTEM_SID and not _wine_one_account(sid):
        stream.close()
        raise ConfigError(f"{name} is served by {sid} (pid {pid.value}), not SYSTEM: "
                          "not the supervisor")
    return stream


# --- files ----------------------------------------------------------------------------------------
# SYSTEM and Administrators full control; Users read and execute (no write, no delete).
DIR_SDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200A9;;;BU)"
PUBLIC_SDDL = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x1200A9;;;BU)"
# The device credential, the spool and the session logs: SYSTEM and Administrators only.
PRIVATE_SDDL = "D:P(A;;FA;;;SY)(A;;FA;;;BA)"
PRIVATE_DIR_SDDL = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"


def apply_acl(path: Path, sddl: str) -> None:
    try:
        api.set_file_dacl(str(path), sddl)
    except OSError as exc:
        raise ConfigError(f"cannot set the access list of {path}: {exc}") from exc


# --- the supervisor -------------------------------------------------------------------------------
class WindowsSupervisor(Supervisor):
    """service.Supervisor with Windows' sessions, processes and pipe (see the module)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        for path in (settings.state_dir / "spool", self.sessions_dir):
            path.mkdir(parents=True, exist_ok=True)
            apply_acl(path, PRIVATE_DIR_SDDL)

    def _make_server(self) -> Any:
        return PipeServer(str(self.settings.socket_path), self.handle, self._is_session_user,
                          self._session_sids)

    def _session_sids(self) -> list[str]:
        with self._lock:
            return [a.session.uid for a in self.agents.values()]

    def _discover(self) -> list[Any]:
        return discover_sessions()  # type: ignore[return-value]

    def _agent_env(self, s: Any) -> dict[str, str]:
        # PYTHONDONTWRITEBYTECODE: no __pycache__ of the user's making beside the installed code
        # (Windows refuses it to a standard user anyway; Wine's one account may)
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "VIGIL_AGENT_SUPERVISED": "1",
               "VIGIL_AGENT_SOCKET_PATH": str(self.settings.socket_path)}
        for key, value in os.environ.items():
            if key.startswith("VIGIL_AGENT_") and key not in _OWN:
                env[key] = value
        if os.environ.get("DISPLAY"):  # Wine's X display (Windows has none)
            env["DISPLAY"] = os.environ["DISPLAY"]
        return env

    def _spawn(self, agent: SessionAgent, out: IO[bytes]) -> Any:
        self.server.refresh()  # the pipe's DACL must name this session's user before it calls
        return start_in_session(agent.session, self._agent_env(agent.session),  # type: ignore[arg-type]
                                vigil_command("agent", "run"), out)

    def _kill(self, proc: Any) -> None:
        proc.terminate()

    def _exit_rule(self, code: int, detail: dict[str, Any]) -> str:
        detail["exit"] = f"0x{code:08X}" if code >= 0x80000000 else code
        if code == 0:
            return "tamper.agent_stopped"
        if code == 1:
            detail["note"] = "exit 1: TerminateProcess (Task Manager, taskkill /f) or an error"
            return "tamper.agent_killed"
        return "tamper.agent_crashed"


# --- the service ----------------------------------------------------------------------------------
def apply_service_environment(name: str = SERVICE_NAME) -> dict[str, str]:
    """The service key's Environment value (REG_MULTI_SZ of NAME=VALUE), put into os.environ
    where not set. The SCM does it on Windows; Wine's services.exe does not."""
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, rf"SYSTEM\CurrentControlSet\Services\{name}",
                            0, winreg.KEY_READ | winreg.KEY_WOW64_64KEY) as key:
            values, _ = winreg.QueryValueEx(key, "Environment")
    except OSError:
        return {}
    applied = {}
    for item in values or []:
        k, sep, v = str(item).partition("=")
        if sep and k and k not in os.environ:
            os.environ[k] = applied[k] = v
    return applied


def _log_to_file(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.state_dir / "supervisor.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s vigil-supervisor %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def supervise_until(stop: threading.Event, settings: Settings) -> int:
    """Run the supervisor until ``stop``; before enrolment, wait for one (an MSI installed
    without COLLECTOR and TOKEN starts the service, enrolled later by ``vigil agent enrol
    --system``)."""
    from agent.supervisor.service import make_supervisor

    waiting = False
    while not stop.is_set():
        try:
            log.info("loading the enrolment, the trust and the policy from %s",
                     settings.system_config_dir)
            supervisor = make_supervisor(settings)
        except (ConfigError, NotEnrolled) as exc:
            if not waiting:
                log.warning("not supervising yet: %s; looking again every 10 s", exc)
                waiting = True
            stop.wait(10)
            continue
        _wake_on(stop, supervisor)
        return supervisor.run(stop)
    return 0


def _wake_on(stop: threading.Event, supervisor: Supervisor) -> None:
    """Wake the supervisor's loop as soon as ``stop`` is set (the service's stop control)."""
    threading.Thread(target=lambda: (stop.wait(), supervisor._wake.set()), daemon=True,
                     name="vigil-stop").start()


def run_service() -> int:
    """Hand this process to the service control manager (StartServiceCtrlDispatcherW); the
    supervisor runs in ServiceMain until SERVICE_CONTROL_STOP or SHUTDOWN."""
    stop = threading.Event()
    status = api.SERVICE_STATUS(api.SERVICE_WIN32_OWN_PROCESS, api.SERVICE_START_PENDING, 0, 0, 0,
                                0, 30000)
    state: dict[str, Any] = {"handle": None, "exit": 0}

    def set_status(current: int, wait_hint: int = 0, exit_code: int = 0) -> None:
        status.dwCurrentState = current
        status.dwControlsAccepted = (0 if current in (api.SERVICE_START_PENDING,
                                                      api.SERVICE_STOPPED)
                                     else api.SERVICE_ACCEPT_STOP | api.SERVICE_ACCEPT_SHUTDOWN)
        status.dwWin32ExitCode = exit_code
        status.dwWaitHint = wait_hint
        status.dwCheckPoint = 0 if current in (api.SERVICE_RUNNING, api.SERVICE_STOPPED) \
            else status.dwCheckPoint + 1
        if state["handle"]:
            api.SetServiceStatus(state["handle"], ctypes.byref(status))

    @api.LPHANDLER_FUNCTION_EX
    def handler(control: int, event_type: int, data: Any, context: Any) -> int:
        if control in (api.SERVICE_CONTROL_STOP, api.SERVICE_CONTROL_SHUTDOWN):
            log.info("the service control manager asks us to stop (control %d)", control)
            set_status(api.SERVICE_STOP_PENDING, 20000)
            stop.set()
        return 0  # NO_ERROR, also for INTERROGATE

    @api.LPSERVICE_MAIN_FUNCTIONW
    def service_main(argc: int, argv: Any) -> None:
        state["handle"] = api.RegisterServiceCtrlHandlerExW(SERVICE_NAME, handler, None)
        set_status(api.SERVICE_START_PENDING, 30000)
        code = 1
        try:
            applied = apply_service_environment()
            settings = Settings.from_env()
            _log_to_file(settings)
            log.info("service %s started (pid %d, session %d)%s", SERVICE_NAME, os.getpid(),
                     _own_session(), f"; environment from the service key: {sorted(applied)}"
                     if applied else "")
            set_status(api.SERVICE_RUNNING)
            code = supervise_until(stop, settings)
        except Exception:
            log.exception("the supervisor service failed")
        finally:
            state["exit"] = code
            set_status(api.SERVICE_STOPPED, exit_code=1066 if code else 0)  # SERVICE_SPECIFIC

    table = (api.SERVICE_TABLE_ENTRYW * 2)(
        api.SERVICE_TABLE_ENTRYW(SERVICE_NAME, service_main),
        api.SERVICE_TABLE_ENTRYW(None, api.LPSERVICE_MAIN_FUNCTIONW()))
    if not api.StartServiceCtrlDispatcherW(table):
        err = ctypes.get_last_error()
        print(f"vigil: not started by the service control manager (StartServiceCtrlDispatcherW: "
              f"{err}); start the {SERVICE_NAME} service (sc start {SERVICE_NAME}), or run "
              "`vigil agent supervise` without --service to supervise in this console",
              file=sys.stderr)
        return 2
    # The SCM saw SERVICE_STOPPED; msiexec /x now removes the files at once. An ordinary
    # interpreter exit (joining threads, tearing modules down) keeps python313.dll and the
    # .pyd files mapped long enough for Windows Installer to find them in use and leave them
    # for a reboot (a fresh-clone run left _cffi_backend and ahocorasick in Program Files).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(state["exit"]))


def _own_session() -> int:
    sid = w.DWORD()
    api.ProcessIdToSessionId(os.getpid(), ctypes.byref(sid))
    return int(sid.value)


def service_command(python: Path) -> str:
    """The service's command line (the MSI's ServiceInstall writes the same)."""
    return _command_line([str(python), "-m", "vigil", "agent", "supervise", "--service"])

