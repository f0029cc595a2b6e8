"""Wire the dashboard into the collector's FastAPI application.

The collector's app factory calls :func:`install`; the dashboard adds its routers (each guarded by
the CSRF check), its static files, the security headers and the handler that turns a refused
request into a one-line page or JSON answer.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.audit_chain import ChainVerifier
from dashboard.deps import check_csrf
from dashboard.errors import DashboardError, NotSignedIn
from dashboard.form_errors import install_form_errors
from dashboard.keyplace import KeyElsewhere
from dashboard.rendering import STATIC_DIR, render, wants_html
from dashboard.routes._common import safe_next
from dashboard.security import SECURITY_HEADERS

__all__ = ["ROUTE_MODULES", "install"]

# One module per resource under dashboard/routes/, each exposing ``router``.
ROUTE_MODULES = (
    "auth",
    "unlock",
    "triage",
    "review",
    "incidents",
    "exports",
    "reports",
    "precision",
    "devices",
    "roster",
    "routing",
    "oncall",
    "wordlists",
    "audit",
    "account",
    "keyholders",
)


class SecurityHeaders:
    """Add the CSP and friends to every answer that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _on_dashboard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DashboardError)
    if wants_html(request):
        if isinstance(exc, NotSignedIn) and request.method == "GET":
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if isinstance(exc, KeyElsewhere):  # the unlock page, saying why: never an error page
            return RedirectResponse(f"/unlock?next={quote(_back_to(request), safe='/')}",
                                    status_code=303)
        who = getattr(request.state, "dashboard_who", None)
        return render(request, "error.html", who, status_code=exc.status, message=str(exc))
    headers = {"Retry-After": "60"} if exc.status == 429 else None
    return JSONResponse(
        {"detail": str(exc), "code": exc.code}, status_code=exc.status, headers=headers
    )


def _back_to(request: Request) -> str:
    """Where to go after unlocking: this page, or for a form, the page that sent it."""
    if request.method == "GET":
        query = request.url.query
        return f"{request.url.path}?{query}" if query else request.url.path
    referer = urlsplit(request.headers.get("referer", ""))
    same_site = referer.netloc == request.url.netloc and referer.scheme == request.url.scheme
    return safe_next(referer.path if same_site else "", "/triage")


def install(app: Any) -> None:
    assert isinstance(app, FastAPI)
    app.add_middleware(SecurityHeaders)
    # The audit chain's trusted checkpoint: per process, so each process starts with a full walk.
    app.state.dashboard_chain = ChainVerifier()
    app.add_exception_handler(DashboardError, _on_dashboard_error)
    install_form_errors(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="dashboard-static")
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"dashboard.routes.{name}")
        app.include_router(module.router, dependencies=[Depends(check_csrf)])
    try:
        privacy = importlib.import_module("dashboard.routes.privacy")
    except ModuleNotFoundError as exc:
        if exc.name != "dashboard.routes.privacy":
            raise
    else:
        app.include_router(privacy.router, dependencies=[Depends(check_csrf)])
