"""The OpenAPI document: valid 3.1, and every HTTP function of the app is in it, documented."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from function_app import app
from shared.api.openapi import (
    PROBLEM_JSON,
    build_document,
    documented,
    http_functions,
    openapi_path,
    operation_of,
    undocumented,
)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document the app serves at /api/openapi.json."""
    return build_document(app)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of a document."""
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """The document passes openapi-spec-validator as OpenAPI 3.1."""
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_http_function_is_in_the_document(document: dict[str, Any]) -> None:
    """Each HTTP function's route and methods appear as operations (but the catch-all)."""
    expected = {
        (openapi_path(f.route)[0], m.lower())
        for f in http_functions(app)
        if not (f.operation and f.operation.hidden)
        for m in f.methods
    }
    present = {(path, method) for path, method, _ in operations(document)}
    assert expected and expected <= present


def test_only_the_catch_all_is_left_out_of_the_document(document: dict[str, Any]) -> None:
    """The catch-all route serves no path of its own, so it alone is not documented as one."""
    hidden = [f.route for f in http_functions(app) if f.operation and f.operation.hidden]
    assert hidden == ["{*path}"]
    assert "/{path}" not in document["paths"]


def test_every_http_function_is_documented() -> None:
    """No HTTP function lacks `@documented` (a new endpoint must document itself)."""
    assert undocumented(app) == []


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    """Every documented 4xx/5xx answer is application/problem+json of the Problem schema."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, method, op in operations(document):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and PROBLEM_JSON in response.get("content", {}):
                assert response["content"][PROBLEM_JSON]["schema"] == problem, (path, method)


def test_authenticated_operations_declare_bearer_and_401(document: dict[str, Any]) -> None:
    """An operation that needs the key names the bearer scheme and documents 401."""
    for path, method, op in operations(document):
        if op["security"]:
            assert op["security"] == [{"bearer": []}], (path, method)
            assert "401" in op["responses"], (path, method)


def test_openapi_and_health_need_no_key(document: dict[str, Any]) -> None:
    """The document itself and the health probe are served without a key."""
    assert document["paths"]["/openapi.json"]["get"]["security"] == []
    assert document["paths"]["/health"]["get"]["security"] == []


def test_request_models_imply_validation_problems(document: dict[str, Any]) -> None:
    """An operation with a JSON body documents 400, 413 and 422 (OpenAI's API: 400 and 413,
    invalid fields being 400 there)."""
    for path, method, op in operations(document):
        if "requestBody" in op:
            expected = {"400", "413"} if path.startswith("/v1/") else {"400", "413", "422"}
            assert expected <= set(op["responses"]), (path, method)


def test_openai_operations_document_openai_errors(document: dict[str, Any]) -> None:
    """Every error of a `/v1/*` operation is application/json of the OpenAIError schema, and
    none answers 422."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
    for path, method, op in operations(document):
        if not path.startswith("/v1/"):
            continue
        assert "422" not in op["responses"], (path, method)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == error, (path, method)


def test_responses_api_is_documented(document: dict[str, Any]) -> None:
    """The Responses API's operations are in the document, with the `openai` Response schema."""
    paths = document["paths"]
    assert {"post"} <= set(paths["/v1/responses"])
    assert {"get", "delete"} <= set(paths["/v1/responses/{response_id}"])
    assert "post" in paths["/v1/responses/{response_id}/cancel"]
    assert "get" in paths["/v1/responses/{response_id}/input_items"]
    content = paths["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Response"}


def test_schemas_come_from_the_handler_models(document: dict[str, Any]) -> None:
    """The chat completions body is the pydantic model the handler validates with."""
    from shared.api.openai_compat import ChatCompletionRequest

    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    rendered = document["components"]["schemas"]["ChatCompletionRequest"]
    assert set(rendered["required"]) == {
        name for name, f in ChatCompletionRequest.model_fields.items() if f.is_required()
    }


def test_streaming_operation_offers_event_stream(document: dict[str, Any]) -> None:
    """Chat completions documents both a JSON and a text/event-stream 200."""
    content = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}


def test_route_templates_become_openapi_paths() -> None:
    """Constraints, optional and catch-all markers are dropped from path parameters."""
    assert openapi_path("a/{id:guid}/{n:int?}/{*rest}") == (
        "/a/{id}/{n}/{rest}",
        ["id", "n", "rest"],
    )


def test_documented_survives_wrapping() -> None:
    """The metadata is found on a handler wrapped with functools.wraps."""
    import functools

    class Body(BaseModel):
        """A request body."""

        text: str

    @documented(summary="s", request=Body)
    async def handler() -> None:
        """A handler."""

    @functools.wraps(handler)
    async def wrapper() -> None:
        """Its wrapper."""

    operation = operation_of(wrapper)
    assert operation is not None and operation.request is Body
