"""Readable answers to dashboard forms with a missing or invalid field.

FastAPI refuses such a request before the route runs, and the collector's handler answers the
agent API's way: 422 JSON. A person who submitted a form should instead see the dashboard's page
with one line saying which field was wrong and a link back to the form. Requests under /api/, and
scripts that ask for JSON, keep the collector's answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from dashboard.rendering import render, wants_html
from dashboard.routes._common import safe_next

__all__ = ["API_PREFIX", "describe", "install_form_errors"]

API_PREFIX = "/api/"
STATUS = 422

Handler = Callable[[Request, Exception], Awaitable[Response]]


def _field(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    return ".".join(loc) or "request"


def describe(exc: RequestValidationError) -> str:
    """One line for a person, naming the first field that is wrong."""
    errors = list(exc.errors())
    if not errors:
        return "The form could not be read. Go back, reload the page and try again."
    first = errors[0]
    field = _field(first)[:64]
    if first.get("type") == "missing":
        problem = f"the \u201c{field}\u201d field is missing"
    else:
        reason = str(first.get("msg") or "is not valid").splitlines()[0][:160]
        problem = f"the \u201c{field}\u201d field is not right ({reason.rstrip('.')})"
    more = f"; {len(errors) - 1} other field(s) too" if len(errors) > 1 else ""
    return f"The form could not be used: {problem}{more}."


def _back_link(request: Request) -> str:
    """The page the form was on, if the browser says so and it is on this site."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return ""
    path = referer.path + (f"?{referer.query}" if referer.query else "")
    return safe_next(path, "")


def install_form_errors(app: Any) -> None:
    """Wrap the collector's validation handler: pages for dashboard forms, its JSON otherwise."""
    previous: Handler | None = app.exception_handlers.get(RequestValidationError)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if request.url.path.startswith(API_PREFIX) or not wants_html(request):
            if previous is not None:
                return await previous(request, exc)
            from fastapi.exception_handlers import request_validation_exception_handler

            return await request_validation_exception_handler(request, exc)
        who = getattr(request.state, "dashboard_who", None)
        return render(request, "error.html", who, status_code=STATUS, message=describe(exc),
                      back=_back_link(request))

    app.add_exception_handler(RequestValidationError, on_invalid)
