"""GET /metrics: Prometheus exposition, for the admin network or a bearer token only.

Allowed when the client's address is in ``metrics_networks`` (default: this machine only), or
when it sends ``Authorization: Bearer <metrics_token>`` (compared in constant time; an empty
token allows nothing). Otherwise 403 with one line saying how to be let in. Behind a load
balancer every client has the balancer's address: use the token there.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector.errors import Forbidden

__all__ = ["router"]

router = APIRouter(tags=["operations"])


def _allowed(request: Request) -> bool:
    settings = request.app.state.settings
    given = request.headers.get("authorization", "")
    token = settings.metrics_token
    if token and given.startswith("Bearer ") and hmac.compare_digest(
            given[len("Bearer "):].encode(), token.encode()):
        return True
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False)
               for n in settings.metrics_networks)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not _allowed(request):
        raise Forbidden("metrics are for the admin network: add its range to "
                             "metrics_networks, or send the metrics_token as a bearer token")
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
