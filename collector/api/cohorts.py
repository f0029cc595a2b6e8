"""GET /api/v1/cohorts: the cohort map of the calling device's school (collector.cohorts), with
an ETag so that an unchanged map costs an agent a 304 and nothing more. The heartbeat's answer
names the current map's ETag (``cohort_etag``), so an agent asks only when it changed."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from collector.api._conditional import conditional_json
from collector.cohorts import cohort_map, tagging_on
from collector.deps import DatabaseDep, DeviceDep, SettingsDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["agent"])


@router.get("/cohorts", responses={200: {"content": {"application/json": {}}}, 304: {}})
def get_cohorts(device: DeviceDep, db: DatabaseDep, settings: SettingsDep,
                if_none_match: str | None = Header(default=None, max_length=200)) -> Response:
    found = cohort_map(db, device.school_id,
                       enabled=tagging_on(db, settings, device.school_id))
    return conditional_json(found.body, found.etag, if_none_match, "no-cache, private")
