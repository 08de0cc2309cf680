"""The UI's API client (ui/ascent_ui/client.py) against a real dev host: data, errors, streams.

One dev host (SQLite), shared with the browser tests (tests/ui/conftest.py): the client is an
HTTP client, so the API's backends are covered by the API's own tests. The client's errors are
the messages people read in the UI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from ascent_ui.client import ApiError, AscentClient, StreamCursor, StreamEvent, error_for
from ascent_ui.events import Approval, Ended, Interpreter, Shown, TextDelta, ToolCall, ToolResult

from local.devhost_process import free_port
from tests.conftest import DevHost
from tests.ui.ui_support import rate_limited_key

pytestmark = pytest.mark.e2e


async def _run(client: AscentClient, agent: str, text: str) -> tuple[str, str]:
    thread_id = await client.create_thread()
    run = await client.start_run(thread_id, agent, text)
    return thread_id, str(run["run_id"])


async def _shown(events: AsyncIterator[StreamEvent]) -> list[Shown]:
    interpreter = Interpreter()
    return [shown async for event in events for shown in interpreter.read(event)]


async def test_agents_lists_the_demo_agents(host: DevHost) -> None:
    """A valid key lists the tenant's agents."""
    async with AscentClient(host.base_url, host.api_key) as client:
        names = {a["name"] for a in await client.agents()}
    assert {"triage", "assistant", "billing", "tech_support"} <= names


async def test_a_bad_key_is_a_sign_in_again_message(host: DevHost) -> None:
    """401 becomes "sign in again", with no stack trace or problem JSON in the message."""
    async with AscentClient(host.base_url, "asc_000000000000_nope") as client:
        with pytest.raises(ApiError) as caught:
            await client.agents()
    assert caught.value.status == 401
    assert "sign in again" in caught.value.message


