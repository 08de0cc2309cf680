"""The catch-all route: problem+json 404 and 405 for requests no other function serves, and
CORS preflight (shared/api/fallback.py)."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from shared.api import fallback
from shared.api.http import api
from shared.api.openapi import documented

ANON = func.AuthLevel.ANONYMOUS
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def blueprint_for(app: func.FunctionApp) -> func.Blueprint:
    """The catch-all function for `app`, answering from `app`'s own route table; register it
    last."""
    bp = func.Blueprint()
    table = fallback.RouteTable(app)

    @bp.route(route=fallback.CATCH_ALL, methods=_METHODS, auth_level=ANON)
    @documented(summary="Unmatched routes", auth=False, hidden=True)
    @api
    async def unmatched_route(req: Request) -> Response:
        """Answer a request no other function serves."""
        path = str(req.path_params.get("path") or "")
        return fallback.answer(table, path, req.method.upper(), req.headers.get("origin"))

    return bp
