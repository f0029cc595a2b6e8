"""The collector's application factory.

``create_app(settings, plugins)`` builds the FastAPI app with the agent-facing API; each plugin
(the dashboard's ``install``, handed in by ``vigil``) is then called with the app. The settings,
database and blob store live on ``app.state`` for routes and plugins alike.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector.body_limit import BodyLimitMiddleware
from collector.errors import CollectorError
from collector.metrics import Metrics
from collector.ratelimit import IngestLimiter
from collector.settings import Settings
from collector.store.blobs import open_blobs
from collector.store.db import Database, make_engine, storage_error

__all__ = ["Plugin", "create_app"]

Plugin = Callable[[FastAPI], None]
log = logging.getLogger("vigil.collector")


def create_app(settings: Settings, plugins: Sequence[Plugin] = ()) -> FastAPI:
    from collector.api import cohorts, enrol, events, health, heartbeat, metrics, policy

    db = Database(make_engine(settings.database_url))
    blobs = open_blobs(settings, db.engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from collector.scheduler import Scheduler
        from collector.store.schema import upgrade

        upgrade(db.engine)
        _open_audit_log(db, settings)
        _seal_clear_webhooks(db, settings)
        scheduler = Scheduler(settings, db, blobs) if settings.run_jobs else None
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            db.close()

    app = FastAPI(title="Vigil collector", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.engine = db.engine
    app.state.blobs = blobs
    app.state.ingest_limiter = IngestLimiter(settings.ingest_rate_per_minute,
                                             settings.ingest_burst)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       max_inflight_bytes=settings.max_inflight_bytes)
    app.state.metrics = Metrics(app)
    app.add_middleware(app.state.metrics.middleware)
    _install_error_handlers(app)
    for module in (enrol, events, heartbeat, policy, cohorts, health, metrics):
        app.include_router(module.router)
    for plugin in plugins:
        plugin(app)
    return app


def _open_audit_log(db: Database, settings: Settings) -> None:
    """Start appending audit entries to the log file; a failure is loud but does not stop the
    collector (agents' events must still be stored): it is logged, and the dashboard's audit
    page shows it until a write succeeds."""
    from collector.audit_log import attach, open_log

    try:
        open_log(db, settings.audit_log)
    except OSError as exc:
        attach(db.engine, settings.audit_log).failed(exc)


def _seal_clear_webhooks(db: Database, settings: Settings) -> None:
    """Seal webhook URLs a version before secrets.key stored in the clear. A failure (a data
    directory the collector cannot write its key to) is logged; alerts still go out."""
    from collector.routing import seal_clear_targets
    from collector.secrets_at_rest import secrets_key

    try:
        secrets_key(settings.secrets_key)  # made now, so that the first backup holds it
        sealed = seal_clear_targets(db, settings)
    except (OSError, CollectorError) as exc:
        log.warning("webhook URLs left in the clear: cannot use secrets.key",
                    extra={"fields": {"path": str(settings.secrets_key), "error": str(exc)[:200]}})
        return
    if sealed:
        log.info("webhook URLs sealed", extra={"fields": {"targets": sealed}})


def _error(status: int, detail: str, code: str, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CollectorError)
    async def collector_error(_request: Request, exc: CollectorError) -> JSONResponse:
        headers = getattr(exc, "headers", None) or (
            {"Retry-After": "5"} if exc.status in (503, 507) else None)
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(DBAPIError)
    async def database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        # A database that is down, restarting or locked outside Database.write (a read, a
        # dashboard commit) is the same "retry later" as a failed write, not a 500: one line in
        # the log, no traceback. Anything else (a bad query) is a bug and keeps its 500.
        from sqlalchemy.exc import InterfaceError, OperationalError

        if not isinstance(exc, (OperationalError, InterfaceError)) and not exc.connection_invalidated:
            raise exc
        error = storage_error(exc)
        log.warning("database unavailable: %s", str(exc.orig).splitlines()[0][:200])
        return JSONResponse(error.body(), status_code=error.status, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, describe_validation(exc), "invalid")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return _error(exc.status_code, detail, f"http-{exc.status_code}",
                      getattr(exc, "headers", None))


def describe_validation(exc: RequestValidationError) -> str:
    """The first problem as one line, e.g. "body.events.0.id: String should match pattern"."""
    errors = exc.errors()
    if not errors:
        return "malformed request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"[:300]
