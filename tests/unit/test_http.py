"""HTTP plumbing: problem+json, bounded JSON bodies, and the error-mapping wrapper."""

from __future__ import annotations

import json

import pytest
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from shared.api.http import PROBLEM_JSON, api, problem, read_body, read_json
from shared.api.schemas import AgentRunRequest
from shared.core.errors import BadRequest, NotFound, PayloadTooLarge, ValidationFailed


def request(chunks: list[bytes], *, declare_length: bool = True) -> Request:
    """A POST request whose body arrives in these chunks."""
    pending = list(chunks)

    async def receive() -> dict[str, object]:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    headers = []
    if declare_length:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive)


def body_of(response: Response) -> dict[str, object]:
    """The decoded JSON body of a response."""
    return json.loads(bytes(response.body))  # type: ignore[no-any-return]


class TestProblem:
    def test_has_the_stable_shape(self) -> None:
        """A problem carries type, title, status and detail, as application/problem+json."""
        response = problem(404, "not-found", "Not found", "No thread.")
        assert response.media_type == PROBLEM_JSON
        assert body_of(response) == {
            "type": "urn:ascent:problem:not-found",
            "title": "Not found",
            "status": 404,
            "detail": "No thread.",
        }

    def test_401_carries_a_bearer_challenge(self) -> None:
        """A 401 problem has a WWW-Authenticate Bearer header."""
        response = problem(401, "unauthorized", "Unauthorized", "No key.")
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestApiWrapper:
    async def test_maps_ascent_errors_to_their_problem(self) -> None:
        """An AscentError raised by a handler becomes its problem response."""

        @api
        async def handler(req: Request) -> Response:
            raise NotFound("No agent named 'x'.")

        response = await handler(request([]))
        assert response.status_code == 404 and body_of(response)["detail"] == "No agent named 'x'."

    async def test_hides_unexpected_errors(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unexpected exception becomes a generic 500 that does not echo its message."""

        @api
        async def handler(req: Request) -> Response:
            raise RuntimeError("password=hunter2")

        response = await handler(request([]))
        assert response.status_code == 500
        assert "hunter2" not in bytes(response.body).decode()

    async def test_passes_responses_through(self) -> None:
        """A handler's own response is returned unchanged."""

        @api
        async def handler(req: Request) -> Response:
            return JSONResponse({"ok": True})

        assert body_of(await handler(request([]))) == {"ok": True}


class TestReadBody:
    async def test_refuses_a_declared_length_over_the_limit(self) -> None:
        """A Content-Length over the limit is refused before the body is read."""
        with pytest.raises(PayloadTooLarge):
            await read_body(request([b"a" * (300 * 1024)]))

    async def test_refuses_an_undeclared_body_over_the_limit(self) -> None:
        """A chunked body is refused as soon as it grows past the limit."""
        chunks = [b"a" * 1024] * 300
        with pytest.raises(PayloadTooLarge):
            await read_body(request(chunks, declare_length=False))

    async def test_reads_a_body_within_the_limit(self) -> None:
        """A body under the limit is returned whole, chunks joined."""
        assert await read_body(request([b"ab", b"cd"], declare_length=False)) == b"abcd"


class TestReadJson:
    async def test_parses_a_valid_body(self) -> None:
        """A valid body parses into the model."""
        parsed = await read_json(request([b'{"input": "hi"}']), AgentRunRequest)
        assert parsed.input == "hi"

    @pytest.mark.parametrize(
        "raw",
        [
            b"{not json",
            b"\xff\xfe",
            b"[" * 100_000,
            b'{"input": 1' + b"1" * 5000 + b"}",
        ],
        ids=["syntax", "not-utf8", "nested-too-deep", "huge-integer"],
    )
    async def test_malformed_json_is_a_bad_request(self, raw: bytes) -> None:
        """Bodies that are not parseable JSON raise BadRequest (400), never a 500."""
        with pytest.raises(BadRequest):
            await read_json(request([raw]), AgentRunRequest)

    async def test_non_object_is_a_validation_error(self) -> None:
        """A JSON value that is not an object raises ValidationFailed."""
        with pytest.raises(ValidationFailed):
            await read_json(request([b"[1]"]), AgentRunRequest)

    async def test_field_errors_name_the_field_but_not_the_value(self) -> None:
        """Field errors carry location and message, never the refused value."""
        with pytest.raises(ValidationFailed) as caught:
            await read_json(request([b'{"input": "hi", "thread_id": "s3cret"}']), AgentRunRequest)
        errors = caught.value.extra["errors"]
        assert [e["loc"] for e in errors] == [["thread_id"]]
        assert "s3cret" not in json.dumps(errors)


class TestUnstorableText:
    @pytest.mark.parametrize(
        ("raw", "loc"),
        [
            (b'{"input": "a\\u0000b"}', ["input"]),
            (b'{"input": "hi", "thread_id": null, "x": {"k": ["\\udfff"]}}', ["x", "k", 0]),
            (b'{"\\ud800": "v"}', ["\\ud800"]),
        ],
        ids=["nul", "nested-surrogate", "surrogate-key"],
    )
    async def test_is_refused_before_validation_naming_the_field(
        self, raw: bytes, loc: list[object]
    ) -> None:
        """A NUL or lone surrogate anywhere in a body is a 400 naming its location, whatever
        the model would have said about the rest."""
        with pytest.raises(BadRequest) as caught:
            await read_json(request([raw]), AgentRunRequest)
        assert caught.value.extra["errors"][0]["loc"] == loc

    async def test_a_nul_query_parameter_is_refused_by_the_wrapper(self) -> None:
        """A NUL in a query parameter is a 400 naming the parameter; the handler never runs."""

        @api
        async def handler(req: Request) -> Response:
            raise AssertionError("the handler must not run")

        req = request([])
        req.scope["query_string"] = b"agent=%00"
        response = await handler(req)
        assert response.status_code == 400
        assert body_of(response)["errors"] == [
            {
                "loc": ["query", "agent"],
                "msg": "contains a NUL character",
                "type": "unstorable_text",
            }
        ]


class TestClientDisconnect:
    async def test_is_logged_at_info_without_a_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that disconnects before its body ends is an INFO line, not an ERROR with a
        traceback."""
        messages = [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict[str, object]:
            return messages.pop(0)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"content-length", b"100")],
            "query_string": b"",
        }

        @api
        async def handler(req: Request) -> Response:
            await read_body(req)
            return JSONResponse({})

        with caplog.at_level("INFO", logger="shared.api.http"):
            response = await handler(Request(scope, receive))
        assert response.status_code == 400
        records = [r for r in caplog.records if r.name == "shared.api.http"]
        assert [r.levelname for r in records] == ["INFO"]
        assert records[0].exc_info is None
