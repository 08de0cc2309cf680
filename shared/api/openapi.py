"""The OpenAPI 3.1 document of every HTTP function, built from the handlers' own pydantic models.

Each HTTP handler carries its documentation next to its code with `@documented(...)`: the
request and response models it validates with, its summary, the problem statuses it answers
and whether it needs the API key. `build_document` walks the function app exactly as the dev
host does (`FunctionApp.get_functions()`: route template, methods), joins each function's
metadata, and renders the schemas with pydantic's `models_json_schema` into
`components/schemas`. A function without `@documented` still appears (so the document never
lies by omission) but is listed in `undocumented()`, which the tests require to be empty.

Conventions the builder applies so every handler documents the same thing the same way:

- a handler with a `request` model also answers 400 (not JSON), 413 (too large) and 422
  (invalid fields), because `shared.api.http.read_json` does;
- a handler with `auth=True` answers 401 and 429 (`principal_of` authenticates and counts
  the request) and is marked with the `bearer` security scheme;
- every error status is an `application/problem+json` body of the shared `Problem` schema,
  except on the OpenAI-compatible API (`openai_errors=True`): there errors are
  `application/json` bodies of the `OpenAIError` schema (shared/api/openai_errors.py), and
  invalid fields are 400, not 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.openai_errors import OpenAIError

OPENAPI_VERSION = "3.1.0"
API_TITLE = "Ascent"
API_VERSION = "0.1.0"
PROBLEM_JSON = "application/problem+json"
SSE = "text/event-stream"
REF_TEMPLATE = "#/components/schemas/{model}"
METADATA_ATTR = "__ascent_openapi__"
HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"

F = TypeVar("F", bound=Callable[..., Any])
Body = type[BaseModel] | Mapping[str, Any]


class Problem(BaseModel):
    """An RFC 9457 problem: every 4xx and 5xx answer of the API has this shape."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URN naming the problem, `urn:ascent:problem:<code>`.")
    title: str = Field(description="A short, stable summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this request; safe to show to users.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="For 422: where and why each field is invalid (never the value)."
    )


@dataclass(frozen=True)
class Operation:
    """What `@documented` records on a handler: everything the route itself does not say."""

    summary: str
    request: Body | None = None
    response: Body | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    auth: bool = True
    streaming: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    query: type[BaseModel] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    response_headers: Mapping[str, str] = field(default_factory=dict)
    responses: Mapping[int, tuple[str, Body | None]] = field(default_factory=dict)
    # Other media types of the success answer, by media type: their JSON Schemas.
    alternatives: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Left out of the document (the catch-all route: it serves no path of its own).
    hidden: bool = False
    openai_errors: bool = False


