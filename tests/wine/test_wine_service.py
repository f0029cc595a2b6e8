"""The supervisor as a Windows service under Wine: ``vigil agent supervise --service`` registered
with Wine's service control manager (``sc create``, services.exe), started with ``net start``,
keeping a session agent in the console session, and reporting its kill to a real collector.

What runs for real: the service dispatcher (StartServiceCtrlDispatcherW, RegisterServiceCtrl-
HandlerExW, SetServiceStatus), WTSQueryUserToken + CreateEnvironmentBlock + CreateProcessAsUserW
(the session agent), a job object, the named pipe \\\\.\\pipe\\vigil-supervisor with its DACL and
the client's identity from GetNamedPipeClientProcessId and its token, the files' DACLs set with
SetNamedSecurityInfoW, the enrolment (``vigil agent enrol --system``, TLS to the collector) and
uploads from the service.

What Wine does not do, and these tests therefore do not prove (docs/agent.md's table):
- Wine has one account: the service does not run as LocalSystem but as the Wine user, as does
  every other process, so the session agent's "served by SYSTEM" check takes its Wine-only path
  (windows._wine_one_account), and no second user exists to be refused.
- Wine's WTSEnumerateSessionsW lists no session: the service takes the console session
  (windows._wine_console_session).
- Wine does not enforce a named pipe's DACL when a client opens it, nor a file's DACL against
  its one account (a member of Administrators). The tests check that the DACLs are what was set
  (read back with GetSecurityInfo / GetNamedSecurityInfoW) and that the server refuses a client
  whose SID is not a session user's (``test_pipe_refuses_a_client_that_is_not_a_session_user``,
  a PipeServer of the product run under Wine with no session), not that Windows would refuse
  the open.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.x11 import wait_until
from tests.integration.test_agent_x11 import open_event, stored_events
from tests.wine.conftest import Wine, wine_env

SERVICE = "VigilSupervisor"
PROGRAM_DATA = wine_env.PREFIX / "drive_c" / "ProgramData" / "Vigil"
ENROLMENT = PROGRAM_DATA / "enrolment"
STATE = PROGRAM_DATA / "state"
LOG = STATE / "supervisor.log"
STARTED = re.compile(r"started the agent for (\S+) \(pid (\d+)\)")
# The service's settings, in its key's Environment value (REG_MULTI_SZ), as a school would set
# them: a quick loop for the test, no sentence model or screen reading (CPU on a shared machine).
SERVICE_ENV = {"VIGIL_AGENT_SUPERVISE_POLL_S": "0.5", "VIGIL_AGENT_RESTART_INITIAL_S": "0.5",
               "VIGIL_AGENT_HEARTBEAT_S": "2", "VIGIL_AGENT_MODEL": "0",
               "VIGIL_AGENT_SCREEN": "0", "VIGIL_AGENT_BACKOFF_INITIAL_S": "0.2",
               "VIGIL_AGENT_BACKOFF_MAX_S": "1"}


def service_log() -> str:
    return LOG.read_text(errors="replace") if LOG.exists() else ""


def session_logs() -> str:
    return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted((STATE / "sessions").glob("*.log")))


def starts() -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in STARTED.finditer(service_log())]


def net(wine: Wine, verb: str, done: str, timeout: float = 120.0) -> str:
    """``net start|stop VigilSupervisor`` until it prints ``done`` (or ends). Not wine.run: the
    processes the service starts keep net.exe's stdout pipe open after net.exe has ended, so
    waiting for the end of its output would wait for the service."""
    proc = wine.start("net", verb, SERVICE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = proc.output()
        if done in out or (proc.proc.poll() is not None and time.sleep(0.3) is None):
            return proc.output()
        time.sleep(0.1)
    raise AssertionError(f"net {verb} {SERVICE}: no {done!r} in {timeout} s:\n{proc.output()}")


def remove_service(wine: Wine) -> None:
    net(wine, "stop", "stopped", 60)
    wine.run("sc", "delete", SERVICE, timeout=60)


def set_service_environment(wine: Wine, env: dict[str, str]) -> None:
    """The service key's Environment value, written by the Windows CPython's winreg (Wine's
    reg.exe cannot write a REG_MULTI_SZ from the command line)."""
    code = ("import winreg, json, sys; k = winreg.CreateKeyEx(winreg.HKEY_LOCAL_MACHINE, "
            rf"r'SYSTEM\CurrentControlSet\Services\{SERVICE}', 0, "
            "winreg.KEY_SET_VALUE | winreg.KEY_WOW64_64KEY); "
            "winreg.SetValueEx(k, 'Environment', 0, winreg.REG_MULTI_SZ, json.loads(sys.argv[1]))")
    done = wine.run(str(wine.python_exe), "-c", code,
                    json.dumps([f"{k}={v}" for k, v in env.items()]), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def service(collector_server: Any, wine: Wine) -> Iterator[Wine]:
    """Enrolled for the service (``vigil agent enrol --system``), the service registered with
    ``sc create`` and started with ``net start``; stopped and deleted after."""
    remove_service(wine)
    shutil.rmtree(PROGRAM_DATA, ignore_errors=True)
    argv = collector_server.enrol_command(collector_server.make_token())[1:]
    i = argv.index("--token")
    argv[i:i + 2] = [f"--token={argv[i + 1]}"]
    done = wine.run(str(wine.python_exe), "-m", "vigil", *argv, "--system", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ENROLMENT / "enrolment.json").exists(), done.stdout + done.stderr
    command = f'"{wine_env.winpath(wine.python_exe)}" -m vigil agent supervise --service'
    done = wine.run("sc", "create", SERVICE, "binPath=", command, "start=", "demand", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    set_service_environment(wine, SERVICE_ENV)
    # A signed-in session has programs open. Under Wine it also must: when the last ordinary
    # process of the prefix ends, wineserver shuts the prefix down and services.exe sends its
    # services SERVICE_CONTROL_SHUTDOWN (seen: 0.4 s after `net start` returned).
    wine.notepad()
    try:
        t0 = time.monotonic()
        out = net(wine, "start", "started successfully")
        assert "started successfully" in out, out + service_log()
        print(f"net start {SERVICE}: {time.monotonic() - t0:.1f} s")
        yield wine
    finally:
        t0 = time.monotonic()
        out = net(wine, "stop", "stopped", 60)
        print(f"net stop {SERVICE} ({time.monotonic() - t0:.1f} s): {out.strip()}")
        wine.run("sc", "delete", SERVICE, timeout=60)
        print(f"--- supervisor.log ---\n{service_log()[-5000:]}\n{session_logs()}")


def wait_rules(server: Any, rules: set[str], timeout: float) -> Any:
    def found() -> Any:
        rows = [r for r in stored_events(server) if r.rule in rules]
        return rows[0] if rows else None

    return wait_until(found, timeout, interval=0.2, what=f"a {sorted(rules)} event")


def test_service_runs_the_session_agent_and_reports_its_kill(
        collector_server: Any, service: Wine) -> None:
    wine = service
    # the service found the console session and started the agent in it (CreateProcessAsUserW)
    (key, pid), *_ = wait_until(starts, 60, interval=0.2, what="the service to start an agent")
    wait_until(lambda: "agent running" in session_logs(), 90, interval=0.2,
               what="the session agent to run:\n" + service_log())
    assert "supervised over \\\\.\\pipe\\vigil-supervisor" in session_logs()
    assert "Wine: WTSEnumerateSessionsW listed no session" in service_log()
    # the supervisor's heartbeat, carrying the session agent's status, reaches the collector
    # (the session agent's events and status go over the pipe; only the service holds the secret)

    t_kill = time.monotonic()
    done = wine.run("taskkill", "/f", "/pid", str(pid), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    def restarted() -> int | None:
        later = [p for k, p in starts() if k == key and p != pid]
        return later[0] if later else None

    new_pid = wait_until(restarted, 10, interval=0.1, what="the agent back within 10 s")
    back_s = time.monotonic() - t_kill
    # Wine's taskkill /f ends the process with exit code 0 (tamper.agent_stopped); Windows'
    # taskkill /f and Task Manager leave 1 (tamper.agent_killed)
    row = wait_rules(collector_server, {"tamper.agent_killed", "tamper.agent_stopped"}, 30)
    assert (row.category, row.source) == ("tamper", "supervisor")
    opened = open_event(collector_server, row)
    assert opened.header["detail"]["pid"] == pid
    assert opened.header["user"].rpartition("\\")[2] == key.split("@")[0]  # DOMAIN\\name
    wait_until(lambda: session_logs().count("agent running") >= 2, 60, interval=0.2,
               what="the restarted agent to run")
    print(f"killed pid {pid} (exit {opened.header['detail']['exit']}, rule {row.rule}); "
          f"agent back as pid {new_pid} in {back_s:.1f} s; tamper at the collector in "
          f"{time.monotonic() - t_kill:.1f} s")


def test_service_files_and_pipe_have_their_access_lists(service: Wine) -> None:
    """The pipe's DACL as the service set it, read back with GetSecurityInfo: SYSTEM, and the
    session's user allowed to read and write data only (0x12008b: not FILE_CREATE_PIPE_INSTANCE),
    nobody else. The pipe is made before any session is known, with SYSTEM alone in its DACL; the
    service sets the new DACL on the listening instance when a session comes (PipeServer.refresh;
    the security descriptor is the pipe's, not an instance's).

    The files' DACLs (SetNamedSecurityInfoW) are printed, not asserted: Wine 8.0 accepts the call
    and keeps no file security descriptor (no user.wine.sd is written; it reads one back made up
    from the Unix mode bits: SYSTEM, the Wine user and Everyone read). What Windows keeps and
    enforces is for the first real desktop (docs/agent.md)."""
    wine = service
    wait_until(lambda: "agent running" in session_logs(), 90, interval=0.2,
               what="the session agent to run:\n" + service_log())
    code = r"""
