"""The langgraph-sdk client's thread and run methods that issue 13 found missing: thread
state (get, update, at a checkpoint), count, prune, interrupts, cancel_many, the `interrupt` and
`rollback` multitask strategies, the `custom`, `events` and `debug` stream modes, stateless runs'
thread id, problem+json for unknown routes, and CORS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import REFUND_REQUEST

pytestmark = pytest.mark.e2e

ORIGIN = "https://ui.example.test"
FAR = 3600  # seconds: a run deferred this long stays pending for the whole test


@pytest.fixture(scope="module", params=BACKENDS)
def devhost(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """This module's dev host, with CORS on for one origin."""
    url = POSTGRES_URL if request.param == "postgres" else None
    host = start_devhost(
        tmp_path_factory.mktemp("devhost"),
        database_url=url,
        extra_env={"ASCENT_CORS_ORIGINS": ORIGIN},
    )
    yield host
    host.stop()


@pytest.fixture
def sdk(devhost: DevHost) -> SyncLangGraphClient:
    """The official langgraph-sdk sync client on the module's dev host."""
    return get_sync_client(
        url=devhost.base_url, headers={"Authorization": f"Bearer {devhost.api_key}"}
    )


@pytest.fixture
def client(devhost: DevHost) -> Iterator[httpx.Client]:
    """A plain HTTP client of the module's dev host."""
    with devhost.client() as c:
        yield c


def said(text: str) -> Any:
    """LangGraph-style input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def contents(state: Any) -> list[str]:
    """The message texts of a thread state."""
    return [m["content"] for m in state["values"]["messages"]]


def paused_thread(sdk: SyncLangGraphClient) -> tuple[str, dict[str, Any]]:
    """A new thread whose billing run waits for a reviewer; the thread id and the run."""
    thread_id = sdk.threads.create()["thread_id"]
    paused: Any = sdk.runs.wait(thread_id, "billing", input=said(REFUND_REQUEST))
    assert paused["run"]["status"] == "interrupted"
    return thread_id, paused["run"]


# --- threads -----------------------------------------------------------------------------------


def test_count_counts_the_threads_matching_metadata(sdk: SyncLangGraphClient) -> None:
    """threads.count answers how many threads carry the given metadata."""
    tag = {"count-test": str(id(sdk))}
    for _ in range(3):
        sdk.threads.create(metadata=tag)
    assert sdk.threads.count(metadata=tag) == 3
    assert sdk.threads.count(metadata=tag, status="busy") == 0


def test_prune_deletes_the_given_threads(sdk: SyncLangGraphClient) -> None:
    """threads.prune deletes the threads named and reports how many."""
    ids = [sdk.threads.create()["thread_id"] for _ in range(2)]
    assert sdk.threads.prune(ids) == {"pruned_count": 2}
    for thread_id in ids:
        with pytest.raises(NotFoundError):
            sdk.threads.get(thread_id)


def test_get_state_after_a_run_is_the_newest_history_checkpoint(sdk: SyncLangGraphClient) -> None:
    """get_state shows the conversation and the checkpoint history lists first."""
    thread_id = sdk.threads.create()["thread_id"]
    sdk.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    state = sdk.threads.get_state(thread_id)
    assert contents(state) == ["my name is Ada", "Noted: your name is Ada."]
    assert state["next"] == [] and state["tasks"] == []
    history = sdk.threads.get_history(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == history[0]["checkpoint"]["checkpoint_id"]


def test_a_paused_thread_shows_its_interrupts(sdk: SyncLangGraphClient) -> None:
    """While a run waits for review, the thread and its state carry the review as an interrupt
    of the paused task, and `next` names the paused agent."""
    thread_id, run = paused_thread(sdk)
    thread = sdk.threads.get(thread_id)
    assert list(thread["interrupts"]) == [run["run_id"]]
    state = sdk.threads.get_state(thread_id)
    assert state["next"] == ["billing"]
    assert [t["id"] for t in state["tasks"]] == [run["run_id"]]
    [interrupt] = state["tasks"][0]["interrupts"]
    assert interrupt["value"]["tool"] == "issue_refund"
    assert state["interrupts"] == [interrupt]


def test_update_state_appends_messages_as_a_new_checkpoint(sdk: SyncLangGraphClient) -> None:
    """update_state appends messages and merges values; the old checkpoint stays readable."""
    thread_id = sdk.threads.create()["thread_id"]
    sdk.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    before = sdk.threads.get_state(thread_id)["checkpoint"]["checkpoint_id"]
    update = sdk.threads.update_state(
        thread_id,
        {"messages": [{"role": "user", "content": "note: prefers email"}], "topic": "account"},
        as_node="human",
    )
    after = sdk.threads.get_state(thread_id)
    assert after["checkpoint"]["checkpoint_id"] == update["checkpoint"]["checkpoint_id"] != before
    assert after["parent_checkpoint"]["checkpoint_id"] == before
    assert contents(after)[-1] == "note: prefers email"
    assert after["values"]["topic"] == "account"
    old = sdk.threads.get_state(thread_id, checkpoint_id=before)
    assert contents(old) == ["my name is Ada", "Noted: your name is Ada."]


def test_the_next_run_reads_the_updated_state(sdk: SyncLangGraphClient) -> None:
    """A message written with update_state is part of what the next run remembers."""
    thread_id = sdk.threads.create()["thread_id"]
    sdk.threads.update_state(
        thread_id, {"messages": [{"role": "user", "content": "my name is Bo"}]}
    )
    result: Any = sdk.runs.wait(thread_id, "triage", input=said("what is my name?"))
    assert result["messages"][-1]["content"] == "Your name is Bo."


def test_update_state_on_a_paused_thread_is_a_conflict(sdk: SyncLangGraphClient) -> None:
    """update_state answers 409 while a run waits for review on the thread."""
    thread_id, _ = paused_thread(sdk)
    with pytest.raises(ConflictError):
        sdk.threads.update_state(thread_id, {"messages": [{"role": "user", "content": "hi"}]})


def test_a_copy_starts_at_the_source_checkpoint(sdk: SyncLangGraphClient) -> None:
    """A copied thread's state has the source's messages and current checkpoint id."""
    thread_id = sdk.threads.create()["thread_id"]
    sdk.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    source = sdk.threads.get_state(thread_id)
    copy = sdk.threads.copy(thread_id)
    copied = sdk.threads.get_state(copy["thread_id"])
    assert copied["checkpoint"]["checkpoint_id"] == source["checkpoint"]["checkpoint_id"]
    assert contents(copied) == contents(source)


def test_join_stream_follows_the_threads_run(sdk: SyncLangGraphClient) -> None:
    """threads.join_stream streams the thread's unfinished run until its end."""
    thread_id = sdk.threads.create()["thread_id"]
    run = sdk.runs.create(thread_id, "triage", input=said("my name is Ada"), after_seconds=1)
    parts = list(sdk.threads.join_stream(thread_id))
    assert parts[0].event == "metadata" and parts[0].data["run_id"] == run["run_id"]
    assert parts[-1].event == "end"


