"""Structured (JSON-lines) logging for the collector.

Log records carry what an operator needs (route, status, device id, counts) and never a
password, a device secret, an enrolment token or anything from inside an envelope. Only fields
passed in ``extra={"fields": {...}}`` are added, so nothing reaches the log by accident.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter", "configure", "log", "uvicorn_log_config"]

log = logging.getLogger("vigil.collector")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def uvicorn_log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging in the same JSON format. The access log line is the request line only
    (no headers, so never the Authorization header); httpx's request lines are off."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "collector.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(),
                               "propagate": False},
            "vigil": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            # httpx logs each request's URL at INFO: a routing webhook's URL is a secret
            # (collector.routing), so its request lines are never logged, whatever the level.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure(level: str = "info") -> None:
    import logging.config

    logging.config.dictConfig(uvicorn_log_config(level))
