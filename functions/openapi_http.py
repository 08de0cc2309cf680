"""`GET /api/openapi.json`: the OpenAPI 3.1 document of every HTTP function (no key needed)."""

from __future__ import annotations

from functools import cache
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api
from shared.api.openapi import build_document, documented

bp = func.Blueprint()

_OPENAPI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An OpenAPI 3.1 document.",
    "required": ["openapi", "info", "paths"],
    "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}},
}


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@documented(
    summary="The OpenAPI document of this API",
    response=_OPENAPI_SCHEMA,
    auth=False,
    tags=["meta"],
)
@api
async def openapi_document(req: Request) -> Response:
    """Return the OpenAPI 3.1 document of every HTTP function of the app."""
    return JSONResponse(_document())


@cache
def _document() -> dict[str, Any]:
    from function_app import app  # the app registers this module, so import it when called

    return build_document(app)