# --- runs --------------------------------------------------------------------------------------


def test_cancel_many_cancels_a_threads_pending_runs(sdk: SyncLangGraphClient) -> None:
    """runs.cancel_many(thread_id, status="pending") cancels every pending run of the thread."""
    thread_id = sdk.threads.create()["thread_id"]
    runs = [
        sdk.runs.create(
            thread_id, "triage", input=said("hi"), after_seconds=FAR, multitask_strategy="enqueue"
        )
        for _ in range(2)
    ]
    sdk.runs.cancel_many(thread_id=thread_id, status="pending")
    for run in runs:
        ended = sdk.runs.get(thread_id, run["run_id"])
        assert (ended["status"], ended["cancel_reason"]) == ("interrupted", "cancelled")


def test_interrupt_strategy_cancels_the_active_run_and_keeps_it(sdk: SyncLangGraphClient) -> None:
    """multitask_strategy="interrupt" cancels the thread's run (kept, interrupted) and runs the
    new one."""
    thread_id = sdk.threads.create()["thread_id"]
    old = sdk.runs.create(thread_id, "triage", input=said("hi"), after_seconds=FAR)
    new: Any = sdk.runs.wait(
        thread_id, "triage", input=said("my name is Ada"), multitask_strategy="interrupt"
    )
    assert new["run"]["status"] == "success"
    assert sdk.runs.get(thread_id, old["run_id"])["cancel_reason"] == "cancelled"


def test_rollback_strategy_drops_the_paused_run_and_its_messages(
    sdk: SyncLangGraphClient,
) -> None:
    """multitask_strategy="rollback" deletes the thread's paused run and what it added to the
    conversation, then runs the new input."""
    thread_id, paused = paused_thread(sdk)
    new: Any = sdk.runs.wait(
        thread_id, "triage", input=said("my name is Ada"), multitask_strategy="rollback"
    )
    assert new["run"]["status"] == "success"
    assert [r["run_id"] for r in sdk.runs.list(thread_id)] == [new["run"]["run_id"]]
    assert REFUND_REQUEST not in contents(sdk.threads.get_state(thread_id))


