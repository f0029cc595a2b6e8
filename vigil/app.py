"""Composition: the collector's app with the dashboard mounted.

The collector never imports the dashboard; this is the one place that puts them together.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from collector.settings import Settings

__all__ = ["build_app"]

log = logging.getLogger("vigil")


def build_app(settings: Settings) -> FastAPI:
    from collector.app import create_app

    plugins = []
    if importlib.util.find_spec("dashboard.app") is not None:
        import dashboard

        plugins.append(dashboard.install)
    else:  # a build without the dashboard still serves agents
        log.warning("dashboard not installed: serving the agent API only")
    return create_app(settings, plugins=plugins)
