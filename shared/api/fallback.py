"""Answers for requests no function serves: 404 and 405 as problem+json, and CORS preflight.

The catch-all function (functions/fallback_http.py) receives every request whose path matches
no other route, and every request whose path matches but whose method does not (the catch-all
accepts every method, and routing prefers literal routes). It answers from the app's own route
table, the one the dev host and the OpenAPI document read:

- `OPTIONS`: 204 with `Allow` (the methods of the matching route), plus the CORS preflight
  headers for an allowed origin (shared/api/cors.py);
- a path some route matches with other methods: 405 with `Allow`;
- anything else: 404.

Both errors are problem+json, except under `/v1` (the OpenAI API), where they take OpenAI's
`{"error": ...}` shape like every other `/v1` answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response

from shared.api import cors
from shared.api.http import problem
from shared.api.openai_errors import error_body
from shared.api.openapi import http_functions

CATCH_ALL = "{*path}"


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    methods: frozenset[str]


def _pattern(template: str) -> re.Pattern[str]:
    """A Functions route template as a regex over the path below the route prefix."""
    parts: list[str] = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{*"):
            parts.append(".*")
        elif segment.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("^" + "/".join(parts) + "/?$")


class RouteTable:
    """The app's HTTP routes (without the catch-all), for 405 and preflight answers."""

    def __init__(self, app: Any) -> None:
        """Read the app's routes (lazily: on the first unmatched request, never at import)."""
        self._app = app
        self._routes: list[_Route] | None = None

    def allowed(self, path: str) -> frozenset[str]:
        """The methods some route serves at `path` (empty: no route has this path)."""
        if self._routes is None:
            self._routes = [
                _Route(_pattern(f.route), frozenset(f.methods))
                for f in http_functions(self._app)
                if f.route != CATCH_ALL
            ]
        path = path.strip("/")
        found: set[str] = set()
        for route in self._routes:
            if route.pattern.match(path):
                found |= route.methods
        return frozenset(found)


def answer(table: RouteTable, path: str, method: str, origin: str | None) -> Response:
    """The answer to a request no function took (see the module docstring)."""
    allowed = table.allowed(path)
    allow = ", ".join(sorted(allowed | {"OPTIONS"})) if allowed else ""
    if method == "OPTIONS":
        headers = {"Allow": allow} if allow else {}
        return Response(status_code=204, headers=headers | cors.preflight_headers(origin))
    openai = path.strip("/").split("/")[0] == "v1"  # the OpenAI API answers in its own shape
    if allowed:
        detail = f"{method} is not served here; use {', '.join(sorted(allowed))}."
        if openai:
            body = error_body(405, detail, "method_not_allowed")
            response: Response = JSONResponse(body, status_code=405)
        else:
            response = problem(405, "method-not-allowed", "Method not allowed", detail)
        response.headers["Allow"] = allow
        return response
    if openai:
        body = error_body(404, "No route matches this path.", "not_found")
        return JSONResponse(body, status_code=404)
    return problem(404, "not-found", "Not found", "No route matches this path.")
