"""Usage you can read: `GET /api/usage` (the caller's tenant) and `GET /api/platform/usage`
(every tenant, platform admin key), as JSON or CSV (shared/api/usage.py)."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api import usage
from shared.api.http import api, principal_of
from shared.api.openapi import documented
from shared.security.tenancy import require_admin

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_CSV = "text/csv; charset=utf-8"
_AS_CSV = {"text/csv": {"type": "string", "description": "The rows as CSV, under a header."}}
_DESCRIPTION = (
    "Tokens and estimated cost (USD, list prices) per UTC day, agent and assistant. Days before "
    "today come from the hourly roll-up; today is counted from the runs at request time. "
    f"At most {usage.MAX_DAYS} days; default the last {usage.DEFAULT_DAYS}. `format=csv` or "
    "`Accept: text/csv` answers CSV."
)


def _wants_csv(req: Request, query: usage.UsageQuery) -> bool:
    accept = req.headers.get("accept", "")
    return query.format == "csv" or (
        "format" not in req.query_params and accept.split(";")[0].strip() == "text/csv"
    )


def _answer(req: Request, query: usage.UsageQuery, report: usage.UsageReport) -> Response:
    headers = {"Cache-Control": "no-store"}
    if _wants_csv(req, query):
        headers["Content-Disposition"] = f'attachment; filename="usage-{report.to}.csv"'
        return Response(usage.report_csv(report), media_type=_CSV, headers=headers)
    return JSONResponse(usage.report_json(report), headers=headers)


@bp.route(route="usage", methods=["GET"], auth_level=ANON)
@documented(
    summary="Usage of the caller's tenant",
    description=_DESCRIPTION,
    query=usage.UsageQuery,
    response=usage.UsageReport,
    alternatives=_AS_CSV,
    errors=[422],
    tags=["usage"],
)
@api
async def get_usage(req: Request) -> Response:
    """The tenant's tokens and cost per day, agent and assistant."""
    principal = await principal_of(req)
    query = usage.parse_query(req.query_params.items())
    return _answer(req, query, await usage.usage_report(principal.tenant_id, query))


@bp.route(route="platform/usage", methods=["GET"], auth_level=ANON)
@documented(
    summary="Usage of every tenant (platform admin)",
    description=_DESCRIPTION + " Each row names its tenant.",
    query=usage.UsageQuery,
    response=usage.UsageReport,
    alternatives=_AS_CSV,
    auth=False,
    errors=[401, 403, 404, 422],
    tags=["platform"],
)
@api
async def platform_usage(req: Request) -> Response:
    """Every tenant's tokens and cost per day, agent and assistant (admin key required)."""
    require_admin(req.headers.get("authorization"))
    query = usage.parse_query(req.query_params.items())
    return _answer(req, query, await usage.usage_report(None, query))
