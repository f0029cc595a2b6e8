"""The supervisor's parts without a display: the socket's peer check with a real second uid
(a forked child that drops to nobody), the files' modes and change detection, the session
spelling and the tamper limiter."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from agent.supervisor.protocol import read_message, write_message
from agent.supervisor.server import SocketServer
from agent.supervisor.sessions import parse_explicit
from agent.supervisor.store import SystemConfig
from agent.supervisor.tamper import Tamper, TamperLimiter
from tests.fixtures.supervisor import supervisor_base  # noqa: F401

NOBODY = 65534


@pytest.fixture
def base(supervisor_base: Path) -> Path:  # noqa: F811 - a 0755 directory in /tmp, removed after
    return supervisor_base


def _ask_as(uid: int, path: Path) -> dict:
    """Connect to ``path`` as ``uid`` (a forked child that drops to it) and send ``hello``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(str(path))
                stream = sock.makefile("rwb")
                write_message(stream, {"op": "hello"})
                answer = read_message(stream)
            os.write(write_fd, json.dumps(answer).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child could not ask"
    return json.loads(raw)


def test_the_socket_answers_session_users_only(base: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root: the server checks a second uid")
    allowed: set[int] = set()
    seen: list[int] = []

    def handle(uid: int, request: dict) -> dict:
        seen.append(uid)
        return {"ok": True, "uid": uid}

    server = SocketServer(base / "run/agent.sock", handle, lambda uid: uid in allowed)
    server.start()
    try:
        sock_dir = base / "run"
        assert sock_dir.stat().st_uid == 0 and stat.S_IMODE(sock_dir.stat().st_mode) == 0o755
        refused = _ask_as(NOBODY, server.path)
        assert refused == {"ok": False, "error": "not a session user", "retry": False}
        assert seen == []
        allowed.add(NOBODY)
        assert _ask_as(NOBODY, server.path) == {"ok": True, "uid": NOBODY}
        assert seen == [NOBODY]  # the uid is the kernel's (SO_PEERCRED), not the request's
    finally:
        server.stop()


def test_system_files_modes_and_change_detection(base: Path) -> None:
    config = SystemConfig(base / "etc", base / "state")
    config.save_trust('{"pinned": "x"}')
    config.save_policy(b'{"signed": 1}', '"etag"')
    config._write("enrolment.json", b"{}")
    assert stat.S_IMODE((base / "etc").stat().st_mode) == 0o755
    assert stat.S_IMODE((base / "state").stat().st_mode) == 0o755
    assert stat.S_IMODE((base / "etc/trust.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((base / "state/policy.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((base / "etc/enrolment.json").stat().st_mode) == 0o600
    assert not any(config.changed(n) for n in config.watched)
    (base / "state/policy.json").write_text("{}")
    assert config.changed("policy.json") and not config.changed("trust.json")
    (base / "etc/trust.json").unlink()
    assert config.changed("trust.json")  # a deleted file counts as changed
    config.save_trust('{"pinned": "x"}')
    assert not config.changed("trust.json")


def test_explicit_sessions_are_spelt_display_equals_user() -> None:
    assert parse_explicit(" :5=alice, :12.0=bob ,") == [(":5", "alice"), (":12.0", "bob")]
    for bad in ("alice", ":5", "5=alice", ":x=alice", ":5="):
        with pytest.raises(ValueError):
            parse_explicit(bad)


def test_tamper_limiter_holds_repeats_and_counts_them_in_the_next() -> None:
    limiter = TamperLimiter(60)
    killed = Tamper("tamper.agent_killed", "pupil")
    assert limiter.admit(killed, now=0) == 1
    assert limiter.admit(killed, now=10) == 0
    assert limiter.admit(killed, now=20) == 0
    assert limiter.admit(Tamper("tamper.agent_killed", "other"), now=20) == 1
    assert limiter.admit(Tamper("tamper.policy_edited", "pupil"), now=20) == 1
    assert limiter.admit(killed, now=61) == 3  # this one and the two held back
