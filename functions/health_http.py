"""`GET /api/health`: liveness and database reachability, no key required."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api
from shared.api.openapi import documented
from shared.api.schemas import HealthReport
from shared.platform.health import check_health

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
