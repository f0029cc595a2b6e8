"""POST /api/v1/heartbeat: the agent's state, which the dashboard shows and silence is judged by."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlmodel import Session

from collector.deps import DatabaseDep, DeviceDep
from collector.policy_store import latest_etag
from collector.store.models import Device, utcnow

__all__ = ["Heartbeat", "HeartbeatAnswer", "router"]

router = APIRouter(prefix="/api/v1", tags=["agent"])
_COUNT = Field(default=0, ge=0, le=2**31 - 1)


class Heartbeat(BaseModel):
    agent_version: str = Field(default="", max_length=32)
    user_signed_in: bool = False
    spool_depth: int = _COUNT
    dropped: int = _COUNT
    quarantined: int = _COUNT
    listener_restarts: int = _COUNT
    policy_serial: int = _COUNT


class HeartbeatAnswer(BaseModel):
    server_time: datetime
    policy_etag: str | None


@router.post("/heartbeat", response_model=HeartbeatAnswer)
def heartbeat(body: Heartbeat, device: DeviceDep, db: DatabaseDep) -> HeartbeatAnswer:
    def job(session: Session) -> HeartbeatAnswer:
        row = session.get(Device, device.id)
        if row is not None:
            for name, value in body.model_dump().items():
                setattr(row, name, value)
            row.last_seen = utcnow()
            session.add(row)
        return HeartbeatAnswer(server_time=utcnow(), policy_etag=latest_etag(session))

    return db.write(job)
