"""The dashboard's settings: the ``[dashboard]`` table of the collector's settings file.

The collector owns the settings file and hands the dashboard whatever is under ``[dashboard]``;
every value has a safe default so a collector without that table still serves a working dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DashboardSettings"]


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    #: How long an unlocked keyholder key stays in memory without use (seconds).
    key_idle_timeout: int = 15 * 60
    #: How long a signed-in session lasts without a request (seconds).
    session_idle_timeout: int = 60 * 60
    #: Hard limit on a session's life, however active (seconds).
    session_max_age: int = 12 * 60 * 60
    # Guesses are slowed, never locked out. Sign-ins and key unlocks are counted apart, each
    # per client address (strict) and per account (gentle, capped low, so that a stranger cannot
    # keep a keyholder out). See dashboard.security.Backoff.
    #: Failures from one address before its back-off starts; each further one doubles the wait.
    source_free_failures: int = 3
    #: The longest wait one address is made to keep between guesses (seconds).
    source_max_wait: int = 15 * 60
    #: Failures against one account (from anywhere) before its back-off starts.
    account_free_failures: int = 10
    #: The account's wait doubles only every this many further failures.
    account_doubling_every: int = 3
    #: The longest wait an account's back-off can impose (seconds): the head waits at most this.
    account_max_wait: int = 60
    #: How long a failure is remembered and counted (seconds).
    attempt_window: int = 60 * 60
    #: Cookies are Secure unless the collector is served over plain HTTP on loopback (tests only).
    cookie_secure: bool = True
    #: Rows per page of the triage queue.
    page_size: int = 50
    #: The school's name, shown on printable reports.
    school_name: str = "Vigil"

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> DashboardSettings:
        """Build from a ``[dashboard]`` table; unknown keys are ignored, known ones are coerced."""
        if not table:
            return cls()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in table.items():
            if name not in known:
                continue
            default = getattr(cls(), name)
            if isinstance(default, bool) and isinstance(value, str):
                values[name] = value.strip().lower() in {"1", "true", "yes", "on"}
            else:
                values[name] = type(default)(value)
        return cls(**values)

    @classmethod
    def from_collector(cls, settings: Any) -> DashboardSettings:
        """Read the collector's Settings: its ``dashboard`` table (the named fields the collector
        declares, in minutes, plus anything else kept in ``extra``). Which devices are silent is
        the collector's to say (collector.device_health), from its own settings."""
        table = getattr(settings, "dashboard", None)
        if isinstance(table, cls):
            return table
        values: dict[str, Any] = {}
        if isinstance(table, Mapping):
            values.update(table)
        elif table is not None:
            values.update(getattr(table, "extra", None) or {})
            for theirs, ours in _MINUTE_FIELDS.items():
                if hasattr(table, theirs):
                    values[ours] = int(getattr(table, theirs)) * 60
            if hasattr(table, "login_max_failures"):
                values["source_free_failures"] = table.login_max_failures
        return cls.from_mapping(values)


# The collector's [dashboard] field names (minutes) -> ours (seconds).
_MINUTE_FIELDS = {
    "session_idle_minutes": "session_idle_timeout",
    "unlock_idle_minutes": "key_idle_timeout",
    "login_window_minutes": "attempt_window",
}
