"""A JSON document served with an ETag: 304 when the agent already holds it.

Agents poll the policy and the cohort map on every heartbeat's word; an unchanged document must
cost them a 304 and no body. One place says how If-None-Match is read (a list, each entity tag
compared whole).
"""

from __future__ import annotations

from fastapi import Response

__all__ = ["conditional_json"]


def conditional_json(body: bytes, etag: str, if_none_match: str | None,
                     cache_control: str = "no-cache") -> Response:
    """``body`` with ``ETag: "etag"``, or a bodiless 304 if the request named that tag."""
    quoted = f'"{etag}"'
    if if_none_match is not None and quoted in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": quoted})
    return Response(content=body, media_type="application/json",
                    headers={"ETag": quoted, "Cache-Control": cache_control})