async def test_an_unknown_thread_is_a_not_found_message(host: DevHost) -> None:
    """404 says what was not found, not how."""
    async with AscentClient(host.base_url, host.api_key) as client:
        with pytest.raises(ApiError) as caught:
            await client.messages("00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404
    assert caught.value.message.startswith("Not found")


async def test_a_rate_limited_tenant_gets_retry_after_in_the_message(host: DevHost) -> None:
    """429 carries the API's Retry-After seconds into the message."""
    key = rate_limited_key(host.base_url, per_minute=1)
    async with AscentClient(host.base_url, key) as client:
        await client.agents()
        with pytest.raises(ApiError) as caught:
            await client.agents()
    error = caught.value
    assert error.status == 429
    assert error.retry_after is not None
    assert f"Try again in {error.retry_after} s." in error.message


async def test_an_unreachable_api_is_a_connection_message() -> None:
    """A refused connection names the API's URL instead of raising httpx's error."""
    base = f"http://127.0.0.1:{free_port()}/api"
    async with AscentClient(base, "asc_x_y") as client:
        with pytest.raises(ApiError) as caught:
            await client.agents()
    assert caught.value.status is None
    assert base in caught.value.message


def test_a_server_error_is_a_try_again_message() -> None:
    """5xx becomes "try again", whatever body the server sent."""
    response = httpx.Response(503, text="Traceback (most recent call last): ...")
    error = error_for(response)
    assert error.message == "The Ascent API had a problem (HTTP 503). Try again in a moment."


async def test_a_streamed_run_shows_its_tool_step_and_tokens(host: DevHost) -> None:
    """A run's stream yields the tool call, its output, then the answer's tokens, then the end."""
    async with AscentClient(host.base_url, host.api_key) as client:
        thread_id, run_id = await _run(client, "assistant", "what is 12 * (3 + 4)?")
        shown = await _shown(client.stream_run(thread_id, run_id))
    call = next(s for s in shown if isinstance(s, ToolCall))
    assert (call.name, call.arguments) == ("calculate", {"expression": "12 * (3 + 4)"})
    result = next(s for s in shown if isinstance(s, ToolResult))
    assert result.output.endswith("= 84")
    deltas = [s for s in shown if isinstance(s, TextDelta)]
    assert len(deltas) > 1 and shown.index(result) < shown.index(deltas[0])
    assert shown[-1] == Ended("success")


class _CutOnce(httpx.AsyncBaseTransport):
    """The real network, except that the first stream response drops after `events` events."""

    def __init__(self, events: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.events = events
        self.cut = False
        self.last_event_ids: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith("/stream"):
            return response
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if self.cut:
            return response
        self.cut = True
        return httpx.Response(
            response.status_code, headers=response.headers, stream=_Cut(response, self.events)
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Cut(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, events: int) -> None:
        self.response = response
        self.events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self.response.aiter_raw():
            buffer += chunk
            if buffer.count(b"\n\n") >= self.events:
                cut = buffer.split(b"\n\n")[: self.events]
                yield b"\n\n".join(cut) + b"\n\n"
                raise httpx.ReadError("connection lost (test)")
        yield buffer

    async def aclose(self) -> None:
        await self.response.aclose()


async def test_a_lost_stream_reattaches_after_the_last_event_id(host: DevHost) -> None:
    """A dropped stream reconnects with Last-Event-ID: every event once, in order, to the end."""
    async with AscentClient(host.base_url, host.api_key) as client:
        thread_id, run_id = await _run(client, "assistant", "what is 12 * (3 + 4)?")
        whole = [e.id async for e in client.stream_run(thread_id, run_id)]
    transport = _CutOnce(events=3)
    cursor = StreamCursor()
    async with AscentClient(host.base_url, host.api_key, transport=transport) as client:
        resumed = [e.id async for e in client.stream_run(thread_id, run_id, cursor)]
    assert resumed == whole
    assert cursor.reattached == 1 and cursor.status == "success"
    assert transport.last_event_ids == [None, whole[2]]


async def test_a_paused_refund_is_approved_and_its_stream_continues(host: DevHost) -> None:
    """A refund pauses (spend risk), the decision goes to the reviews API, and the same run's
    stream, followed on from its cursor, ends with the refund issued."""
    async with AscentClient(host.base_url, host.api_key) as client:
        thread_id, run_id = await _run(client, "billing", "please issue a refund of 40")
        cursor = StreamCursor()
        first = await _shown(client.stream_run(thread_id, run_id, cursor))
        approval = next(s for s in first if isinstance(s, Approval))
        assert approval.review["risk"] == "spend" and approval.review["tool"] == "issue_refund"
        listed = await client.reviews(agent="billing")
        assert approval.review["review_id"] in {r["review_id"] for r in listed}
        decided = await client.decide(approval.review["review_id"], "approve", reviewer="ada")
        assert decided["status"] == "approved"
        audit = await client.review_audit(approval.review["review_id"])
        cursor.ended = False
        rest = await _shown(client.stream_run(thread_id, run_id, cursor))
    assert [a["action"] for a in audit][-1] == "approved"
    text = "".join(s.text for s in rest if isinstance(s, TextDelta))
    assert text.startswith("Refund of 40.00 issued")
    assert rest[-1] == Ended("success")


async def test_resume_history_reads_the_threads_items(host: DevHost) -> None:
    """The thread list and its stored items rebuild the conversation for a resumed chat."""
    from ascent_ui.events import history

    async with AscentClient(host.base_url, host.api_key) as client:
        thread_id, run_id = await _run(client, "assistant", "what is 12 * (3 + 4)?")
        [_ async for _ in client.stream_run(thread_id, run_id)]
        listed = {t["thread_id"] for t in await client.threads(limit=50)}
        entries = history(await client.messages(thread_id))
    assert thread_id in listed
    assert [e.role for e in entries] == ["user", "tool", "assistant"]
    assert entries[1].tool == "calculate" and (entries[1].output or "").endswith("84")


async def test_usage_counts_a_finished_run(host: DevHost) -> None:
    """A finished run's tokens are in today's usage row for its agent, as the API counts them."""
    async with AscentClient(host.base_url, host.api_key) as client:

        async def assistant_tokens() -> int:
            rows = (await client.usage())["rows"]
            return sum(int(r["total_tokens"]) for r in rows if r["agent"] == "assistant")

        before = await assistant_tokens()
        thread_id, run_id = await _run(client, "assistant", "what is 2 + 2?")
        [_ async for _ in client.stream_run(thread_id, run_id)]
        run = await client.run(thread_id, run_id)
        after = await assistant_tokens()
    assert run["usage"]["total_tokens"] > 0
    assert after - before == run["usage"]["total_tokens"]
