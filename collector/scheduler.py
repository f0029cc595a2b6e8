"""Scheduled jobs in a background thread: orphan sweep, silent devices, unapproved keys,
alerts, routing (the head's rules, and the weekly digest per DSL), the daily device digest, retention.

Each job runs under a PostgreSQL advisory lock named after it, so with several collector
instances on one database exactly one runs it at a time (SQLite means one instance). A failing
job is logged and retried at its next turn; it never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from collector.settings import Settings
from collector.store.blobs import Blobs
from collector.store.db import Database, advisory_lock

__all__ = ["Job", "Scheduler"]

log = logging.getLogger("vigil.collector.jobs")


@dataclass
class Job:
    name: str
    interval_s: float
    run: Callable[[], object]
    next_at: float = 0.0


class Scheduler:
    def __init__(self, settings: Settings, db: Database, blobs: Blobs) -> None:
        from collector.alerts import send_all
        from collector.health_digest import send_health_digest
        from collector.ingest import sweep_orphans
        from collector.keyholders import flag_unapproved
        from collector.retention import run_retention
        from collector.routing import route_all, send_digests
        from collector.silent_devices import flag_silent

        self.db = db
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.jobs = [
            Job("sweep-orphans", 3600.0, lambda: sweep_orphans(db, blobs)),
            # Before the alerts, so a key slipped into the table is mailed on the same turn.
            Job("unapproved-keys", settings.alert_interval_s, lambda: flag_unapproved(db)),
            # Before the alerts, so a device that went silent is mailed on the same turn.
            Job("silent-devices", settings.silent_check_interval_s,
                lambda: flag_silent(db, settings)),
            Job("alerts", settings.alert_interval_s, lambda: send_all(db, settings)),
            # The head's routing rules (collector.routing): each event once, retried per target.
            Job("routing", settings.alert_interval_s, lambda: route_all(db, settings)),
            Job("routing-digest", 3600.0, lambda: send_digests(db, settings)),
            # Hourly look; at most one digest a day (collector.health_digest.DIGEST_EVERY).
            Job("health-digest", 3600.0, lambda: send_health_digest(db, settings)),
            Job("retention", settings.retention_interval_s,
                lambda: run_retention(db, blobs, settings)),
        ]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vigil-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_due(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if job.next_at <= now and not self._stop.is_set():
                job.next_at = now + job.interval_s
                self._run(job)

    def _run(self, job: Job) -> None:
        try:
            with advisory_lock(self.db.engine, f"vigil-job:{job.name}") as mine:
                if mine:
                    result = job.run()
                    if result and getattr(result, "deleted", 1):
                        log.info("job done", extra={"fields": {"job": job.name,
                                                               "result": str(result)}})
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
            log.warning("job failed", extra={"fields": {"job": job.name, "error": str(exc)[:200]}})

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            pending = min(j.next_at for j in self.jobs) - time.monotonic()
            self._stop.wait(max(0.5, min(pending, 60.0)))