def documented(
    *,
    summary: str,
    request: Body | None = None,
    response: Body | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    auth: bool = True,
    streaming: bool = False,
    description: str | None = None,
    tags: Iterable[str] = (),
    path_params: Mapping[str, Mapping[str, Any]] | None = None,
    query: type[BaseModel] | None = None,
    headers: Mapping[str, str] | None = None,
    response_headers: Mapping[str, str] | None = None,
    responses: Mapping[int, tuple[str, Body | None]] | None = None,
    alternatives: Mapping[str, Mapping[str, Any]] | None = None,
    hidden: bool = False,
    openai_errors: bool = False,
) -> Callable[[F], F]:
    """Record a handler's OpenAPI metadata on it (place it between `@bp.route` and `@api`).

    `request`/`response` are pydantic models (or raw JSON Schemas); `errors` the problem
    statuses beyond those implied by `request` and `auth`; `streaming=True` adds a
    `text/event-stream` 200 (alone when there is no `response` model); `responses` documents
    extra non-problem answers as `{status: (description, body)}` (body None: no content);
    `path_params` gives JSON Schemas for route values (default: string); `headers` optional
    request headers; `alternatives` other media types of the success answer (e.g. CSV);
    `openai_errors` documents errors in OpenAI's shape (the `/v1/*` handlers).
    """
    operation = Operation(
        summary=summary,
        request=request,
        response=response,
        status=status,
        errors=tuple(errors),
        auth=auth,
        streaming=streaming,
        description=description,
        tags=tuple(tags),
        path_params=dict(path_params or {}),
        query=query,
        headers=dict(headers or {}),
        response_headers=dict(response_headers or {}),
        responses=dict(responses or {}),
        alternatives=dict(alternatives or {}),
        hidden=hidden,
        openai_errors=openai_errors,
    )

    def mark(handler: F) -> F:
        setattr(handler, METADATA_ATTR, operation)
        return handler

    return mark


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    """The metadata `@documented` recorded on a handler (or a wrapper of it), if any."""
    found = getattr(handler, METADATA_ATTR, None)
    return found if isinstance(found, Operation) else None


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP function of the app, as the host indexes it."""

    name: str
    route: str
    methods: tuple[str, ...]
    operation: Operation | None


def app_functions(app: Any) -> list[Any]:
    """`app.get_functions()`, callable more than once.

    azure-functions records the names it has seen in `functions_bindings` and raises on a second
    call as if every name were duplicated; the host (or the dev host) has already made the first
    call, so this one starts from an empty record and restores it afterwards.
    """
    saved = app.functions_bindings
    app.functions_bindings = None
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = saved


def http_functions(app: Any) -> list[HttpFunction]:
    """Every HTTP-triggered function of a `FunctionApp`, read the way the dev host reads it."""
    found: list[HttpFunction] = []
    for function in app_functions(app):
        trigger: Any = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET"]))
        found.append(
            HttpFunction(
                name=function.get_function_name(),
                route=str(trigger.route or function.get_function_name()),
                methods=methods,
                operation=operation_of(function.get_user_function()),
            )
        )
    return found


def undocumented(app: Any) -> list[str]:
    """Names of the app's HTTP functions that lack `@documented` metadata."""
    return [f.name for f in http_functions(app) if f.operation is None]


def route_prefix(host_json: Path = HOST_JSON) -> str:
    """host.json's `extensions.http.routePrefix` (`api` when unset, as in Azure)."""
    try:
        config = json.loads(host_json.read_text())
    except (OSError, ValueError):
        return "api"
    return str(config.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


def openapi_path(template: str) -> tuple[str, list[str]]:
    """A Functions route template as an OpenAPI path, and its parameter names.

    `threads/{id:guid}` becomes `/threads/{id}`; `{*rest}` becomes `{rest}`; `{x?}` becomes `{x}`.
    """
    names: list[str] = []

    def convert(match: re.Match[str]) -> str:
        name = match.group(1).partition(":")[0].lstrip("*").rstrip("?")
        names.append(name)
        return "{" + name + "}"

    return "/" + re.sub(r"\{([^}]+)\}", convert, template.strip("/")), names


class _Schemas:
    """Collects the models every operation uses and renders them into components at the end."""

    def __init__(self) -> None:
        self._models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}

    def ref(self, body: Body, mode: JsonSchemaMode) -> dict[str, Any]:
        if isinstance(body, type):
            self._models[(body, mode)] = None
            return {"$ref": f"__pending__:{id(body)}:{mode}"}
        return dict(body)

    def render(self, document: dict[str, Any]) -> None:
        keys, top = models_json_schema(list(self._models), ref_template=REF_TEMPLATE)
        refs = {
            f"__pending__:{id(model)}:{mode}": value["$ref"]
            for (model, mode), value in keys.items()
        }
        document["components"]["schemas"] = dict(sorted(top.get("$defs", {}).items()))
        _replace_refs(document["paths"], refs)


