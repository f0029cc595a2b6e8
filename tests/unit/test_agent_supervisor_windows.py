"""The platform-independent parts of the Windows supervisor (agent/supervisor/windows.py) and of
the shared loop's exit judgement (agent/supervisor/service.py). The Win32 calls themselves run
for real under Wine (tests/wine/test_wine_service.py), not here."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from agent.supervisor.service import _JUDGE_AFTER_S, SessionAgent, Supervisor
from agent.supervisor.windows import CLIENT_ACCESS, WindowsSupervisor, WinSession, pipe_sddl

USER_SID = "S-1-5-21-1111-2222-3333-1001"


def test_pipe_dacl_names_system_and_the_session_users_only() -> None:
    assert pipe_sddl([]) == "D:P(A;;GA;;;SY)"
    sddl = pipe_sddl([USER_SID, USER_SID, "S-1-5-21-1-2-3-1002"])
    assert sddl == ("D:P(A;;GA;;;SY)(A;;0x0012008B;;;S-1-5-21-1-2-3-1002)"
                    f"(A;;0x0012008B;;;{USER_SID})")
    # read and write data, never FILE_CREATE_PIPE_INSTANCE (0x4): a user cannot serve the pipe
    assert CLIENT_ACCESS & 0x4 == 0 and CLIENT_ACCESS & 0x1 and CLIENT_ACCESS & 0x2


def test_session_key_is_a_file_name() -> None:
    s = WinSession(2, "SCHOOL\\pupil7", USER_SID)
    assert (s.key, s.display, s.uid) == ("pupil7@2", "session 2", USER_SID)


def test_windows_exit_codes_name_the_rule() -> None:
    def rule(code: int) -> tuple[str, dict[str, Any]]:
        detail: dict[str, Any] = {"exit": code}
        return WindowsSupervisor._exit_rule(None, code, detail), detail  # type: ignore[arg-type]

    assert rule(0)[0] == "tamper.agent_stopped"
    killed, detail = rule(1)  # TerminateProcess by Task Manager or taskkill /f
    assert killed == "tamper.agent_killed" and "TerminateProcess" in detail["note"]
    crashed, detail = rule(0xC0000005)
    assert crashed == "tamper.agent_crashed" and detail["exit"] == "0xC0000005"
    assert rule(91)[0] == "tamper.agent_crashed"


class _Exited:
    def __init__(self, pid: int, code: int) -> None:
        self.pid, self.returncode = pid, code

    def poll(self) -> int:
        return self.returncode


def test_an_exit_restarted_before_its_judgement_is_still_reported() -> None:
    """restart_initial_s (1 s) is shorter than the judgement's wait (1.5 s): the agent is running
    again when its clean exit is judged, and the report names the agent that exited."""
    reported: list[Any] = []
    fake = SimpleNamespace(
        report=reported.append,
        _exit_rule=lambda code, detail: Supervisor._exit_rule(fake, code, detail))  # type: ignore[arg-type]
    agent = SessionAgent(WinSession(1, "pupil", USER_SID))  # type: ignore[arg-type]
    now = time.monotonic()
    agent.exit_seen = (0, now, 4242, 12.5)
    agent.proc = _Exited(5151, 0)  # the new agent (its own pid) started meanwhile
    Supervisor._judge_exit(fake, agent, True, now + 0.5)  # type: ignore[arg-type]
    assert reported == [] and agent.exit_seen is not None  # not yet: a sign-out may follow
    Supervisor._judge_exit(fake, agent, True, now + _JUDGE_AFTER_S + 0.1)  # type: ignore[arg-type]
    (tamper,) = reported
    assert tamper.rule == "tamper.agent_stopped"
    assert tamper.detail == {"display": "session 1", "exit": 0, "pid": 4242, "ran_s": 12.5}
