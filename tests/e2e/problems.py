"""Assertions on problem+json responses shared by the end-to-end tests."""

from __future__ import annotations

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, object]:
    """Assert an RFC 9457 problem response with Ascent's stable shape; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:ascent:problem:")
    if code is not None:
        assert body["type"] == f"urn:ascent:problem:{code}"
    for leak in ("Traceback", 'File "', "sqlalchemy", "psycopg", "aiosqlite"):
        assert leak not in response.text, response.text
    return body


def assert_openai_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, object]:
    """Assert an OpenAI-shaped error (`/v1/*`): `{"error": {"message", "type", "param",
    "code"}}` with the status; return the `error` member."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    if code is not None:
        assert error["code"] == code
    for leak in ("Traceback", 'File "', "sqlalchemy", "psycopg", "aiosqlite"):
        assert leak not in response.text, response.text
    return dict(error)
