"""One run engine: every entry point × every kind of run ends the same way, on SQLite and Postgres.

Entry points: the simple route, Agent Protocol `/runs/wait`, `/runs/stream` and background
runs, OpenAI chat completions and Responses (JSON and SSE), and crons. Kinds of run: a plain
answer, a tool call, a handoff, a tool that needs approval, an answer held for review, an input
refused by a guardrail, and a cancel while the model is mid-answer. For each pair the test
checks what
every caller must see alike — the run's status, the thread's history, the review, the
outbox events — plus the entry point's own rendering (its status code and body).

In-process over ASGI (tests/engine_support.py), with the SDK's ScriptedModel, so one case
costs milliseconds of model time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlmodel import col, select

from shared.db.engine import db_session
from shared.db.event_models import OutboxEvent
from shared.db.review_models import Refund
from tests.conftest import BACKENDS
from tests.engine_support import PARTIAL, Api, GateModel, api_app, sse_events, use_model

CARD = "4111 1111 1111 1111"


@pytest.fixture(params=BACKENDS)
async def api(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The in-process API on SQLite, then on Postgres."""
    cache = tmp_path_factory.getbasetemp() / "engine-template"
    cache.mkdir(exist_ok=True)
    async with api_app(request.param, monkeypatch, tmp_path, cache) as app:
        yield app


# --- entry points: each starts a run on a thread and renders its outcome in its own terms ------


@dataclass
class Reply:
    """What an entry point answered: its status code and body, and the run it started."""

    code: int
    body: Any
    run_id: str | None = None


async def _run_id_of_thread(api: Api, thread_id: str) -> str:
    """The newest run of a thread."""
    found = await api.client.get(f"/threads/{thread_id}/runs")
    return str(found.json()[0]["run_id"])


async def via_agents(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        f"/agents/{agent}/runs", json={"input": text, "thread_id": thread_id}
    )
    body = response.json()
    return Reply(response.status_code, body, body.get("run_id"))


async def via_wait(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        f"/threads/{thread_id}/runs/wait", json={"agent_id": agent, "input": text}
    )
    body = response.json()
    return Reply(response.status_code, body, body.get("run", {}).get("run_id"))


async def via_stream(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        f"/threads/{thread_id}/runs/stream",
        json={"agent_id": agent, "input": text, "stream_mode": ["values", "messages"]},
    )
    events = list(sse_events(response.text)) if response.status_code == 200 else response.json()
    run_id = events[0][1]["run_id"] if response.status_code == 200 else None
    return Reply(response.status_code, events, run_id)


