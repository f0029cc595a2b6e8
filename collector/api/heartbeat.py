"""POST /api/v1/heartbeat: the agent's state, which the dashboard shows and silence is judged by."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session

from collector.cohorts import cohort_map, tagging_on
from collector.deps import DatabaseDep, DeviceDep, SettingsDep
from collector.policy_store import latest_etag
from collector.store.models import (
    DETECTION_NOTE_MAX,
    SCREEN_STATE_MAX,
    DetectionMode,
    Device,
    utcnow,
)

__all__ = ["Heartbeat", "HeartbeatAnswer", "clean_line", "router"]

router = APIRouter(prefix="/api/v1", tags=["agent"])
_COUNT = Field(default=0, ge=0, le=2**31 - 1)
# White space (line breaks, tabs) becomes one space; other controls, format characters (bidi
# overrides that would reorder the devices page, zero-width characters), surrogates, private-use
# and unassigned code points are dropped.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_SPACES = re.compile(r"\s+")


def clean_line(text: str, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters (a desktop wrote it, so
    it is cleaned rather than refused: a heartbeat is never lost over its note)."""
    kept = [" " if ch.isspace() else ch for ch in text[: limit * 4]
            if ch.isspace() or unicodedata.category(ch) not in _DROPPED]
    return _SPACES.sub(" ", "".join(kept)).strip()[:limit].rstrip()


class Heartbeat(BaseModel):
    agent_version: str = Field(default="", max_length=32)
    user_signed_in: bool = False
    spool_depth: int = _COUNT
    dropped: int = _COUNT
    quarantined: int = _COUNT
    listener_restarts: int = _COUNT
    policy_serial: int = _COUNT
    policy_digest: str = Field(
        default="", max_length=80, pattern=r"^(sha256:[0-9a-f]{64})?$",
        description="SHA-256 of the signed policy the agent runs under, as the collector's "
                    "policy ETag; empty from agents before issue 15.")
    # Issue 13. Older agents send neither; the device row then says "" (never reported).
    detection: DetectionMode | None = Field(
        default=None,
        description="What the agent detects with: 'lists+model', 'lists' (model switched off "
                    "by settings) or 'lists (model unavailable)' (the model failed to load).")
    detection_note: str = Field(
        default="",
        description=f"Why the model is off, one line; control characters are removed and it is "
                    f"cut to {DETECTION_NOTE_MAX} characters.")

    # Issue 16. Older agents send none of these; the device row then says "" (never reported).
    screen: str = Field(
        default="",
        description="The agent's screen reader: 'on', 'off' or 'off (engine unavailable)'.")
    screen_note: str = Field(default="", description="Why screen reading is off, one line.")
    screen_paused: str = Field(default="", description="'busy' or 'on battery' while reading holds off.")

    @field_validator("screen", "screen_paused")
    @classmethod
    def _short_line(cls, value: str) -> str:
        return clean_line(value, SCREEN_STATE_MAX)

    @field_validator("screen_note")
    @classmethod
    def _note_line(cls, value: str) -> str:
        return clean_line(value, DETECTION_NOTE_MAX)

    @field_validator("detection", mode="before")
    @classmethod
    def _unreported(cls, value: Any) -> Any:
        return None if value == "" else value  # an agent that does not know says nothing

    @field_validator("detection_note")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return clean_line(value, DETECTION_NOTE_MAX)

    def device_fields(self) -> dict[str, Any]:
        fields = self.model_dump()
        fields["detection"] = self.detection.value if self.detection is not None else ""
        paused = fields.pop("screen_paused")
        if paused and fields["screen"]:
            fields["screen"] = f"{fields['screen']} (paused: {paused})"[:SCREEN_STATE_MAX]
        return fields


class HeartbeatAnswer(BaseModel):
    server_time: datetime
    policy_etag: str | None
    cohort_etag: str | None = Field(
        default=None,
        description="The ETag (unquoted) of the device's school's cohort map "
                    "(GET /api/v1/cohorts): the agent fetches the map when it differs from its own.")


@router.post("/heartbeat", response_model=HeartbeatAnswer)
def heartbeat(body: Heartbeat, device: DeviceDep, db: DatabaseDep,
              settings: SettingsDep) -> HeartbeatAnswer:
    fields = body.device_fields()
    # Outside the write job: the map may make the school's salt (a write of its own). Cached
    # per roster state, so this is two small queries when nothing changed.
    cohort_etag = cohort_map(db, device.school_id,
                             enabled=tagging_on(db, settings, device.school_id)).etag

    def job(session: Session) -> HeartbeatAnswer:
        row = session.get(Device, device.id)
        if row is not None:
            for name, value in fields.items():
                setattr(row, name, value)
            row.last_seen = utcnow()
            session.add(row)
        return HeartbeatAnswer(server_time=utcnow(), policy_etag=latest_etag(session),
                               cohort_etag=cohort_etag)

    return db.write(job)