import json
from agent.supervisor import winapi as api
from agent.supervisor.windows import PIPE_NAME, connect_pipe
base = api.__file__  # noqa
out = {}
for name in (r"C:\ProgramData\Vigil\enrolment", r"C:\ProgramData\Vigil\enrolment\enrolment.json",
             r"C:\ProgramData\Vigil\enrolment\trust.json", r"C:\ProgramData\Vigil\state\policy.json",
             r"C:\ProgramData\Vigil\state\spool"):
    try:
        out[name] = api.file_dacl_sddl(name)
    except OSError as exc:
        out[name] = f"error: {exc}"
s = connect_pipe(PIPE_NAME, 10)
try:
    out["pipe"] = api.handle_dacl_sddl(s.handle)
except OSError as exc:
    out["pipe"] = f"error: {exc}"
out["me"] = api.own_sid()
print("DACLS " + json.dumps(out))
"""
    dacls = wine.python_json(code, "DACLS ", timeout=60)
    print(json.dumps(dacls, indent=1))
    me = dacls["me"]
    for name, dacl in dacls.items():
        assert not dacl.startswith("error"), (name, dacl)
    pipe = dacls["pipe"]
    # the ACEs exactly (Wine drops the P flag that SetSecurityInfo is given)
    assert re.sub(r"^D:P?", "", pipe) == f"(A;;GA;;;SY)(A;;0x12008b;;;{me})", pipe


def test_pipe_refuses_a_client_that_is_not_a_session_user(wine: Wine) -> None:
    """The product's PipeServer and connect_pipe under Wine, on a pipe of the test's own, with
    the supervisor's protocol: a client whose SID (from GetNamedPipeClientProcessId and its
    token) is not a session user's is answered "not a session user" and its request never
    reaches the handler; the same client is served once its SID is a session user's. Under Wine
    the client and the server are the same account (there is no other), so the refusal is the
    server's own check: Wine would have let the open through even where the pipe's DACL forbids
    it (tests/wine/test_wine_service.py's docstring)."""
    code = r"""
import json
from agent.supervisor import winapi as api
from agent.supervisor.protocol import read_message, write_message
from agent.supervisor.windows import PipeServer, connect_pipe
me = api.own_sid()
out = {"me": me}
for label, allowed in (("refused", lambda sid: False), ("served", lambda sid: sid == me)):
    calls = []
    name = rf"\\.\pipe\vigil-test-{label}"
    server = PipeServer(name, lambda peer, req: calls.append([peer, req]) or {"ok": True},
                        allowed, lambda: ["S-1-5-21-1-2-3-1001"])
    server.start()
    stream = connect_pipe(name, 10)
    try:
        dacl = api.handle_dacl_sddl(stream.handle)
    except OSError as exc:
        dacl = f"error: {exc}"
    write_message(stream, {"op": "hello"})
    out[label] = {"answer": read_message(stream), "calls": calls, "dacl": dacl}
    stream.close()
    server.stop()
print("PIPE " + json.dumps(out))
"""
    out = wine.python_json(code, "PIPE ", timeout=60)
    print(json.dumps(out, indent=1))
    assert out["refused"]["answer"] == {"ok": False, "error": "not a session user",
                                        "retry": False}
    assert out["refused"]["calls"] == []
    assert out["served"]["answer"] == {"ok": True}
    assert out["served"]["calls"] == [[out["me"], {"op": "hello"}]]
    # the DACL allows SYSTEM and the one session user given, not the client's own account
    # (Wine stores it and reads it back; it let this client open the pipe all the same)
    assert out["refused"]["dacl"] == "D:P(A;;GA;;;SY)(A;;0x12008b;;;S-1-5-21-1-2-3-1001)"