async def via_background(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    created = await api.client.post(
        f"/threads/{thread_id}/runs", json={"agent_id": agent, "input": text}
    )
    if created.status_code != 200:
        return Reply(created.status_code, created.json())
    run_id = created.json()["run_id"]
    response = await api.client.get(f"/runs/{run_id}/wait")
    return Reply(response.status_code, response.json(), run_id)


async def via_openai(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        "/v1/chat/completions",
        json={"model": agent, "messages": [{"role": "user", "content": text}]},
        headers={"X-Ascent-Thread-Id": thread_id},
    )
    return Reply(response.status_code, response.json(), response.headers.get("X-Ascent-Run-Id"))


async def via_openai_stream(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        "/v1/chat/completions",
        json={"model": agent, "stream": True, "messages": [{"role": "user", "content": text}]},
        headers={"X-Ascent-Thread-Id": thread_id},
    )
    if response.status_code != 200:
        return Reply(response.status_code, response.json())
    chunks = [data for _, data in sse_events(response.text)]
    return Reply(200, chunks, response.headers.get("X-Ascent-Run-Id"))


def _run_of_response(response_id: str) -> str:
    """The run id a Responses API id names (`resp_<run hex>`)."""
    return str(uuid.UUID(response_id.removeprefix("resp_")))


async def via_responses(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        "/v1/responses", json={"model": agent, "input": text, "conversation": thread_id}
    )
    body = response.json()
    run_id = _run_of_response(body["id"]) if response.status_code == 200 else None
    return Reply(response.status_code, body, run_id)


async def via_responses_stream(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    response = await api.client.post(
        "/v1/responses",
        json={"model": agent, "input": text, "conversation": thread_id, "stream": True},
    )
    if response.status_code != 200:
        return Reply(response.status_code, response.json())
    events = list(sse_events(response.text))
    return Reply(200, events, _run_of_response(events[0][1]["response"]["id"]))


async def via_cron(api: Api, agent: str, text: str, thread_id: str) -> Reply:
    """A thread cron, fired the way the dispatch_crons job fires it (this cron only: the
    Postgres database is shared with other tests' crons)."""
    from shared.db.jobs_models import Cron
    from shared.runs.crons import fire

    created = await api.client.post(
        f"/threads/{thread_id}/runs/crons",
        json={"schedule": "0 0 1 1 *", "agent_id": agent, "input": text},
    )
    if created.status_code != 200:
        return Reply(created.status_code, created.json())
    async with db_session() as db:
        cron = await db.get(Cron, created.json()["cron_id"])
    assert cron is not None
    fired = await fire(cron, now=datetime(2099, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert fired is not None and fired.run_id is not None
    response = await api.client.get(f"/runs/{fired.run_id}/wait")
    return Reply(response.status_code, response.json(), fired.run_id)


EntryPoint = Callable[[Api, str, str, str], Awaitable[Reply]]
ENTRY_POINTS: dict[str, EntryPoint] = {
    "agents": via_agents,
    "wait": via_wait,
    "stream": via_stream,
    "background": via_background,
    "openai": via_openai,
    "openai-stream": via_openai_stream,
    "responses": via_responses,
    "responses-stream": via_responses_stream,
    "cron": via_cron,
}


# --- what every entry point must agree on -----------------------------------------------------


async def run_of(api: Api, run_id: str) -> dict[str, Any]:
    """The run as `GET /runs/{id}` shows it."""
    response = await api.client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def history(api: Api, thread_id: str) -> list[dict[str, Any]]:
    """The thread's SDK items."""
    response = await api.client.get(f"/threads/{thread_id}/messages")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def kinds(items: list[dict[str, Any]]) -> list[str]:
    """Each item's type (or role, for messages)."""
    return [
        str(i.get("type") if i.get("type") not in (None, "message") else i.get("role"))
        for i in items
    ]


async def outbox_types(run_id: str) -> list[str]:
    """The run's CloudEvent types, in order."""
    async with db_session() as db:
        rows = (
            await db.exec(
                select(OutboxEvent.type)
                .where(col(OutboxEvent.subject) == run_id)
                .order_by(col(OutboxEvent.seq))
            )
        ).all()
    return list(rows)


async def pending_reviews(api: Api, run_id: str) -> list[dict[str, Any]]:
    """The run's pending reviews, as reviewers list them."""
    response = await api.client.get("/reviews")
    assert response.status_code == 200, response.text
    return [r for r in response.json() if r["run_id"] == run_id]


async def decide(api: Api, review_id: str, decision: str = "approve") -> None:
    """Decide a review and wait until its run has ended again."""
    response = await api.client.post(f"/reviews/{review_id}/decision", json={"decision": decision})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    waited = await api.client.get(f"/runs/{run_id}/wait")
    assert waited.status_code == 200, waited.text


async def thread_status(api: Api, thread_id: str) -> str:
    """The thread's status."""
    return str((await api.client.get(f"/threads/{thread_id}")).json()["status"])


# --- the cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    """A kind of run: its agent, input, model script, and how each entry point renders it."""

    agent: str
    text: str
    script: list[Any]
    rendered: dict[str, Callable[[Reply], None]] = field(default_factory=dict)


def _final_text(reply: Reply, name: str) -> str:
    """The answer text an entry point rendered."""
    if name == "agents":
        return str(reply.body["output"])
    if name in ("wait", "background", "cron"):
        return str(reply.body["run"]["output"])
    if name == "stream":
        return "".join(d[0]["content"] for e, d in reply.body if e == "messages")
    if name == "openai":
        return str(reply.body["choices"][0]["message"]["content"])
    if name == "responses":
        return "".join(
            part["text"]
            for item in reply.body["output"]
            if item["type"] == "message"
            for part in item["content"]
        )
    if name == "responses-stream":
        return "".join(d["delta"] for e, d in reply.body if e == "response.output_text.delta")
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in reply.body
        if isinstance(c, dict) and c.get("choices")
    )


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_plain_answer_succeeds_everywhere(api: Api, entry: str, monkeypatch: Any) -> None:
    """A plain answer: 200, status success, the turn in the history, created/started/completed."""
    use_model(monkeypatch, ScriptedModel([[assistant_message("Hello, Ada.")]]))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "assistant", "hi there", thread)
    assert reply.code == 200, reply.body
    assert reply.run_id is not None
    assert "Hello, Ada." in _final_text(reply, entry)
    assert (await run_of(api, reply.run_id))["status"] == "success"
    assert kinds(await history(api, thread)) == ["user", "assistant"]
    assert await outbox_types(reply.run_id) == ["run.created", "run.started", "run.completed"]
    assert await thread_status(api, thread) == "idle"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_tool_call_runs_once_everywhere(api: Api, entry: str, monkeypatch: Any) -> None:
    """A read tool runs, its output reaches the answer and the history on every entry point."""
    script = [
        [function_call("calculate", {"expression": "6 * 7"}, call_id="c1")],
        [assistant_message("It is 42.")],
    ]
    use_model(monkeypatch, ScriptedModel(script))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "assistant", "what is 6 * 7?", thread)
    assert reply.code == 200, reply.body
    assert reply.run_id is not None
    assert (await run_of(api, reply.run_id))["status"] == "success"
    items = await history(api, thread)
    assert kinds(items) == ["user", "function_call", "function_call_output", "assistant"]
    assert "42" in str(items[2]["output"])


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_handoff_ends_on_the_specialist_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """triage hands off to billing, which answers: the run records billing as its last agent."""
    script = [
        [function_call("transfer_to_billing", {}, call_id="h1")],
        [assistant_message("Billing here.")],
    ]
    use_model(monkeypatch, ScriptedModel(script))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "triage", "about my invoice", thread)
    assert reply.code == 200, reply.body
    assert reply.run_id is not None
    assert "Billing here." in _final_text(reply, entry)
    assert (await run_of(api, reply.run_id))["status"] == "success"
    assert kinds(await history(api, thread))[-1] == "assistant"


