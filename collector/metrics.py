"""Prometheus metrics for the technician's monitoring (issue 19), per collector instance.

Two kinds, in one registry per app (never the process-wide default, so several apps in one
process, as in tests, keep their own):

- **measured as requests pass**: agent API requests by route and status, and their latency as a
  histogram (ingest and heartbeat), counted by a small ASGI middleware;
- **read from the database at each scrape**: events stored, by category; events refused for
  their recipients (``event.quarantined``); devices, silent devices (collector.device_health)
  and the spool depth devices report; failed sign-ins and unlocks in the last hour; keys no
  keyholder approved. These are the same on every instance.

No label ever carries a device, user, group, rule or anything a desktop wrote: the metrics
leave the school's control as plainly as e-mail does. Categories are the school's own list.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func
from sqlmodel import col, select

__all__ = ["AGENT_ROUTES", "Metrics"]

# The agent API's routes: the only paths measured (a path a client made up is never a label).
AGENT_ROUTES = ("/api/v1/events", "/api/v1/heartbeat", "/api/v1/events/repeats",
                "/api/v1/policy", "/api/v1/enrol")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _FromDatabase:
    """Gauges read at scrape time (prometheus_client's custom collector protocol)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list[GaugeMetricFamily]:
        """Nothing up front: without this the registry would call collect() when the app is
        built, before the schema exists (and a scrape-time query belongs to scrapes)."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from collector.device_health import silent
        from collector.store.models import AuditEntry, Device, Event, LoginAttempt, utcnow
        from collector.trust_root import unapproved_keys

        db, settings = self.app.state.db, self.app.state.settings
        now = utcnow()
        with db.session() as session:
            events = GaugeMetricFamily("vigil_events_stored", "Events stored, by category",
                                       labels=["category"])
            for category, n in session.exec(
                    select(Event.category, func.count()).group_by(Event.category)).all():
                events.add_metric([str(category)], float(n))
            yield events
            quarantined = session.exec(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "event.quarantined")).one()
            yield GaugeMetricFamily("vigil_events_quarantined",
                                    "Events refused at ingest for their recipients",
                                    value=float(quarantined))
            live = col(Device.revoked_at).is_(None)
            devices = session.exec(select(func.count()).select_from(Device).where(live)).one()
            yield GaugeMetricFamily("vigil_devices", "Enrolled devices not revoked",
                                    value=float(devices))
            yield GaugeMetricFamily("vigil_devices_silent", "Devices silent now",
                                    value=float(len(silent(session, settings, now))))
            spool = session.exec(select(func.coalesce(func.sum(Device.spool_depth), 0))
                                 .where(live)).one()
            yield GaugeMetricFamily("vigil_device_spool_events",
                                    "Events waiting in devices' spools, as they last reported",
                                    value=float(spool))
            failed = GaugeMetricFamily("vigil_failed_attempts_last_hour",
                                       "Failed sign-ins and key unlocks in the last hour",
                                       labels=["kind"])
            for kind, n in session.exec(
                    select(LoginAttempt.kind, func.count())
                    .where(col(LoginAttempt.at) > now - timedelta(hours=1))
                    .group_by(LoginAttempt.kind)).all():
                failed.add_metric([str(kind)], float(n))
            yield failed
            yield GaugeMetricFamily("vigil_keys_unapproved",
                                    "Keys in the keyholder table no keyholder signed",
                                    value=float(len(unapproved_keys(session))))


class Metrics:
    """The registry of one collector app, and the middleware that feeds it."""

    def __init__(self, app: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("vigil_agent_requests", "Agent API requests, by route and "
                                "status", ["route", "status"], registry=self.registry)
        self.latency = Histogram("vigil_agent_request_seconds", "Agent API request latency",
                                 ["route"], buckets=_BUCKETS, registry=self.registry)
        self.registry.register(_FromDatabase(app))

    def middleware(self, inner: Any) -> Any:
        """An ASGI middleware around ``inner`` measuring the agent API's routes."""
        metrics = self

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = scope.get("path", "") if scope.get("type") == "http" else ""
            if path not in AGENT_ROUTES:
                await inner(scope, receive, send)
                return
            started, status = time.perf_counter(), 500

            async def watch(message: dict[str, Any]) -> None:
                nonlocal status
                if message.get("type") == "http.response.start":
                    status = int(message.get("status", 500))
                await send(message)

            try:
                await inner(scope, receive, watch)
            finally:
                metrics.requests.labels(path, str(status)).inc()
                metrics.latency.labels(path).observe(time.perf_counter() - started)

        return app
