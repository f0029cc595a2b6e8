"""The school's cohort map on the desktop (issue 18): the signed-in pupil's year group and form
for each event's clear metadata, so that the collector can route by year without the name.

The map (collector.cohorts) is fetched with the device's credential when the heartbeat names
another map than ours (as the policy is), and cached in the config directory beside the policy, so a restart without the network still
tags. It is deliberately not part of the keyholder-signed policy: it decides where an alert is
routed, never who can read a capture, and a roster import must not need a keyholder's password.
A map that fails to parse is refused and logged; the agent keeps the one it had. No map, a
login not on the roster, or a school that switched tagging off: the event is sent untagged
("", ""), which routing treats as "any year".
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from agent.errors import AgentError, ConfigError
from core.cohort import check_tag, tag_key

__all__ = ["CohortError", "CohortState", "parse"]

log = logging.getLogger(__name__)

_UNKNOWN = ("", "")


class CohortError(AgentError):
    """A cohort map the agent cannot use."""


def parse(body: bytes) -> tuple[bytes, dict[str, tuple[str, str]]]:
    """(salt, key -> (year, form)) from the collector's map; CohortError if it is malformed.
    Entries whose tag could not be an event's (too long, odd characters) are left out, so an
    event is never refused by the collector for what the map said."""
    try:
        doc = json.loads(body)
        salt = bytes.fromhex(doc["salt"]) if doc.get("enabled", True) else b""
        raw = doc["pupils"] if doc.get("enabled", True) else {}
        if not isinstance(raw, dict):
            raise TypeError("pupils is not an object")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CohortError(f"the cohort map is malformed: {exc}") from None
    pupils: dict[str, tuple[str, str]] = {}
    for key, tag in raw.items():
        if not isinstance(tag, dict):
            continue
        year, form = tag.get("year", ""), tag.get("form", "")
        if check_tag(year, form) is None:
            pupils[str(key)] = (year, form)
    return salt, pupils


class CohortState:
    """The map in force, loaded from the config directory and replaced by :meth:`offer`."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.etag: str | None = None
        self.body: bytes | None = None  # the map as fetched (a supervisor hands it on)
        self._salt = b""
        self._pupils: dict[str, tuple[str, str]] = {}
        # A supervised session agent has no file of its own: the supervisor hands it the map.
        load = getattr(config, "load_cohorts", None)
        try:
            cached = load() if load is not None else None
        except ConfigError as exc:
            log.error("ignoring the cached cohort map: %s", exc)
            cached = None
        if cached is not None:
            try:
                saved = json.loads(cached)
                self._use(saved["map"].encode(), saved["etag"])
            except (ValueError, KeyError, TypeError, AttributeError, CohortError) as exc:
                log.error("ignoring the cached cohort map: %s", exc)

    def _use(self, body: bytes, etag: str) -> None:
        salt, pupils = parse(body)
        with self._lock:
            self._salt, self._pupils, self.etag, self.body = salt, pupils, etag, body

    def offer(self, body: bytes, etag: str) -> bool:
        """A map fetched from the collector: use and cache it if it parses."""
        try:
            self._use(body, etag)
        except CohortError as exc:
            log.error("refused a cohort map from the collector: %s", exc)
            return False
        save = getattr(self._config, "save_cohorts", None)
        if save is not None:
            try:
                save(json.dumps({"etag": etag, "map": body.decode()}).encode())
            except (ConfigError, UnicodeDecodeError) as exc:
                log.warning("could not cache the cohort map: %s", exc)
        log.info("cohort map: %d pupils", len(self._pupils))
        return True

    def lookup(self, user: str | None) -> tuple[str, str]:
        """The (year, form) of ``user``'s login, ("", "") when unknown."""
        with self._lock:
            salt, pupils = self._salt, self._pupils
        if not user or not salt or not pupils:
            return _UNKNOWN
        return pupils.get(tag_key(salt, user), _UNKNOWN)

    def __len__(self) -> int:
        return len(self._pupils)