def _paused_rendering(reply: Reply, entry: str) -> None:
    """Each entry point says, in its own terms, that the run waits for a reviewer."""
    if entry == "agents":
        assert reply.body["status"] == "interrupted"
        assert reply.body["interrupts"][0]["review_id"]
    elif entry in ("wait", "background", "cron"):
        assert reply.body["run"]["status"] == "interrupted"
        assert reply.body["__interrupt__"][0]["id"]
    elif entry == "stream":
        values = [d for e, d in reply.body if e == "values" and "__interrupt__" in d]
        assert values and values[-1]["__interrupt__"][0]["id"]
        assert reply.body[-1] == ("end", {"run_id": reply.run_id, "status": "interrupted"})
    elif entry in ("responses", "responses-stream"):
        response = reply.body if entry == "responses" else reply.body[-1][1]["response"]
        assert response["status"] == "completed"
        [request] = [i for i in response["output"] if i["type"] == "mcp_approval_request"]
        assert request["id"].startswith("mcpr_")
    elif entry == "openai":
        message = reply.body["choices"][0]["message"]["content"]
        assert "waiting for a human reviewer" in message
        assert reply.body["ascent"]["status"] == "interrupted"
        assert reply.body["ascent"]["reviews"][0]["review_id"]
    else:
        assert "waiting for a human reviewer" in _final_text(reply, entry)
        last = [c for c in reply.body if isinstance(c, dict) and c.get("ascent")][-1]
        assert last["ascent"]["reviews"][0]["review_id"]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_spend_tool_pauses_for_approval_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """issue_refund pauses the run on every entry point; approved, it runs exactly once."""
    script = [
        [function_call("issue_refund", {"amount": 40}, call_id="r1")],
        [assistant_message("Your refund of 40 is on its way.")],
    ]
    use_model(monkeypatch, ScriptedModel(script))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "billing", "please issue a refund of 40", thread)
    assert reply.code == 200, reply.body
    assert reply.run_id is not None
    _paused_rendering(reply, entry)
    assert (await run_of(api, reply.run_id))["status"] == "interrupted"
    assert await thread_status(api, thread) == "interrupted"
    [review] = await pending_reviews(api, reply.run_id)
    assert (review["kind"], review["tool"], review["arguments"]) == (
        "tool",
        "issue_refund",
        {"amount": 40},
    )
    await decide(api, review["review_id"])
    done = await run_of(api, reply.run_id)
    assert (done["status"], done["output"]) == ("success", "Your refund of 40 is on its way.")
    async with db_session() as db:
        refunds = (await db.exec(select(Refund).where(Refund.run_id == reply.run_id))).all()
    assert len(refunds) == 1
    assert kinds(await history(api, thread)) == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ]
    assert await outbox_types(reply.run_id) == [
        "run.created",
        "run.started",
        "run.interrupted",
        "run.started",
        "run.completed",
    ]
    assert await thread_status(api, thread) == "idle"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_big_refund_promise_goes_to_output_review_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """An answer promising a refund above the threshold is held for a reviewer, never shown;
    approved, the held answer is the run's output."""
    promise = "Approved: a refund of 5000 is on its way."
    use_model(monkeypatch, ScriptedModel([[assistant_message(promise)]]))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "billing", "I want my 5000 back", thread)
    assert reply.code == 200, reply.body
    assert reply.run_id is not None
    _paused_rendering(reply, entry)
    [review] = await pending_reviews(api, reply.run_id)
    assert (review["kind"], review["output"]) == ("output", promise)
    assert promise not in json.dumps(await history(api, thread))
    await decide(api, review["review_id"])
    done = await run_of(api, reply.run_id)
    assert (done["status"], done["output"]) == ("success", promise)
    assert kinds(await history(api, thread)) == ["user", "assistant"]