def test_cancel_with_rollback_deletes_the_run(sdk: SyncLangGraphClient) -> None:
    """runs.cancel(action="rollback") removes the run entirely."""
    thread_id = sdk.threads.create()["thread_id"]
    run = sdk.runs.create(thread_id, "triage", input=said("hi"), after_seconds=FAR)
    sdk.runs.cancel(thread_id, run["run_id"], action="rollback")
    assert sdk.runs.list(thread_id) == []


def test_stateless_run_reports_no_thread_from_creation_to_end(client: httpx.Client) -> None:
    """A stateless background run answers thread_id null when created and when waited on."""
    created = client.post("/runs", json={"assistant_id": "triage", "input": "hello"})
    assert created.json()["thread_id"] is None
    waited = client.get(f"/runs/{created.json()['run_id']}/wait")
    assert waited.json()["run"]["thread_id"] is None


# --- stream modes ------------------------------------------------------------------------------


def stream_parts(sdk: SyncLangGraphClient, agent: str, text: str, mode: str) -> list[Any]:
    """A stateless streamed run's parts in one stream mode."""
    return list(sdk.runs.stream(None, agent, input=said(text), stream_mode=mode))  # type: ignore[arg-type]


def test_custom_mode_streams_a_tools_progress(sdk: SyncLangGraphClient) -> None:
    """stream_mode="custom" carries the progress a tool emitted with emit_progress."""
    parts = stream_parts(sdk, "tech_support", "what does error E300 mean?", "custom")
    custom = [p.data for p in parts if p.event == "custom"]
    assert custom == [{"tool": "lookup_error", "code": "E300", "step": "searching the table"}]
    assert {p.event for p in parts} == {"metadata", "custom", "end"}


def test_events_mode_streams_every_sdk_event(sdk: SyncLangGraphClient) -> None:
    """stream_mode="events" carries the Agents SDK's own stream events, text deltas included."""
    parts = stream_parts(sdk, "triage", "my name is Ada", "events")
    events = [p.data for p in parts if p.event == "events"]
    kinds = {e["event"] for e in events}
    assert {"raw_response_event", "run_item_stream_event", "agent_updated_stream_event"} <= kinds
    deltas = [e["data"]["delta"] for e in events if e["name"] == "response.output_text.delta"]
    assert "".join(deltas) == "Noted: your name is Ada."


def test_debug_mode_streams_tasks_and_their_results(sdk: SyncLangGraphClient) -> None:
    """stream_mode="debug" shows the tool call as a task and its output as the task's result."""
    parts = stream_parts(sdk, "tech_support", "what does error E300 mean?", "debug")
    debug = [p.data for p in parts if p.event == "debug"]
    tools = [d for d in debug if d["payload"].get("name") == "lookup_error"]
    assert [d["type"] for d in tools] == ["task"]
    results = [d for d in debug if d["type"] == "task_result"]
    assert any("Rate limited" in str(d["payload"]["result"]) for d in results)


# --- routes, CORS ------------------------------------------------------------------------------


def test_unknown_route_is_a_problem_404(client: httpx.Client) -> None:
    """A path no function serves answers 404 application/problem+json."""
    answer = client.get("/no/such/route")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_unknown_openai_route_is_an_openai_error(client: httpx.Client) -> None:
    """Under /v1 an unknown path answers 404 in OpenAI's error shape, like the rest of /v1."""
    answer = client.get("/v1/no-such-thing")
    unknown_model = client.get("/v1/models/no-such-model")
    assert answer.status_code == unknown_model.status_code == 404
    assert answer.json()["error"]["type"] == unknown_model.json()["error"]["type"]
    assert answer.json()["error"]["message"]


def test_wrong_method_is_a_problem_405_with_allow(client: httpx.Client) -> None:
    """A served path with another method answers 405 problem+json naming the allowed ones."""
    answer = client.put(f"/threads/{uuid.uuid4()}/history")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["allow"] == "GET, OPTIONS, POST"


def test_preflight_from_an_allowed_origin_is_granted(client: httpx.Client) -> None:
    """OPTIONS from a configured origin gets the CORS preflight headers."""
    answer = client.options(
        "/threads/search",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "Authorization" in answer.headers["access-control-allow-headers"]


def test_answers_to_an_allowed_origin_carry_cors_headers(client: httpx.Client) -> None:
    """A normal answer to a configured origin lets that origin's script read it."""
    answer = client.post("/threads/search", json={}, headers={"Origin": ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN


def test_other_origins_get_no_cors_headers(client: httpx.Client) -> None:
    """An origin not configured gets no CORS grant, preflight or not."""
    evil = {"Origin": "https://evil.example.test", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin" not in client.options("/threads/search", headers=evil).headers
    )
    assert (
        "access-control-allow-origin"
        not in client.post("/threads/search", json={}, headers=evil).headers
    )
