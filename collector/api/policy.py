"""GET /api/v1/policy: the latest signed policy, with an ETag for cheap polling."""

from __future__ import annotations

from fastapi import APIRouter, Header, Response

from collector.api._conditional import conditional_json
from collector.deps import DeviceDep, SessionDep
from collector.errors import NotFound
from collector.policy_store import latest

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["agent"])


@router.get("/policy", responses={200: {"content": {"application/json": {}}}, 304: {}})
def get_policy(_device: DeviceDep, session: SessionDep,
               if_none_match: str | None = Header(default=None, max_length=200)) -> Response:
    record = latest(session)
    if record is None:
        raise NotFound("no policy has been published yet: a keyholder must run "
                       "`vigil collector policy publish`")
    return conditional_json(record.signed, record.etag, if_none_match)