def _refused_rendering(reply: Reply, entry: str) -> None:
    """Each entry point reports the refusal in its own terms."""
    if entry == "agents":
        assert reply.code == 422, reply.body
        assert reply.body["type"] == "urn:ascent:problem:guardrail-tripped"
        assert reply.body["guardrail"] == "no_card_numbers"
    elif entry in ("openai", "openai-stream", "responses"):
        assert reply.code == 400, reply.body  # OpenAI's shape: invalid request
        assert reply.body["error"]["code"] == "guardrail-tripped"
        assert reply.body["error"]["guardrail"] == "no_card_numbers"
    elif entry == "responses-stream":
        assert reply.code == 200
        assert reply.body[-1][0] == "response.failed"
        assert reply.body[-1][1]["response"]["error"]["code"] == "invalid_prompt"
    elif entry in ("wait", "background", "cron"):
        assert reply.code == 200
        assert reply.body["run"]["status"] == "error"
        assert "no_card_numbers" in reply.body["__error__"]["message"]
    else:
        assert reply.code == 200
        assert ("end", {"run_id": reply.run_id, "status": "error"}) == reply.body[-1]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_a_refused_input_is_kept_nowhere_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """With the tenant's data policy off, a card number still trips the agent's own input
    guardrail: the run errs, the input is kept neither in the history nor on the run, the
    thread stays usable, and run.failed is published."""
    await set_data_policy(api, "off")
    use_model(monkeypatch, ScriptedModel([[assistant_message("never sent")]]))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "triage", f"my card is {CARD}", thread)
    _refused_rendering(reply, entry)
    run_id = reply.run_id or await _run_id_of_thread(api, thread)
    run = await run_of(api, run_id)
    assert run["status"] == "error" and "no_card_numbers" in run["error"]
    assert CARD not in json.dumps(run)
    assert CARD not in json.dumps(await history(api, thread))
    assert (await outbox_types(run_id))[-1] == "run.failed"
    assert await thread_status(api, thread) == "error"  # usable: a new run may start


