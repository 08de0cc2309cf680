"""`GET /api/health`: liveness and database reachability, no key required."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.health import check_health
from shared.http import api
from shared.openapi import documented
from shared.schemas import HealthReport

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="Service and database health",
    response=HealthReport,
    responses={503: ("A backend does not answer.", HealthReport)},
    auth=False,
    tags=["meta"],
)
@api
async def health(req: Request) -> Response:
    """Report whether the service and its database answer."""
    report = await check_health()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
