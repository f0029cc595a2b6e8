"""The uplink thread: uploads, repeat counts, the heartbeat and policy refresh, with backoff.

It sleeps on an Event: the monitor wakes it when something was spooled, and the heartbeat is due
every ``heartbeat_s``. Failures back off exponentially with jitter (never a tight loop, never
draining the spool on an unexpected error); a 401 re-enrol pauses uploads until the enrolment
file changes, so `vigil agent enrol` on a running machine is picked up without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.cohorts import CohortState
from agent.config import ConfigDir, Enrolment
from agent.errors import ReEnrolRequired
from agent.flood import FloodControl
from agent.policy_state import PolicyState
from agent.settings import Settings
from agent.spool import Spool
from agent.uplink import RetryLater, Uplink
from core.errors import VigilError

__all__ = ["Sync"]

log = logging.getLogger(__name__)


class Sync:
    def __init__(self, settings: Settings, config: ConfigDir, enrolment: Enrolment,
                 policy: PolicyState, spool: Spool, flood: FloodControl,
                 status: Callable[[], dict[str, Any]], uplink: Any = None,
                 cohorts: CohortState | None = None) -> None:
        self._settings = settings
        self._config = config
        self._enrolment = enrolment
        self._policy = policy
        self._spool = spool
        self._flood = flood
        self._status = status
        self._cohorts = cohorts
        # A supervised session agent hands its events to the supervisor instead
        # (agent.supervisor.client.SupervisorLink: the same calls, over the local socket).
        self._uplink = uplink or Uplink(enrolment, settings.http_timeout_s, settings.upload_batch)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-uplink", daemon=True)
        self.needs_enrolment = False
        self.last_heartbeat: float | None = None
        self.last_error = ""
        self.uploaded = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(self._settings.http_timeout_s + 5)
        self._uplink.close()

    def refresh_policy(self) -> None:
        fetched = self._uplink.fetch_policy(self._policy.etag)
        if fetched is not None:
            self._policy.offer(*fetched)

    def refresh_cohorts(self) -> None:
        """The school's cohort map, by ETag (from the supervisor, for a session agent it
        started). Like the policy: fetched when the heartbeat names another map than ours."""
        fetch = getattr(self._uplink, "fetch_cohorts", None)
        if self._cohorts is None or fetch is None:
            return
        fetched = fetch(self._cohorts.etag)
        if fetched is not None:
            self._cohorts.offer(*fetched)

    def _once(self, heartbeat_due: bool) -> None:
        if self._policy.policy is None:
            self.refresh_policy()
        report = self._uplink.upload(self._spool)
        self.uploaded += report.stored + report.duplicate
        repeats = self._flood.pending()
        if repeats:
            updated = set(self._uplink.send_repeats(repeats))
            self._flood.reported([r for r in repeats if r["id"] in updated])
        if heartbeat_due:
            answer = self._uplink.heartbeat(self._status())
            self.last_heartbeat = time.time()
            # The heartbeat names the policy by its digest; the ETag header quotes it.
            etag = str(answer.get("policy_etag") or "").strip('"')
            if etag and etag != (self._policy.etag or "").strip('"'):
                self.refresh_policy()
            # The same for the cohort map; a collector older than maps names none.
            cohort = str(answer.get("cohort_etag") or "").strip('"')
            if (cohort and self._cohorts is not None
                    and cohort != (self._cohorts.etag or "").strip('"')):
                self.refresh_cohorts()
        self._write_status()

    def _write_status(self) -> None:
        status = {**self._status(), "pid": os.getpid(), "last_heartbeat": self.last_heartbeat,
                  "uploaded": self.uploaded, "last_error": self.last_error,
                  "needs_enrolment": self.needs_enrolment, "written_at": time.time()}
        try:
            tmp = self._spool.path / ".status.json.tmp"
            tmp.write_text(json.dumps(status))
            os.replace(tmp, self._spool.path / "status.json")
        except OSError as exc:
            log.debug("could not write status: %s", exc)

    def _reload_enrolment(self) -> bool:
        try:
            fresh = self._config.load_enrolment()
        except VigilError:
            return False
        if fresh == self._enrolment:
            return False
        self._uplink.close()
        self._enrolment = fresh
        self._uplink = Uplink(fresh, self._settings.http_timeout_s, self._settings.upload_batch)
        self.needs_enrolment = False
        log.info("picked up a new enrolment (device %s)", fresh.device_id)
        return True

    def _run(self) -> None:
        s = self._settings
        delay = s.backoff_initial_s
        next_heartbeat = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            wait: float
            failing = True
            if self.needs_enrolment and not self._reload_enrolment():
                self._stopping.wait(s.heartbeat_s)
                continue
            try:
                due = now >= next_heartbeat
                self._once(due)
                if due:
                    next_heartbeat = now + s.heartbeat_s
                delay = s.backoff_initial_s
                self.last_error = ""
                failing = False
                wait = max(0.0, next_heartbeat - time.monotonic())
            except ReEnrolRequired as exc:
                log.error("%s", exc)
                self.needs_enrolment = True
                self.last_error = str(exc)
                self._write_status()
                continue
            except RetryLater as exc:
                self.last_error = str(exc)
                wait = exc.retry_after if exc.retry_after else delay * random.uniform(0.5, 1.5)
                log.warning("%s; retrying in %.1f s", exc, wait)
                delay = min(delay * 2, s.backoff_max_s)
            except VigilError as exc:
                self.last_error = str(exc)
                wait = delay * random.uniform(0.5, 1.5)
                log.error("%s; retrying in %.1f s", exc, wait)
                delay = min(delay * 2, s.backoff_max_s)
            except Exception:  # never let a bug stop uploads, never drop the spool over one
                log.exception("unexpected error in the uplink")
                self.last_error = "internal error (see the log)"
                wait = delay
                delay = min(delay * 2, s.backoff_max_s)
            wait = min(wait, s.backoff_max_s, s.heartbeat_s)
            if failing:
                self._write_status()  # `vigil agent status` shows what is wrong, while it is
                self._stopping.wait(wait)  # a wake-up must not cut a backoff short
            else:
                self._wake.wait(wait)
            self._wake.clear()
