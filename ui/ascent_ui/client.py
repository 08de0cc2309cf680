"""A typed HTTP client of the Ascent API: what the UI calls, the way any third-party client would.

Every failure becomes an `ApiError` whose `message` is meant for a person (401, 403, 404, 409,
422, 429 with its `Retry-After`, 5xx, and a lost or refused connection); nothing else escapes.
A run's event stream reattaches after a dropped connection with `Last-Event-ID`, so no event is
lost or shown twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Json = dict[str, Any]

# Stream channels the chat view needs: text tokens, tool calls/outputs and handoffs, the final
# state (with `__interrupt__` when a run pauses for approval).
STREAM_MODES = ("messages-tuple", "updates", "values")


@dataclass
class ApiError(Exception):
    """An API call that failed, with a message fit to show a person."""

    status: int | None
    message: str
    retry_after: int | None = None
    detail: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a run's stream."""

    id: str | None
    event: str
    data: Any


@dataclass
class StreamCursor:
    """Where a stream got to: the last event id seen, and how many times it reattached."""

    last_event_id: str | None = None
    reattached: int = 0
    ended: bool = False
    status: str | None = None
    seen: list[str] = field(default_factory=list)


def _retry_after(response: httpx.Response) -> int | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return None  # an HTTP-date: the API sends seconds, so do not guess


