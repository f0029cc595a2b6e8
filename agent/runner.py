"""`vigil agent run`: compose the parts, run until the session ends or a signal arrives."""

from __future__ import annotations

import logging
import signal
import statistics
import subprocess
import threading
from typing import Any

from agent.cohorts import CohortState
from agent.config import ConfigDir
from agent.flood import FloodControl
from agent.memory import tune_allocator
from agent.monitor import Monitor
from agent.notice import DEFAULT_NOTICE, show_notice
from agent.policy_state import PolicyState
from agent.sensors import select_backend
from agent.sensors.keyboard import InputHooks
from agent.settings import Settings
from agent.spool import Spool
from agent.sync import Sync
from agent.tray import start_tray
from core.errors import VigilError

__all__ = ["run_agent"]

log = logging.getLogger(__name__)


def run_agent(settings: Settings, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    tune_allocator()
    backend = select_backend()  # no display / Wayland: one clear line, before anything else
    link = None
    if settings.supervised:
        # Started by the supervisor: trust, policy and uploads come over its socket; the user's
        # own config directory decides nothing (agent/supervisor/client.py).
        from agent.supervisor.client import connect

        config, link = connect(settings.socket_path, settings.http_timeout_s,
                               settings.upload_batch)
    else:
        config = ConfigDir(settings.config_dir)  # type: ignore[assignment]
    enrolment = config.load_enrolment()
    spool = Spool(settings.spool_dir, settings.spool_max_events, settings.spool_max_bytes)
    flood = FloodControl(settings.flood_window_s, settings.spool_dir / "repeats.json")
    policy = PolicyState(config)  # type: ignore[arg-type]
    cohorts = CohortState(config)
    parts: dict[str, Any] = {}  # the hooks and the judge, built after the callback reporting them

    def status() -> dict[str, Any]:
        hooks: InputHooks | None = parts.get("hooks")
        return {"user_signed_in": True, "spool_depth": spool.depth, "dropped": spool.dropped,
                "quarantined": spool.quarantined,
                "listener_restarts": hooks.restarts if hooks else 0,
                "policy_serial": policy.serial, "policy_digest": policy.digest,
                **({"detection": judge.state, "detection_note": judge.note}
                   if (judge := parts.get("judge")) is not None else {}),
                **({"screen": screen.state, "screen_note": screen.note, "screen_paused":
                    screen.paused or ""} if (screen := parts.get("screen")) is not None else {})}

    sync = Sync(settings, config, enrolment, policy, spool, flood, status, uplink=link,  # type: ignore[arg-type]
                cohorts=cohorts)
    if policy.policy is None:
        try:
            sync.refresh_policy()
        except VigilError as exc:
            log.warning("no policy yet (%s); monitoring starts when one arrives", exc)
    notice_text = policy.policy.notice if policy.policy else ""
    notice = show_notice(notice_text, graphical=True)
    tray = start_tray(notice_text.strip() or DEFAULT_NOTICE)
    for helper in (notice, tray):
        if helper is not None:  # reap it when it ends, so no zombie lingers all session
            threading.Thread(target=helper.wait, name="vigil-reaper", daemon=True).start()
    monitor = Monitor(settings, enrolment.device_id, policy, spool, flood, backend.clipboard,
                      on_spooled=sync.wake, cohorts=cohorts)
    parts["judge"] = monitor.judge
    parts["screen"] = monitor.screen
    hooks = InputHooks(monitor.queue)
    parts["hooks"] = hooks
    windows = backend.windows(monitor.queue.put, stop.set)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("stopping on signal %d", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", signal.SIGTERM)):
            signal.signal(sig, on_signal)
    monitor.start()
    try:
        hooks.start()
        windows.start()
        sync.start()
        # "agent running" means input is seen from now on: the hooks are live.
        if not hooks.wait_ready(20):
            log.warning("the input hooks are not live yet; monitoring starts when they are")
        log.info("agent running: device %s, policy serial %d, %s backend, spool %s%s",
                 enrolment.device_id, policy.serial, backend.name, settings.spool_dir,
                 f", supervised over {settings.socket_path}" if link is not None else "")
        stop.wait()
    finally:
        hooks.stop()
        windows.stop()
        monitor.stop()
        sync.stop()
        for helper in (notice, tray):
            if helper is not None and helper.poll() is None:
                helper.terminate()  # the window and the icon are ours: they end with the agent
                try:
                    helper.wait(5)
                except subprocess.TimeoutExpired:
                    helper.kill()
    log.info("agent stopped; %d input(s) handled, %d event(s) sealed, %d waiting in the spool",
             monitor.inputs_seen, monitor.events_sealed, spool.depth)
    judge = monitor.judge
    if judge.judged:
        log.info("sentence model: %d sentence(s) judged, median %.1f ms per utterance "
                 "(%.1f ms of CPU), %d utterance(s) left to the lists while it was busy",
                 judge.judged, judge.model_ms_median() or 0.0, judge.model_cpu_ms_median() or 0.0,
                 judge.skipped)
    screen = monitor.screen
    if screen.reads:
        log.info("screen reader: %d window read(s) of %d poll(s), median %.0f ms per read "
                 "(%.0f ms of OCR CPU, %.0f ms of image check CPU), %d of them the changed "
                 "lines only; %d unchanged, %d rate-limited, %d back-as-read and %d caret or "
                 "noise poll(s) skipped", screen.reads, screen.polls,
                 screen.ocr_ms_median() or 0.0, screen.ocr_cpu_ms_median() or 0.0,
                 statistics.median(screen.image_cpu_ms) if screen.image_cpu_ms else 0.0,
                 screen.partial_reads, screen.detector.skipped_same, screen.detector.skipped_rate,
                 screen.detector.skipped_back, screen.skipped_noise)
    return 0
