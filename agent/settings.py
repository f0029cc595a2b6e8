"""The agent's one Settings object: every tunable in one place, with the defaults the issue asks for.

Values a school decides (capture format, flood window, schedule, notice) come from the signed
policy and override these defaults at run time; the rest are local to the machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["Settings", "default_config_dir", "default_spool_dir"]

APP = "vigil-agent"


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def default_spool_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False)) / "spool"


def _common_appdata() -> Path:
    """%ProgramData% as the shell knows it (CSIDL_COMMON_APPDATA, the MSI's CommonAppDataFolder):
    a service's environment need not say (Wine's services.exe gives C:\\users\\Public)."""
    import ctypes

    buf = ctypes.create_unicode_buffer(260)
    if ctypes.windll.shell32.SHGetFolderPathW(None, 0x23, None, 0, buf) == 0 and buf.value:
        return Path(buf.value)
    return Path(os.environ.get("ProgramData", r"C:\ProgramData"))


def _system_default(what: str) -> Path:
    """The supervisor's system paths: /etc, /var/lib and /run on Linux; ProgramData and the
    service's pipe on Windows."""
    if sys.platform == "win32":
        base = _common_appdata() / "Vigil"
        return {"config": base / "enrolment", "state": base / "state",
                "socket": Path(r"\\.\pipe\vigil-supervisor")}[what]
    return {"config": Path("/etc/vigil/agent"), "state": Path("/var/lib/vigil-agent"),
            "socket": Path("/run/vigil-agent/agent.sock")}[what]


_PATHS = frozenset({"config_dir", "spool_dir", "system_config_dir", "state_dir", "socket_path"})


@dataclass(frozen=True)
class Settings:
    config_dir: Path = field(default_factory=default_config_dir)
    spool_dir: Path = field(default_factory=default_spool_dir)
    # Typing buffer: characters kept in memory (bounded; older characters are forgotten).
    buffer_capacity: int = 512
    # Characters of context kept either side of a match in the sealed header.
    context_chars: int = 60
    # Same rule + same user within this many seconds -> one event with a count.
    flood_window_s: float = 600.0
    # The same window title does not fire again within this many seconds.
    title_cooldown_s: float = 300.0
    # Auto-repeated printable keys beyond this run length are ignored (no word needs more).
    max_repeat_run: int = 3
    # Keys injected by software (XSendEvent / LLKHF_INJECTED): on-screen keyboards and
    # accessibility tools inject keys a pupil types, so they are matched unless switched off.
    match_injected: bool = True
    # Capture.
    image_format: str = "webp"  # webp | png | jpeg
    image_quality: int = 70
    image_scale: float = 1.0  # 0.1..1.0: downscale screenshots by this factor
    all_monitors: bool = False
    # Spool.
    spool_max_events: int = 2000
    spool_max_bytes: int = 512 * 1024 * 1024
    upload_batch: int = 20
    # Uplink.
    heartbeat_s: float = 60.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    http_timeout_s: float = 20.0
    # The sentence model (agent.judge) next to the lists; off: the lists alone.
    model: bool = True
    # Seconds without a key after which what is typed so far goes to the sentence model.
    utterance_pause_s: float = 2.0
    # Log level: "info" by default; "debug" adds one line per focus change (a window id, never
    # a title or a key), which tests use to know the agent has seen a window before typing.
    log_level: str = "info"
    # --- screen reading (agent/screen, issue 16): OCR of the window in front ---
    # The signed policy switches it on and sets its rate (core.policy.ScreenSettings): a school
    # decides what is monitored, not the desktop. This switch only lets a technician keep it off
    # on one machine (VIGIL_AGENT_SCREEN=0), e.g. one too slow for OCR; it cannot switch it on.
    screen: bool = True
    # How often the window in front is grabbed and hashed (a few ms) to see whether it changed.
    screen_poll_s: float = 2.0
    # A window whose content keeps changing is read (OCR, about 0.25 s of CPU) at most this often;
    # a new window or title is read at once, ``screen_settle_s`` after it came to the front.
    screen_interval_s: float = 5.0
    screen_settle_s: float = 0.4
    # No reading while the whole machine's CPU is above this percentage (100: never pause).
    screen_busy_pct: float = 80.0
    # Read on battery too (off by default: a laptop on battery pauses screen reading).
    screen_on_battery: bool = False
    # tesseract language data, "+"-joined (each costs time: eng+cym+pol doubles a read).
    screen_languages: str = "eng"
    # The nudity check (agent/screen/images.py) on the same frames, and its threshold on the
    # strongest explicit class (fires image:nudity, pornography, severity 5: blurred).
    screen_images: bool = True
    screen_image_threshold: float = 0.5
    # --- the system supervisor (agent/supervisor, `vigil agent supervise`, run as root) ---
    # Where the supervisor keeps the trust anchor and the enrolment (the device secret in it is
    # root's only), the signed policy and its spool, and the socket the session agents use.
    # On Windows: %ProgramData%\Vigil\enrolment (where the MSI enrols), %ProgramData%\Vigil\state
    # and the service's named pipe (agent/supervisor/windows.py).
    system_config_dir: Path = field(default_factory=lambda: _system_default("config"))
    state_dir: Path = field(default_factory=lambda: _system_default("state"))
    socket_path: Path = field(default_factory=lambda: _system_default("socket"))
    # Set by the supervisor for the session agents it starts: policy, trust and uploads come
    # from the supervisor over ``socket_path``, nothing from the user's own config directory.
    supervised: bool = False
    # Sessions given explicitly, ":N=USER" separated by commas (machines without logind, tests);
    # empty: logind, else the X displays in use.
    sessions: str = ""
    # How often the supervisor looks for sessions and checks its files (a dead agent wakes it
    # at once); restart backoff of a session agent that keeps dying.
    supervise_poll_s: float = 2.0
    restart_initial_s: float = 1.0
    restart_max_s: float = 30.0
    # A session with no running agent for this long is reported once (tamper.agent_missing).
    agent_missing_s: float = 30.0
    # The same tamper rule for the same user is sent at most once per this many seconds; the
    # ones in between are counted in the next one.
    tamper_cooldown_s: float = 60.0
    # The wall clock moved against the boot clock by more than this: reported (tamper.clock_moved;
    # a pupil setting the clock back to fall outside the monitoring schedule, or forward).
    clock_jump_s: float = 300.0
    # The agent's own code, checked every code_check_s (size and modification time):
    # directories and files separated by os.pathsep; empty: the installed agent, core and vigil
    # packages and the Python interpreter. A change is reported (tamper.agent_changed).
    code_paths: str = ""
    code_check_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then VIGIL_AGENT_<FIELD> environment variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"VIGIL_AGENT_{f.name.upper()}")
            if raw is None:
                continue
            kind = Path if f.name in _PATHS else type(getattr(cls(), f.name))
            if kind is bool:
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[f.name] = kind(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_policy(self, policy: Any) -> Settings:
        """These settings with the policy's capture options, flood window, cool-down and screen
        reading (on only if the policy and this desktop both allow it)."""
        if policy is None:
            return self
        return replace(
            self,
            image_format=policy.capture.format,
            image_quality=policy.capture.quality,
            image_scale=policy.capture.scale,
            all_monitors=policy.capture.all_monitors,
            flood_window_s=float(policy.flood_window_s),
            title_cooldown_s=float(policy.title_cooldown_s),
            screen=self.screen and policy.screen.enabled,
            screen_interval_s=float(policy.screen.interval_s),
            screen_images=self.screen_images and policy.screen.images,
            screen_on_battery=policy.screen.on_battery,
        )
