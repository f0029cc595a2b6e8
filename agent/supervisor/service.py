"""`vigil agent supervise`: the root process that keeps a session agent in every graphical
session, serves them over its socket, uploads for them and reports tamper.

One loop, woken by a session agent's exit or every ``supervise_poll_s``: look for sessions,
start an agent (as the session's user) where one is missing, judge and restart the ones that
ended, check the files it owns against what it wrote, and seal the tamper events that came of
it. Uploads, the heartbeat and policy refresh are agent.sync.Sync's, as in an unsupervised agent,
but with the supervisor's spool and the device credential only root can read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.children import vigil_command
from agent.cohorts import CohortState
from agent.config import CA_FILE, ENROLMENT_FILE, POLICY_FILE, TRUST_FILE
from agent.flood import FloodControl
from agent.policy_state import PolicyState
from agent.settings import Settings
from agent.spool import Spool
from agent.supervisor.server import SocketServer
from agent.supervisor.sessions import Session, discover
from agent.supervisor.store import SystemConfig
from agent.supervisor.tamper import (
    TAMPER_CATEGORY,
    TAMPER_SOURCE,
    Tamper,
    TamperLimiter,
    seal_tamper,
)
from agent.supervisor.watch import ClockWatch, CodeWatch, default_code_paths
from agent.sync import Sync
from agent.uplink import Uplink
from core.errors import VigilError

__all__ = ["Supervisor", "make_supervisor", "run_supervisor"]

log = logging.getLogger(__name__)

# Settings that are the supervisor's own: never handed to the session agents it starts.
_OWN = {"VIGIL_AGENT_SYSTEM_CONFIG_DIR", "VIGIL_AGENT_STATE_DIR", "VIGIL_AGENT_SESSIONS",
        "VIGIL_AGENT_SUPERVISED", "VIGIL_AGENT_SOCKET_PATH", "VIGIL_AGENT_CONFIG_DIR",
        "VIGIL_AGENT_SPOOL_DIR"}
# An agent that ran this long before it ended starts again at once; a crash loop backs off.
_STABLE_S = 60.0
# A clean exit is judged this long after it happened, once the session had time to go away
# (the agent ends on its own when the X connection closes at sign-out).
_JUDGE_AFTER_S = 1.5


@dataclass
class SessionAgent:
    session: Session  # or windows.WinSession
    proc: Any = None  # subprocess.Popen, or windows.WinProcess
    started_at: float = 0.0
    next_start: float = 0.0
    delay: float = 0.0
    down_since: float | None = None
    missing_reported: bool = False
    # (return code, when, pid, seconds it ran) of an exit awaiting judgement: kept when the
    # agent is started again before it is judged (restart_initial_s < _JUDGE_AFTER_S)
    exit_seen: tuple[int, float, int, float] | None = None
    starts: int = 0
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = SystemConfig(settings.system_config_dir, settings.state_dir)
        self.enrolment = self.config.load_enrolment()
        self.config.ensure()
        spool_dir = settings.state_dir / "spool"
        self.spool = Spool(spool_dir, settings.spool_max_events, settings.spool_max_bytes)
        self.flood = FloodControl(settings.flood_window_s, spool_dir / "repeats.json")
        policy_file = self.config.file(POLICY_FILE)
        self.policy = PolicyState(self.config)
        for name in self.config.watched:
            self.config.remember(name)
        self._ca = self.config._read(CA_FILE)
        self._pending: list[Tamper] = []
        self._limiter = TamperLimiter(settings.tamper_cooldown_s)
        self._lock = threading.Lock()
        if policy_file.exists() and self.policy.policy is None:
            # Changed while we were stopped, or damaged: refetched from the collector below.
            self.report(Tamper("tamper.policy_edited", "", {"file": str(policy_file),
                                                            "found": "at start, unverifiable"}))
        # The school's cohort map (agent.cohorts): fetched by the supervisor's own sync, handed
        # to the session agents over the socket ("cohorts"), who tag their events with it.
        self.cohorts = CohortState(self.config)
        self.sync = Sync(settings, self.config, self.enrolment, self.policy, self.spool,
                         self.flood, self.heartbeat_status, cohorts=self.cohorts)
        self._repeats = Uplink(self.enrolment, settings.http_timeout_s)
        self._repeats_lock = threading.Lock()
        self.agents: dict[str, SessionAgent] = {}
        self._wake = threading.Event()
        self.server = self._make_server()
        self.sessions_dir = settings.state_dir / "sessions"
        self._clock = ClockWatch(settings.clock_jump_s)
        self._code = CodeWatch([Path(p) for p in settings.code_paths.split(os.pathsep) if p]
                               or default_code_paths())
        self._code_due = time.monotonic() + settings.code_check_s

    # --- what differs by platform (agent/supervisor/windows.py overrides these) ---------------
    def _make_server(self) -> Any:
        return SocketServer(self.settings.socket_path, self.handle, self._is_session_user)

    def _discover(self) -> list[Any]:
        return discover(self.settings.sessions)

    def _spawn(self, agent: SessionAgent, out: IO[bytes]) -> Any:
        """Start ``vigil agent run`` in the agent's session, as its user: a Popen-like object
        (poll, wait, returncode, pid)."""
        s = agent.session
        try:
            groups = os.getgrouplist(s.user, s.gid)
        except OSError:
            groups = [s.gid]
        return subprocess.Popen(
            vigil_command("agent", "run"), env=self._agent_env(s),
            cwd=s.home if os.path.isdir(s.home) else "/", stdin=subprocess.DEVNULL,
            stdout=out, stderr=out, start_new_session=True,
            **({"user": s.uid, "group": s.gid, "extra_groups": groups}
               if os.geteuid() == 0 else {}))

    def _kill(self, proc: Any) -> None:
        """End an agent that did not stop when asked, with everything it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _exit_rule(self, code: int, detail: dict[str, Any]) -> str:
        """The tamper rule for an agent that ended with ``code`` while its session went on."""
        if code < 0:
            try:
                detail["signal"] = signal.Signals(-code).name
            except ValueError:
                detail["signal"] = str(-code)
            return "tamper.agent_killed"
        return "tamper.agent_stopped" if code == 0 else "tamper.agent_crashed"

    # --- the socket ---------------------------------------------------------------------------
    def _is_session_user(self, uid: Any) -> bool:
        with self._lock:
            return any(a.session.uid == uid for a in self.agents.values())

    def _policy_answer(self, etag: Any) -> dict[str, Any]:
        signed, current = self.policy.signed, self.policy.etag
        if signed is None or (etag and etag == current):
            return {"ok": True, "signed": None, "etag": current}
        return {"ok": True, "signed": signed.decode(), "etag": current}

    def handle(self, uid: Any, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            e = self.enrolment
            return {**self._policy_answer(None), "device_id": e.device_id,
                    "collector": e.collector, "keyset_fingerprint": e.keyset_fingerprint,
                    "trust": self.policy.trust.to_json()}
        if op == "policy":
            return self._policy_answer(request.get("etag"))
        if op == "cohorts":
            body, current = self.cohorts.body, self.cohorts.etag
            if body is None or request.get("etag") == current:
                return {"ok": True, "map": None, "etag": current}
            return {"ok": True, "map": body.decode(), "etag": current}
        if op == "events":
            return self._take_events(uid, request.get("events"))
        if op == "repeats":
            repeats = request.get("repeats")
            if not isinstance(repeats, list):
                return {"ok": False, "error": "repeats must be a list", "retry": False}
            try:
                with self._repeats_lock:
                    updated = self._repeats.send_repeats(repeats)
            except VigilError as exc:
                return {"ok": False, "error": str(exc), "retry": True}
            return {"ok": True, "updated": updated}
        if op == "status":
            status = request.get("status")
            with self._lock:
                for agent in self.agents.values():
                    if agent.session.uid == uid and isinstance(status, dict):
                        agent.status = status
            return {"ok": True, "policy_etag": self.policy.etag,
                    "cohort_etag": self.cohorts.etag}
        return {"ok": False, "error": f"unknown op {op!r}", "retry": False}

    def _take_events(self, uid: Any, events: Any) -> dict[str, Any]:
        from core.envelope import read_meta

        if not isinstance(events, list):
            return {"ok": False, "error": "events must be a list", "retry": False}
        stored: list[str] = []
        refused: dict[str, str] = {}
        for item in events:
            event_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            try:
                data = base64.b64decode(str(item["envelope"]), validate=True)
                meta, _ = read_meta(data)
            except (KeyError, TypeError, ValueError, binascii.Error, VigilError) as exc:
                refused[event_id] = f"not a sealed event: {exc}"
                continue
            if meta.event_id != event_id or meta.device_id != self.enrolment.device_id:
                refused[event_id] = "sealed for another event or device"
            elif meta.category == TAMPER_CATEGORY or meta.source == TAMPER_SOURCE:
                refused[event_id] = "tamper events come from the supervisor only"
            else:
                self.spool.put(event_id, meta.severity, data)
                stored.append(event_id)
        if refused:
            log.warning("refused %d event(s) from uid %s: %s", len(refused), uid,
                        sorted(set(refused.values())))
        if stored:
            self.sync.wake()
        return {"ok": True, "stored": stored, "refused": refused}

    def heartbeat_status(self) -> dict[str, Any]:
        with self._lock:
            statuses = [a.status for a in self.agents.values() if a.running and a.status]
            signed_in = bool(self.agents)
        out: dict[str, Any] = {
            "user_signed_in": signed_in, "spool_depth": self.spool.depth,
            "dropped": self.spool.dropped, "quarantined": self.spool.quarantined,
            "listener_restarts": sum(int(s.get("listener_restarts") or 0) for s in statuses),
            "policy_serial": self.policy.serial, "policy_digest": self.policy.digest}
        for s in statuses:
            if s.get("detection"):
                out["detection"], out["detection_note"] = s["detection"], s.get("detection_note", "")
                break
        return out

    # --- tamper -------------------------------------------------------------------------------
    def report(self, tamper: Tamper) -> None:
        log.warning("tamper: %s (user %r): %s", tamper.rule, tamper.user, tamper.detail)
        with self._lock:
            self._pending.append(tamper)
        self._wake.set()

    def _flush_tamper(self) -> None:
        policy = self.policy.policy
        if policy is None:
            return  # nobody to seal to yet: kept until the first policy arrives
        with self._lock:
            pending, self._pending = self._pending, []
        for tamper in pending:
            count = self._limiter.admit(tamper)
            if not count:
                continue
            event_id, data = seal_tamper(tamper, self.enrolment.device_id, policy.keyholders, count)
            self.spool.put(event_id, tamper.severity, data)
            log.info("tamper event %s (%s) spooled", event_id, tamper.rule)
        if pending:
            self.sync.wake()

    def _signed_in(self) -> str:
        return ",".join(sorted({a.session.user for a in self.agents.values()}))

    def check_files(self) -> None:
        """Put back any file of ours changed behind our back, and say so."""
        for name in self.config.watched:
            if not self.config.changed(name):
                continue
            path = self.config.file(name)
            rule = {POLICY_FILE: "tamper.policy_edited",
                    TRUST_FILE: "tamper.trust_edited"}.get(name, "tamper.config_edited")
            if name == POLICY_FILE and self.policy.signed is not None:
                self.config.save_policy(self.policy.signed, self.policy.etag or "")
            elif name == TRUST_FILE:
                self.config.save_trust(self.policy.trust.to_json())
            elif name == ENROLMENT_FILE:
                self.config.save_enrolment(self.enrolment)
            elif name == CA_FILE and self._ca is not None:
                self.config.save_ca(self._ca)
            else:
                self.config.remember(name)
            self.report(Tamper(rule, self._signed_in(), {"file": str(path), "restored": True}))

    # --- session agents -----------------------------------------------------------------------
    def _agent_env(self, s: Session) -> dict[str, str]:
        env = {"HOME": s.home, "USER": s.user, "LOGNAME": s.user, "DISPLAY": s.display,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8"),
               "PYTHONUNBUFFERED": "1"}
        if s.xauthority:
            env["XAUTHORITY"] = s.xauthority
        if s.session_id:
            env["XDG_SESSION_ID"] = s.session_id
        for key, value in os.environ.items():
            if (key.startswith("VIGIL_AGENT_") and key not in _OWN) or key == "PYTHONPATH":
                env[key] = value
        runtime = Path(f"/run/user/{s.uid}")
        if not runtime.is_dir():  # no logind: a private runtime directory of our own making
            runtime = self.settings.socket_path.parent / f"user-{s.uid}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.chown(runtime, s.uid, s.gid)
            runtime.chmod(0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        env["VIGIL_AGENT_SUPERVISED"] = "1"
        env["VIGIL_AGENT_SOCKET_PATH"] = str(self.settings.socket_path)
        return env

    def log_path(self, s: Session) -> Path:
        return self.sessions_dir / f"{s.key}.log"

    def _start(self, agent: SessionAgent) -> None:
        s = agent.session
        self.sessions_dir.mkdir(mode=0o750, exist_ok=True)
        out: IO[bytes] = open(self.log_path(s), "ab")  # noqa: SIM115 - handed to the child
        try:
            os.chmod(self.log_path(s), 0o640)
            agent.proc = self._spawn(agent, out)
        except OSError as exc:
            log.error("cannot start the agent for %s: %s", s.key, exc)
            agent.next_start = time.monotonic() + self._backoff(agent)
            return
        finally:
            out.close()
        agent.started_at = time.monotonic()
        agent.starts += 1
        agent.down_since = None
        agent.missing_reported = False
        log.info("started the agent for %s (pid %d)", s.key, agent.proc.pid)
        proc = agent.proc
        threading.Thread(target=self._await_exit, args=(proc,), name="vigil-agent-wait",
                         daemon=True).start()

    def _await_exit(self, proc: Any) -> None:
        proc.wait()
        self._wake.set()

    def _backoff(self, agent: SessionAgent) -> float:
        s = self.settings
        if agent.delay == 0 or time.monotonic() - agent.started_at >= _STABLE_S:
            agent.delay = s.restart_initial_s
        else:
            agent.delay = min(agent.delay * 2, s.restart_max_s)
        return agent.delay

    def _stop_agent(self, agent: SessionAgent) -> None:
        proc = agent.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # the agent ends its notice window and tray icon itself
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            proc.wait(5)

    def _judge_exit(self, agent: SessionAgent, present: bool, now: float) -> None:
        assert agent.exit_seen is not None
        code, when, pid, ran_s = agent.exit_seen
        if code >= 0 and now - when < _JUDGE_AFTER_S:
            return  # wait a moment: a sign-out also ends the agent, and is no tamper
        agent.exit_seen = None
        if not present:
            return
        s = agent.session
        detail = {"display": s.display, "exit": code, "pid": pid, "ran_s": ran_s}
        self.report(Tamper(self._exit_rule(code, detail), s.user, detail))

    def tick(self) -> None:
        now = time.monotonic()
        sessions = {s.key: s for s in self._discover()}
        with self._lock:
            for key, session in sessions.items():
                if key not in self.agents:
                    log.info("session %s found", key)
                    self.agents[key] = SessionAgent(session)
            gone = [self.agents.pop(k) for k in list(self.agents) if k not in sessions]
        for agent in gone:
            log.info("session %s ended", agent.session.key)
            self._stop_agent(agent)
        for agent in list(self.agents.values()):
            proc = agent.proc
            if proc is not None and proc.poll() is not None and agent.down_since is None:
                agent.down_since = now
                agent.exit_seen = (proc.returncode, now, proc.pid,
                                   round(now - agent.started_at, 1))
                agent.next_start = now + self._backoff(agent)
                log.warning("the agent for %s ended (exit %s); restarting in %.1f s",
                            agent.session.key, proc.returncode, agent.next_start - now)
            if agent.exit_seen is not None:
                self._judge_exit(agent, True, now)
            if not agent.running and now >= agent.next_start:
                self._start(agent)
            if agent.running:
                continue
            down = agent.down_since if agent.down_since is not None else now
            agent.down_since = down
            if now - down >= self.settings.agent_missing_s and not agent.missing_reported:
                agent.missing_reported = True
                self.report(Tamper("tamper.agent_missing", agent.session.user,
                                   {"display": agent.session.display,
                                    "down_s": round(now - down, 1)}))
        self.check_files()
        self.check_clock_and_code(now)
        self._flush_tamper()

    def check_clock_and_code(self, now: float) -> None:
        """Report a moved clock at once, and changed code at most every code_check_s."""
        moved = self._clock.moved()
        if moved:
            self.report(Tamper("tamper.clock_moved", self._signed_in(),
                               {"moved_s": round(moved), "direction": "forward" if moved > 0
                                else "back"}))
        if now < self._code_due:
            return
        self._code_due = now + self.settings.code_check_s
        diff = self._code.changed()
        if diff:
            detail: dict[str, Any] = {kind: paths[:10] for kind, paths in diff.items()}
            detail["files"] = sum(len(paths) for paths in diff.values())
            self.report(Tamper("tamper.agent_changed", self._signed_in(), detail))

    def _next_wait(self) -> float:
        """Until the next poll, or sooner when an agent is due to start again or be judged."""
        now, wait = time.monotonic(), self.settings.supervise_poll_s
        for agent in list(self.agents.values()):
            if not agent.running:
                wait = min(wait, agent.next_start - now)
            if agent.exit_seen is not None:
                wait = min(wait, agent.exit_seen[1] + _JUDGE_AFTER_S - now)
        return max(0.05, wait)

    def run(self, stop: threading.Event) -> int:
        self.server.start()
        self.sync.start()
        log.info("supervisor running: device %s, policy serial %d, trust in %s, state in %s",
                 self.enrolment.device_id, self.policy.serial, self.config.path,
                 self.settings.state_dir)
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # never let one bad look at the sessions end supervision
                    log.exception("supervisor tick failed")
                self._wake.wait(self._next_wait())
                self._wake.clear()
        finally:
            for agent in list(self.agents.values()):
                self._stop_agent(agent)
            self.server.stop()
            self.sync.stop()
            self._repeats.close()
        log.info("supervisor stopped")
        return 0


def make_supervisor(settings: Settings) -> Supervisor:
    """This platform's supervisor: the one above on Linux, agent.supervisor.windows' on Windows."""
    if sys.platform == "win32":
        from agent.supervisor.windows import WindowsSupervisor

        return WindowsSupervisor(settings)
    return Supervisor(settings)


def run_supervisor(settings: Settings, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    supervisor = make_supervisor(settings)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("stopping on signal %d", signum)
        stop.set()
        supervisor._wake.set()

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):  # Windows has no SIGHUP
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), on_signal)
    return supervisor.run(stop)
