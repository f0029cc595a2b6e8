"""The collector's one Settings object, loaded from DATA/settings.toml.

``vigil collector init`` writes the file with every default spelled out, so an administrator
edits values rather than guessing names. Paths in the file are relative to the data directory.
The [dashboard] and [policy] tables belong to the dashboard and the policy builder; unknown keys
there are kept in ``extra`` so those parts can grow without a change here.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from collector.errors import NotInitialised, SettingsError

__all__ = [
    "SETTINGS_FILE",
    "DashboardSettings",
    "PolicySettings",
    "Settings",
    "SmtpSettings",
    "render_settings_file",
]

SETTINGS_FILE = "settings.toml"
MiB = 1024 * 1024


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: alerts are disabled
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    sender: str = "vigil@localhost"
    timeout_s: float = 10.0


@dataclass(frozen=True)
class DashboardSettings:
    session_idle_minutes: int = 15
    unlock_idle_minutes: int = 15
    #: Failed sign-ins or unlocks from one address before its exponential back-off starts.
    login_max_failures: int = 3
    #: How long a failure is remembered for the back-offs.
    login_window_minutes: int = 60
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _names(type(self)) else self.extra.get(name, default)


@dataclass(frozen=True)
class PolicySettings:
    """What an agent runs under, besides keyholders and wordlists (see core.policy.Policy)."""

    notice: str = (
        "This device is monitored under the school's Acceptable Use Policy. What you type and "
        "see may be checked for safeguarding reasons."
    )
    # When the agent monitors: days (mon..sun), a daily window [start, end) in a time zone.
    schedule: dict[str, Any] = field(default_factory=lambda: {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "00:00", "end": "24:00", "timezone": "Europe/London"})
    capture: dict[str, Any] = field(
        default_factory=lambda: {"format": "webp", "quality": 70, "scale": 1.0}
    )
    onsite_networks: list[str] = field(default_factory=list)  # CIDRs; empty: monitor everywhere
    flood_window_s: int = 600
    title_cooldown_s: int = 60
    # Screen reading (on-screen text by OCR and the image check): see core.policy.ScreenSettings
    # and docs/agent.md, "What is on the screen". Off until the school switches it on, because
    # it widens what is monitored and the privacy notice must say so first.
    screen: dict[str, Any] = field(default_factory=lambda: {
        "enabled": False, "interval_s": 5, "images": True, "on_battery": False})
    # The language packs (wordlists/lang/<code>.toml) the policy carries besides the English
    # lists: ["all"] (default, because pupils write in these languages), [] for none, or codes
    # such as ["cy", "pl", "ur", "ur-Latn"]. See docs/admin-guide.md.
    language_packs: list[str] = field(default_factory=lambda: ["all"])
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from core.rules import select_packs

        try:
            select_packs(self.language_packs)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"settings [policy] language_packs: {exc}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str = ""  # empty: SQLite at DATA/vigil.db
    blob_dir: Path = Path("blobs")
    # Where sealed captures are kept: "files" (blob_dir) or "postgresql" (in the database itself,
    # which must then be PostgreSQL: one system to back up, no shared file system for instances).
    blob_store: str = "files"
    tls_cert: Path = Path("tls/cert.pem")
    tls_key: Path = Path("tls/key.pem")
    # The key that seals secrets the collector keeps in its database, such as webhook URLs
    # (collector.secrets_at_rest); made on first use. Never in the database; in backups.
    secrets_key: Path = Path("secrets.key")
    # Every audit entry is also appended here, outside the database (collector.audit_log).
    audit_log: Path = Path("audit.log")
    host: str = "0.0.0.0"
    port: int = 8443
    public_url: str = ""  # how agents and staff reach this collector; empty: https://localhost:PORT
    max_body_bytes: int = 32 * MiB
    # Bodies being handled at once, all requests together; over it an upload gets 503 and
    # Retry-After (collector.body_limit): a reconnection storm drains in bounded memory.
    max_inflight_bytes: int = 128 * MiB
    max_envelope_bytes: int = 8 * MiB
    max_batch: int = 100
    # Per device, in each instance: a burst of events, then this many a minute (0: no limit).
    # Severity 4 and 5 are never refused; 1-3 wait with 429 and Retry-After (collector.ratelimit).
    ingest_rate_per_minute: float = 30.0
    ingest_burst: int = 100
    # How long after a keyholder change events sealed to the previous keyholders are still
    # accepted (agents pick the new policy up at their next heartbeat; collector.recipients).
    keyset_grace_days: float = 7.0
    retention_days: int = 365
    alert_min_severity: int = 5
    alert_recipients: tuple[str, ...] = ()
    # Silent devices (collector.device_health): no heartbeat for this long while the last one
    # said a user was signed in, or for silent_idle_days when no one was (a device put away
    # for longer than a holiday). The job checks every silent_check_interval_s and alerts once.
    silent_after_minutes: float = 30.0
    silent_idle_days: float = 16.0
    silent_check_interval_s: float = 60.0
    # GET /metrics (Prometheus): from these networks, or anywhere with the bearer token.
    metrics_networks: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    metrics_token: str = ""
    log_level: str = "info"
    run_jobs: bool = True  # scheduled jobs (alerts, retention, orphan sweep) in this instance
    alert_interval_s: float = 15.0
    # Routing (collector.routing): a target that is down is tried again after this, doubling
    # each time up to an hour, for a day.
    route_retry_s: float = 60.0
    # Cohort tags (collector.cohorts): publish each school's map of hashed logins to year group
    # and form, so events carry them and routing rules can name a year. false: an empty map,
    # and events arrive untagged. cohort_tags_off: the codes of schools that switched it off
    # for themselves (the others keep it).
    cohort_tags: bool = True
    cohort_tags_off: tuple[str, ...] = ()
    retention_interval_s: float = 3600.0
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)

    def __post_init__(self) -> None:
        data = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data)
        for name in ("blob_dir", "tls_cert", "tls_key", "secrets_key", "audit_log"):
            object.__setattr__(self, name, data / Path(getattr(self, name)))
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data / 'vigil.db'}")
        if not self.public_url:
            object.__setattr__(self, "public_url", f"https://localhost:{self.port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        object.__setattr__(self, "alert_recipients", tuple(self.alert_recipients))
        object.__setattr__(self, "metrics_networks", tuple(self.metrics_networks))
        object.__setattr__(self, "cohort_tags_off", tuple(self.cohort_tags_off))
        if not isinstance(self.cohort_tags, bool):
            raise SettingsError("settings: cohort_tags must be true or false")
        if not all(isinstance(code, str) for code in self.cohort_tags_off):
            raise SettingsError('settings: cohort_tags_off is a list of school codes, like '
                                '["NHA"]')
        for cidr in self.metrics_networks:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SettingsError(f"settings: metrics_networks: {cidr!r} is not a network "
                                    "like 10.0.5.0/24") from None
        for name in ("max_body_bytes", "max_inflight_bytes", "max_envelope_bytes", "max_batch",
                     "retention_days"):
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"settings: {name} must be a positive number")
        for name in ("silent_after_minutes", "silent_idle_days", "silent_check_interval_s",
                     "route_retry_s"):
            if not float(getattr(self, name)) > 0:
                raise SettingsError(f"settings: {name} must be more than zero")
        for name in ("ingest_rate_per_minute", "ingest_burst", "keyset_grace_days"):
            if not float(getattr(self, name)) >= 0:
                raise SettingsError(f"settings: {name} must be zero or more")
        if self.blob_store not in ("files", "postgresql"):
            raise SettingsError(f'settings: blob_store must be "files" or "postgresql", not '
                                f"{self.blob_store!r}")
        if self.blob_store == "postgresql" and self.is_sqlite:
            raise SettingsError('settings: blob_store = "postgresql" needs a PostgreSQL '
                                "database_url")
        if not 1 <= self.alert_min_severity <= 5:
            raise SettingsError("settings: alert_min_severity must be between 1 and 5")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def load(cls, data_dir: Path | str, **overrides: Any) -> Settings:
        """Read DATA/settings.toml; keyword overrides (e.g. from the command line) win."""
        data = Path(data_dir)
        path = data / SETTINGS_FILE
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotInitialised(
                f"{path} not found: run `vigil collector init --data {data}` first"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: {exc}") from None
        values = _top_level(raw, path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(data_dir=data, **values)
        except TypeError as exc:
            raise SettingsError(f"{path}: {exc}") from None

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _section(cls: type, raw: Any, path: Path, table: str) -> Any:
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: [{table}] must be a table")
    known = _names(cls) - {"extra"}
    unknown = {k: v for k, v in raw.items() if k not in known}
    if unknown and "extra" not in _names(cls):
        raise SettingsError(f"{path}: unknown key(s) in [{table}]: {', '.join(sorted(unknown))}")
    kwargs = {k: v for k, v in raw.items() if k in known}
    if "extra" in _names(cls):
        kwargs["extra"] = unknown
    return cls(**kwargs)


def _top_level(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    sections = {"smtp": SmtpSettings, "dashboard": DashboardSettings, "policy": PolicySettings}
    known = _names(Settings) - {"data_dir"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            values[key] = _section(sections[key], value, path, key)
        elif key in known:
            values[key] = (tuple(value) if key in ("alert_recipients", "metrics_networks",
                                                   "cohort_tags_off") else value)
        else:
            raise SettingsError(f"{path}: unknown setting {key!r}")
    return values


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_settings_file(settings: Settings) -> str:
    """The settings as TOML, every value spelled out, paths relative to the data directory."""
    lines = ["# Vigil collector settings. Paths are relative to this directory.", ""]
    sections: list[tuple[str, Any]] = []
    for f in fields(Settings):
        if f.name == "data_dir":
            continue
        value = getattr(settings, f.name)
        if f.name in ("smtp", "dashboard", "policy"):
            sections.append((f.name, value))
            continue
        if isinstance(value, Path) and value.is_relative_to(settings.data_dir):
            value = value.relative_to(settings.data_dir)
        if f.name == "database_url" and value == f"sqlite:///{settings.data_dir / 'vigil.db'}":
            value = ""  # keep the default, so a moved data directory still works
        lines.append(f"{f.name} = {_toml_value(value)}")
    for name, section in sections:
        lines += ["", f"[{name}]"]
        for f in fields(section):
            if f.name == "extra":
                for k, v in section.extra.items():
                    lines.append(f"{k} = {_toml_value(v)}")
            else:
                lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
    return "\n".join(lines) + "\n"