async def set_data_policy(api: Api, action: str) -> None:
    """Set the tenant's data policy action (what `PUT .../data-policy` stores)."""
    from shared.db.security_models import TenantDataPolicy
    from shared.security import data_policy

    async with db_session() as db:
        db.add(TenantDataPolicy(tenant_id=api.tenant_id, action=action, patterns=[]))
        await db.commit()
    data_policy._cache.pop(api.tenant_id, None)


async def stored_events(run_id: str) -> str:
    """Every stored event of the run, as one JSON text."""
    from shared.db.models import RunEvent

    async with db_session() as db:
        rows = (await db.exec(select(RunEvent.data).where(col(RunEvent.run_id) == run_id))).all()
    return json.dumps(list(rows))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_the_data_policy_refuses_a_card_number_before_anything_is_stored(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """By default (policy `refuse`) a card number sent to an agent without a guardrail of its
    own (billing) is refused with the entry point's 4xx, and no run, history or cron holds
    it: nothing was written."""
    use_model(monkeypatch, ScriptedModel([[assistant_message("never sent")]]))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "billing", f"my card is {CARD}", thread)
    assert reply.code == (400 if entry.startswith(("openai", "responses")) else 422), reply.body
    assert "no_card_numbers" in json.dumps(reply.body)
    assert (await api.client.get(f"/threads/{thread}/runs")).json() == []
    assert await history(api, thread) == []
    crons = await api.client.post("/runs/crons/search", json={"thread_id": thread})
    assert crons.json() == []
    assert await thread_status(api, thread) == "idle"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_the_data_policy_redacts_a_card_number_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """With the tenant's policy `redact`, the run goes ahead on the redacted text: the run, its
    events and the thread's history hold `[REDACTED:no_card_numbers]`, never the number."""
    await set_data_policy(api, "redact")
    use_model(monkeypatch, ScriptedModel([[assistant_message("Noted.")]]))
    thread = await api.new_thread()
    reply = await ENTRY_POINTS[entry](api, "billing", f"my card is {CARD}", thread)
    assert reply.code == 200, reply.body
    run_id = reply.run_id or await _run_id_of_thread(api, thread)
    run = await run_of(api, run_id)
    assert run["status"] == "success"
    stored = json.dumps([run, await history(api, thread)]) + await stored_events(run_id)
    assert CARD not in stored and CARD.replace(" ", "") not in stored
    assert "[REDACTED:no_card_numbers]" in json.dumps(await history(api, thread))


async def test_the_data_policy_reads_assistant_messages_too(api: Api, monkeypatch: Any) -> None:
    """A card number in an assistant-role message of the input is refused like a user's."""
    use_model(monkeypatch, ScriptedModel([[assistant_message("never sent")]]))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": f"your card {CARD} is on file"},
        {"role": "user", "content": "thanks"},
    ]
    response = await api.client.post(
        "/v1/chat/completions", json={"model": "triage", "messages": messages}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["guardrail"] == "no_card_numbers"


CANCELLABLE = [e for e in ENTRY_POINTS if e != "cron"]


@pytest.mark.parametrize("entry", CANCELLABLE)
async def test_a_cancel_mid_answer_stops_the_run_everywhere(
    api: Api, entry: str, monkeypatch: Any
) -> None:
    """A cancel from another request stops the run while its model is mid-answer: status
    interrupted (cancelled), the partial answer kept, the thread free, run.cancelled sent."""
    model = GateModel()
    use_model(monkeypatch, model)
    thread = await api.new_thread()
    started = asyncio.ensure_future(ENTRY_POINTS[entry](api, "assistant", "take your time", thread))
    await asyncio.wait_for(model.streaming.wait(), timeout=20)
    run_id = await _run_id_of_thread(api, thread)
    cancelled = await api.client.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    reply = await asyncio.wait_for(started, timeout=20)
    assert reply.code == 200, reply.body
    run = await run_of(api, run_id)
    assert (run["status"], run["cancel_reason"], run["output"]) == (
        "interrupted",
        "cancelled",
        PARTIAL,
    )
    assert await thread_status(api, thread) == "idle"
    assert (await outbox_types(run_id))[-1] == "run.cancelled"
