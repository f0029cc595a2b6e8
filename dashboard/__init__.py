"""The dashboard: web UI for technician, head and governors, mounted by the collector.

The collector never imports this package; the ``vigil`` command passes :func:`install` to the
collector's app factory, which calls it with the application.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def install(app: Any) -> None:
    """Add the dashboard's routes, static files and middleware to the collector's app."""
    from dashboard.app import install as _install

    _install(app)
