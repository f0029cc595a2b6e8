"""Small helpers the route modules share."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

__all__ = ["client_address", "home_for", "safe_next"]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(target: str | None, default: str) -> str:
    """Only a path on this site: an open redirect would make the sign-in page a phishing aid."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def home_for(role: str) -> str:
    return {"technician": "/triage", "head": "/review", "governor": "/reports"}.get(role, "/login")
