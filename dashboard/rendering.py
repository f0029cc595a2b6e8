"""Page rendering: one Jinja2 environment (autoescaping on) and the context every page gets.

Desktop-originated text (titles, context, user and host names) reaches templates as plain strings
and is escaped by Jinja2; nothing in templates/ marks such text ``|safe``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from dashboard.security import aware
from dashboard.sessions import SignedIn

__all__ = [
    "GRADE_LABELS",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "render",
    "rule_label",
    "templates",
    "wants_html",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.autoescape = True  # every template, whatever its extension

GRADE_LABELS: dict[str, str] = {
    "new": "New",
    "false_positive": "False positive",
    "no_concern": "No concern",
    "concern": "Concern",
    "escalated": "Escalated to head",
}


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return aware(moment).strftime("%Y-%m-%d %H:%M")


def rule_label(rule: str) -> str:
    """A rule id as people read it: the sentence model's ``model:<category>`` becomes
    "model: suicide"; word list ids (letters, digits, "_", ".", "-", never ":") stay as they are.
    Only the display changes: links, filters and exports keep the id itself."""
    detector, sep, category = str(rule).partition(":")
    if sep and detector == "model" and category:
        return f"model: {category}"
    return str(rule)


templates.env.filters["when"] = _when
templates.env.filters["rule_label"] = rule_label
templates.env.globals["GRADE_LABELS"] = GRADE_LABELS


def _unapproved_keys(request: Request, who: SignedIn | None) -> int:
    """How many active keys no keyholder signed, for the banner on keyholders' pages."""
    count = getattr(request.state, "dashboard_unapproved", None)
    if who is None or not who.session.verified or who.role not in _KEYHOLDER_ROLES or count is None:
        return 0
    return int(count())


_KEYHOLDER_ROLES = frozenset({"technician", "head"})


def _scope_label(request: Request, who: SignedIn | None) -> str:
    """What the signed-in account sees ("North Hill Academy, Year 7"), so a deputy knows that
    what is missing from their pages is outside their scope; "" for the whole trust."""
    label = getattr(request.state, "dashboard_scope_label", None)
    return str(label()) if who is not None and who.session.verified and label is not None else ""


def render(
    request: Request,
    name: str,
    who: SignedIn | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    ring = getattr(request.app.state, "dashboard_keys", None)
    unlocked = bool(who and ring and ring.peek(who.session_id))
    page = {
        "unapproved_keys": _unapproved_keys(request, who),
        "scope_label": _scope_label(request, who),
        "who": who,
        "csrf": who.csrf if who else context.pop("pre_csrf", ""),
        "unlocked": unlocked,
        "key_seconds_left": ring.seconds_left(who.session_id) if unlocked and ring else 0,
        **context,
    }
    response = templates.TemplateResponse(request, name, page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def wants_html(request: Request) -> bool:
    """A browser (page or form) rather than a script: scripts ask for JSON."""
    return "text/html" in request.headers.get("accept", "")