def _replace_refs(node: Any, refs: Mapping[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _replace_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, refs)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def _operation(
    function: HttpFunction, method: str, params: list[str], schemas: _Schemas
) -> dict[str, Any]:
    op = function.operation or Operation(summary=function.name)
    result: dict[str, Any] = {"operationId": _operation_id(function, method), "summary": op.summary}
    if op.description:
        result["description"] = op.description
    if op.tags:
        result["tags"] = list(op.tags)
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(op.path_params.get(name, {"type": "string"})),
        }
        for name in params
    ]
    if op.query is not None:
        query_schema = op.query.model_json_schema(ref_template=REF_TEMPLATE)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            entry: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                entry["description"] = prop["description"]
            entry["schema"] = {k: v for k, v in prop.items() if k != "description"}
            parameters.append(entry)
    parameters += [
        {"name": name, "in": "header", "required": False, "description": text}
        | {"schema": {"type": "string"}}
        for name, text in op.headers.items()
    ]
    if parameters:
        result["parameters"] = parameters
    if op.request is not None and method in _BODY_METHODS:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.request, "validation")}},
        }
    result["responses"] = _responses(op, method, schemas)
    result["security"] = [{"bearer": []}] if op.auth else []
    return result


def _responses(op: Operation, method: str, schemas: _Schemas) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if op.response is not None:
        content["application/json"] = {"schema": schemas.ref(op.response, "serialization")}
    for media, schema in op.alternatives.items():
        content[media] = {"schema": dict(schema)}
    if op.streaming:
        content[SSE] = {
            "schema": {"type": "string", "description": "Server-sent events (`data: ...`)."}
        }
    success: dict[str, Any] = {"description": _reason(op.status)}
    if content:
        success["content"] = content
    if op.response_headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in op.response_headers.items()
        }
    responses: dict[str, Any] = {str(op.status): success}
    for status, (text, body) in op.responses.items():
        responses[str(status)] = {"description": text}
        if body is not None:
            responses[str(status)]["content"] = {
                "application/json": {"schema": schemas.ref(body, "serialization")}
            }
    implied: set[int] = set(op.errors)
    if op.auth:
        implied |= {401, 429}  # shared.api.http.principal_of authenticates and rate-limits
    if op.request is not None and method in _BODY_METHODS:
        implied |= {400, 413} if op.openai_errors else {400, 413, 422}
    if op.openai_errors:
        # Invalid fields are OpenAI's 400 there (shared/api/openai_errors.py).
        implied = {400 if status == 422 else status for status in implied}
        error_content = {"application/json": {"schema": schemas.ref(OpenAIError, "serialization")}}
    else:
        error_content = {PROBLEM_JSON: {"schema": schemas.ref(Problem, "serialization")}}
    for status in sorted(implied - set(op.responses)):
        responses[str(status)] = {"description": _reason(status), "content": error_content}
        if status in _PROBLEM_HEADERS:
            name, text = _PROBLEM_HEADERS[status]
            responses[str(status)]["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
            }
    return responses


# Methods whose handlers read a JSON body (DELETE too: the Agent Protocol store deletes by body).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_PROBLEM_HEADERS = {
    401: ("WWW-Authenticate", "The authentication scheme (`Bearer`)."),
    429: ("Retry-After", "Seconds to wait before trying again."),
}


def _operation_id(function: HttpFunction, method: str) -> str:
    return function.name if len(function.methods) == 1 else f"{function.name}_{method.lower()}"


def build_document(app: Any, *, prefix: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every HTTP function of `app` (paths relative to the prefix)."""
    prefix = route_prefix() if prefix is None else prefix
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": (
                "Ascent serves OpenAI Agents SDK agents over Agent Protocol, the thread-scoped "
                "run paths of the LangGraph SDK clients, and an OpenAI-compatible API "
                "(models, chat completions, Responses) under `/v1`. Errors are "
                "`application/problem+json`, except under `/v1`, where they are OpenAI's "
                '`{"error": {"message", "type", "param", "code"}}`.'
            ),
        },
        "servers": [{"url": "/" + prefix.strip("/") if prefix.strip("/") else "/"}],
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An Ascent API key: `Bearer asc_<prefix>_<secret>`.",
                }
            },
        },
    }
    schemas = _Schemas()
    for function in sorted(http_functions(app), key=lambda f: (f.route, f.name)):
        if function.operation is not None and function.operation.hidden:
            continue
        path, params = openapi_path(function.route)
        item = document["paths"].setdefault(path, {})
        for method in function.methods:
            item[method.lower()] = _operation(function, method, params, schemas)
    schemas.ref(Problem, "serialization")
    schemas.render(document)
    return document