def _problem_detail(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("detail", "title", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None


def error_for(response: httpx.Response) -> ApiError:
    """The person-facing error of a failed response."""
    status = response.status_code
    detail = _problem_detail(response)
    if status == 401:
        message = "You are not signed in, or your key or session has expired: sign in again."
    elif status == 403:
        message = "You are not allowed to do that."
    elif status == 404:
        message = "Not found: it may have been deleted, or it belongs to another tenant."
    elif status == 409:
        message = f"Conflict: {detail or 'the request clashes with the current state.'}"
    elif status in (400, 413, 415, 422):
        message = f"The API refused the request: {detail or 'invalid input.'}"
    elif status == 429:
        wait = _retry_after(response)
        message = "Too many requests: the rate limit was reached." + (
            f" Try again in {wait} s." if wait is not None else " Try again shortly."
        )
        return ApiError(status, message, retry_after=wait, detail=detail)
    elif status >= 500:
        message = f"The Ascent API had a problem (HTTP {status}). Try again in a moment."
    else:
        message = f"The API answered HTTP {status}: {detail or 'unexpected response.'}"
    return ApiError(status, message, detail=detail)


def connection_error(base_url: str) -> ApiError:
    """The error of an API that cannot be reached."""
    return ApiError(None, f"Cannot reach the Ascent API at {base_url}: the connection was lost.")


def parse_sse(lines: list[str]) -> StreamEvent | None:
    """One event from the lines of an SSE block (None for a comment-only block)."""
    event_id: str | None = None
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if event_id is None and not data:
        return None
    raw = "\n".join(data)
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return StreamEvent(event_id, event, parsed)


class AscentClient:
    """Async client of one Ascent API base URL (`.../api`) with one bearer credential."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_reattach: int = 5,
    ) -> None:
        """Bind the client to a base URL and a bearer token (an API key or an Entra token)."""
        self.base_url = base_url.rstrip("/")
        self.max_reattach = max_reattach
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, read=None),
            transport=transport,
        )

    async def __aenter__(self) -> AscentClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One API call; the decoded JSON body, or an `ApiError`."""
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.TransportError:
            raise connection_error(self.base_url) from None
        if response.status_code >= 400:
            raise error_for(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            message = "The API answered something that is not JSON."
            raise ApiError(response.status_code, message) from None

    # --- agents, assistants, threads ---------------------------------------------------------

    async def agents(self) -> list[Json]:
        """The tenant's agents (`name`, `description`); also how a credential is checked."""
        body = await self.request("GET", "/agents")
        return list(body["agents"])

    async def assistants(self, limit: int = 100) -> list[Json]:
        """The tenant's assistants (Agent Protocol)."""
        body = await self.request("POST", "/assistants/search", json_body={"limit": limit})
        return list(body)

    async def threads(self, limit: int = 20) -> list[Json]:
        """The caller's threads, most recently updated first."""
        body = await self.request("POST", "/threads/search", json_body={"limit": limit})
        return list(body)

    async def create_thread(self, metadata: Json | None = None) -> str:
        """A new thread's id."""
        body = await self.request("POST", "/threads", json_body={"metadata": metadata or {}})
        return str(body["thread_id"])

    async def thread(self, thread_id: str) -> Json:
        """One thread (its status and pending interrupts)."""
        body: Json = await self.request("GET", f"/threads/{thread_id}")
        return body

    async def messages(self, thread_id: str) -> list[Json]:
        """The thread's conversation items (Agents SDK items)."""
        body = await self.request("GET", f"/threads/{thread_id}/messages")
        return list(body["items"])

    # --- runs ----------------------------------------------------------------------------------

    async def start_run(self, thread_id: str, agent_id: str, text: str) -> Json:
        """Start a background run of an agent or assistant on the thread; the run (pending)."""
        body: Json = await self.request(
            "POST",
            f"/threads/{thread_id}/runs",
            json_body={"assistant_id": agent_id, "input": text},
        )
        return body

    async def run(self, thread_id: str, run_id: str) -> Json:
        """A run of the thread."""
        body: Json = await self.request("GET", f"/threads/{thread_id}/runs/{run_id}")
        return body

    async def cancel_run(self, thread_id: str, run_id: str) -> None:
        """Ask a run to stop (it ends `interrupted`)."""
        await self.request("POST", f"/threads/{thread_id}/runs/{run_id}/cancel")

    async def stream_run(
        self, thread_id: str, run_id: str, cursor: StreamCursor | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The run's events until it ends or pauses; a dropped connection reattaches after
        `cursor.last_event_id` (`Last-Event-ID`), at most `max_reattach` times in a row."""
        cursor = cursor or StreamCursor()
        path = f"/threads/{thread_id}/runs/{run_id}/stream"
        params = {"stream_mode": list(STREAM_MODES)}
        failures = 0
        while not cursor.ended:
            headers = {"Accept": "text/event-stream"}
            if cursor.last_event_id is not None:
                headers["Last-Event-ID"] = cursor.last_event_id
            try:
                async with self._http.stream(
                    "GET", path, params=params, headers=headers
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_for(response)
                    async for event in self._events(response):
                        failures = 0
                        if event.id is not None:
                            cursor.last_event_id = event.id
                        if event.event == "end":
                            cursor.ended = True
                            if isinstance(event.data, dict):
                                cursor.status = event.data.get("status")
                        yield event
                if not cursor.ended:
                    # The server closed the stream without `end` (an instance restarting).
                    raise httpx.RemoteProtocolError("stream closed before the run ended")
            except (httpx.TransportError, httpx.StreamError):
                failures += 1
                if failures > self.max_reattach:
                    raise connection_error(self.base_url) from None
                cursor.reattached += 1

    @staticmethod
    async def _events(response: httpx.Response) -> AsyncIterator[StreamEvent]:
        block: list[str] = []
        async for line in response.aiter_lines():
            if line:
                block.append(line)
                continue
            event = parse_sse(block)
            block = []
            if event is not None:
                yield event
        if block and (event := parse_sse(block)) is not None:
            yield event

    # --- reviews -------------------------------------------------------------------------------

    async def reviews(
        self,
        *,
        status: str = "pending",
        agent: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Json]:
        """The tenant's reviews in a status (pending by default), oldest first."""
        params: dict[str, Any] = {"status": status, "limit": limit, "offset": offset}
        if agent:
            params["agent"] = agent
        body = await self.request("GET", "/reviews", params=params)
        return list(body)

    async def review(self, review_id: str) -> Json:
        """One review with its context (`context.messages`: the thread's recent messages)."""
        body: Json = await self.request("GET", f"/reviews/{review_id}")
        return body

    async def review_audit(self, review_id: str) -> list[Json]:
        """Who requested, decided or expired the review, when, with which comment."""
        body = await self.request("GET", f"/reviews/{review_id}/audit")
        return list(body)

    async def decide(
        self,
        review_id: str,
        decision: Literal["approve", "reject"],
        *,
        reviewer: str | None = None,
        comment: str | None = None,
    ) -> Json:
        """Approve or reject a pending review (the run resumes on the API side)."""
        payload: Json = {"decision": decision}
        if reviewer:
            payload["reviewer"] = reviewer
        if comment:
            payload["comment"] = comment
        body: Json = await self.request("POST", f"/reviews/{review_id}/decision", json_body=payload)
        return body

    # --- usage ---------------------------------------------------------------------------------

    async def usage(self, start: str | None = None, end: str | None = None) -> Json:
        """Tokens and cost per day and agent for the caller's tenant (`GET /usage`)."""
        params = {k: v for k, v in (("from", start), ("to", end)) if v}
        body: Json = await self.request("GET", "/usage", params=params)
        return body
