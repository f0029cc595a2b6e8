"""``vigil agent selftest``: the checklist a technician runs on a desktop, one line per check.

Each check prints ``OK``, ``FAIL`` or ``SKIP`` with its name and a one-line reason; the exit code is
0 only if nothing failed. The checks use the agent's own code (the config directory, the pinned TLS
of agent/uplink.py, the policy verification of agent/policy_state.py, the keyboard hook of
agent/sensors/keyboard.py, the platform backend's foreground window, agent/capture.py, the sentence
model of core/detect), so an OK here means the running agent can do the same.

Nothing secret or personal is printed: no device secret, no token, no window title (only its
length), no typed text (the hook is started and stopped, never fed), no screen content (only its
size and whether it is uniform).
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.config import ConfigDir, Enrolment
from agent.settings import Settings
from core.errors import VigilError

__all__ = ["Check", "run_selftest"]

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"


@dataclass(frozen=True)
class Check:
    name: str
    state: str
    reason: str

    def line(self) -> str:
        return f"{self.state:<4}  {self.name:<11} {self.reason}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Selftest:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = ConfigDir(settings.config_dir)
        self.enrolment: Enrolment | None = None
        self.collector_ok = False
        self.wordlists: dict[str, str] | None = None  # the verified policy's, for the model

    # --- the checks, in the order printed ----------------------------------------------------
    def enrolment_check(self) -> Check:
        self.enrolment = self.config.load_enrolment()  # NotEnrolled / ConfigError: one line
        host = self.enrolment.collector
        pin = "certificate fingerprint" if self.enrolment.cert_fingerprints else "CA certificate"
        return Check("enrolment", OK, f"readable in {self.config.path}; collector {host}, "
                                      f"pinned by {pin}")

    def collector_check(self) -> Check:
        if self.enrolment is None:
            return Check("collector", SKIP, "no enrolment to read the collector from")
        import httpx

        from agent.uplink import tls_context

        e = self.enrolment
        t0 = time.monotonic()
        try:
            with httpx.Client(verify=tls_context(e.ca_file, e.cert_fingerprints),
                              timeout=min(self.settings.http_timeout_s, 10.0)) as client:
                resp = client.get(e.collector.rstrip("/") + "/healthz")
        except Exception as exc:  # noqa: BLE001 - transport, TLS and pin errors: one line each
            return Check("collector", FAIL, f"{e.collector} unreachable over the pinned TLS: "
                                            f"{type(exc).__name__}: {_one_line(exc)}")
        ms = (time.monotonic() - t0) * 1000
        if resp.status_code != 200:
            return Check("collector", FAIL, f"{e.collector}/healthz answered {resp.status_code}")
        self.collector_ok = True
        return Check("collector", OK, f"{e.collector}/healthz answered 200 over the pinned TLS "
                                      f"in {ms:.0f} ms")

    def policy_check(self) -> Check:
        if self.enrolment is None:
            return Check("policy", SKIP, "no enrolment, so no trust anchor")
        from agent.policy_state import PolicyState

        state = PolicyState(self.config)  # verifies the cached policy against the trust record
        if state.policy is not None:
            self.wordlists = dict(state.policy.wordlists)
            return Check("policy", OK, f"serial {state.serial}, verified against the keyholder "
                                       f"set pinned at enrolment ({self._anchor()})")
        if self.config.load_policy() is not None:
            return Check("policy", FAIL, "the cached policy does not verify against the trust "
                                         "anchor (the agent will not use it)")
        if not self.collector_ok:
            return Check("policy", FAIL, "no policy cached and the collector is unreachable")
        from agent.uplink import Uplink
        from core.policy import verify

        uplink = Uplink(self.enrolment, self.settings.http_timeout_s)
        try:
            fetched = uplink.fetch_policy(None)
        finally:
            uplink.close()
        if fetched is None:
            return Check("policy", FAIL, "the collector has no policy for this device")
        policy, _ = verify(fetched[0], state.trust)  # PolicyError: FAIL with its reason
        self.wordlists = dict(policy.wordlists)
        return Check("policy", OK, f"serial {policy.serial} fetched and verified against the "
                                   f"keyholder set pinned at enrolment ({self._anchor()}); "
                                   "not cached yet (the agent caches it)")

    def _anchor(self) -> str:
        fpr = self.enrolment.keyset_fingerprint if self.enrolment else ""
        return fpr[:20] + "..." if len(fpr) > 20 else fpr

    def hook_check(self) -> Check:
        from agent.sensors.keyboard import InputHooks

        if sys.platform != "win32":
            from agent.sensors import select_backend

            # No display (or Wayland): say why at once, not after 10 s of a hook thread failing.
            select_backend()
        hooks = InputHooks(queue.SimpleQueue(), mouse=False)
        t0 = time.monotonic()
        hooks.start()
        try:
            live = hooks.wait_ready(10)
        finally:
            hooks.stop()
        if not live:
            return Check("keyboard", FAIL, "the keyboard hook did not become live within 10 s")
        return Check("keyboard", OK, f"the keyboard hook started in "
                                     f"{(time.monotonic() - t0) * 1000:.0f} ms and stopped")

    def title_check(self) -> Check:
        if sys.platform == "win32":
            from agent.sensors.windows import WinApi, describe_foreground

            info = describe_foreground(WinApi())
            where = "GetForegroundWindow/GetWindowTextW"
        else:
            from agent.sensors import select_backend
            from agent.sensors.x11 import X11Windows

            select_backend()  # NoDisplay / Wayland: its one-line reason
            watcher = X11Windows(lambda change: None, os.environ.get("DISPLAY"))
            watcher.start()
            try:
                info = watcher.current
            finally:
                watcher.stop()
            where = "_NET_ACTIVE_WINDOW"
        if info is None:
            return Check("title", FAIL, f"no window in front ({where}): open one and run again")
        if not info.title:
            return Check("title", FAIL, f"the window in front has no readable title ({where})")
        # the length only: a title can name a pupil or what they are looking at
        return Check("title", OK, f"read the foreground window's title ({len(info.title)} "
                                  f"characters, not shown) through {where}")

    def screenshot_check(self) -> Check:
        import io

        from PIL import Image as PILImage

        from agent.capture import Capturer

        capturer = Capturer(fmt="png")
        try:
            shot = capturer.grab(None)
        finally:
            capturer.close()
        if not shot.data or shot.width <= 0 or shot.height <= 0:
            return Check("screenshot", FAIL, "the capture is empty")
        img = PILImage.open(io.BytesIO(shot.data)).convert("RGB")
        if all(lo == hi for lo, hi in img.getextrema()):
            return Check("screenshot", FAIL, f"the {shot.width}x{shot.height} capture is one "
                                             "uniform colour (a blank or protected screen)")
        return Check("screenshot", OK, f"{shot.width}x{shot.height}, not blank "
                                       f"({len(shot.data)} bytes as PNG, not kept)")

    def model_check(self) -> Check:
        if not self.settings.model:
            return Check("model", SKIP, "the sentence model is switched off in the settings "
                                        "(VIGIL_AGENT_MODEL=0): the lists alone")
        from core.detect import build
        from core.rules import default_files, load_policy_files

        # the policy's lists, as the agent builds it; without a policy, the bundled defaults
        files = self.wordlists or {f"default/{k}": v for k, v in default_files().items()}
        t0 = time.monotonic()
        detector = build(load_policy_files(files), model=True)
        if detector.model is None:
            return Check("model", FAIL, f"the sentence model did not load: "
                                        f"{detector.unavailable or 'unknown reason'}")
        return Check("model", OK, f"the sentence model loaded in {time.monotonic() - t0:.1f} s")

    def supervised_check(self) -> Check:
        if sys.platform == "win32":
            from agent.supervisor.windows import connect_pipe

            path = self.settings.socket_path
            try:
                connect_pipe(str(path), 2).close()
            except OSError as exc:
                return Check("supervised", SKIP, f"no supervisor service answers on {path} "
                                                 f"({exc}): the agent runs as the user alone "
                                                 "(the Run entry), without tamper reports")
            except VigilError as exc:
                return Check("supervised", FAIL, str(exc))
            return Check("supervised", OK, f"the supervisor service answers on {path}")
        import socket

        path = self.settings.socket_path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError as exc:
            return Check("supervised", SKIP, f"no supervisor answers on {path} "
                                             f"({exc.strerror or type(exc).__name__}): the agent "
                                             "runs as the user alone, without tamper reports")
        finally:
            sock.close()
        return Check("supervised", OK, f"the supervisor answers on {path}")


def run_selftest(settings: Settings, out: Callable[[str], Any] = print) -> int:
    """Run every check, print one line each; 0 if none failed, else 1."""
    test = _Selftest(settings)
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("enrolment", test.enrolment_check), ("collector", test.collector_check),
        ("policy", test.policy_check), ("keyboard", test.hook_check),
        ("title", test.title_check), ("screenshot", test.screenshot_check),
        ("model", test.model_check), ("supervised", test.supervised_check),
    ]
    failed = 0
    for name, check in checks:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a check is that check's FAIL
            result = Check(name, FAIL, _one_line(exc))
        failed += result.state == FAIL
        out(result.line())
    out(f"selftest: {'all checks passed' if not failed else f'{failed} check(s) failed'}")
    return 1 if failed else 0
