"""Agents and the run service driven by the SDK's ScriptedModel, offline, on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from agents import Model, ModelProvider, RunConfig, Runner
from agents.testing import ScriptedModel, assistant_message, function_call
from sqlmodel import select

from shared.agents import get_agent
from shared.api import protocol, simple
from shared.api.schemas import AgentRunRequest, AgentRunResponse
from shared.core.errors import NotFound, UpstreamModelError
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.db.models import Run
from shared.platform import llm
from shared.security.auth import Principal


class ScriptedProvider(ModelProvider):
    """Hands every agent the same scripted model."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        """Return the scripted model."""
        return self.model


def handoff_then_answer(target: str, answer: str) -> ScriptedModel:
    """A script: hand off to `target`, then answer."""
    return ScriptedModel(
        [
            [function_call(f"transfer_to_{target}", {}, call_id="call_handoff")],
            [assistant_message(answer)],
        ]
    )


@pytest.fixture
async def principal() -> AsyncIterator[Principal]:
    """A principal of a fresh tenant in a migrated SQLite database in the test's data dir."""
    await migrate(get_engine())
    async with db_session() as db:
        tenant = await repo.create_tenant(session=db, name="acme")
        await db.commit()
    yield Principal(tenant_id=tenant.id, key_id="key-test")
    await get_engine().dispose()


def use_model(monkeypatch: pytest.MonkeyPatch, model: ScriptedModel) -> None:
    """Make the run engine build its runs on this scripted model (the model seam)."""
    monkeypatch.setattr(llm, "get_model_provider", lambda: ScriptedProvider(model))


async def run_agent(
    principal: Principal, agent: str, text: str, thread_id: str | None = None
) -> AgentRunResponse:
    """The simple route's service: run `agent` on `text` and answer."""
    body = AgentRunRequest(input=text, thread_id=uuid.UUID(thread_id) if thread_id else None)
    return await simple.run_agent(principal, agent, body)


async def stored_run(principal: Principal, run_id: str) -> Run:
    """The run row as stored."""
    async with db_session() as db:
        found = await repo.get_run(session=db, tenant_id=principal.tenant_id, run_id=run_id)
    assert found is not None
    return found


class TestTriageWithScriptedModel:
    async def test_handoff_reaches_the_specialist(self) -> None:
        """A scripted handoff to billing ends the run on the billing agent."""
        model = handoff_then_answer("billing", "Your refund is on its way.")
        result = await Runner.run(
            get_agent("triage"),
            "refund please",
            run_config=RunConfig(model=model, tracing_disabled=True),
        )
        assert result.last_agent.name == "billing"
        assert result.final_output == "Your refund is on its way."
        model.assert_complete()

    async def test_specialist_sees_its_own_tools(self) -> None:
        """After the handoff the model is called with billing's own tools."""
        model = handoff_then_answer("billing", "ok")
        await Runner.run(
            get_agent("triage"),
            "refund please",
            run_config=RunConfig(model=model, tracing_disabled=True),
        )
        assert model.last_call is not None
        assert [t.name for t in model.last_call.tools] == ["refund_quote", "issue_refund"]


class TestRunAgent:
    async def test_returns_the_answer_and_last_agent(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A run returns the scripted answer, the specialist and status success."""
        use_model(monkeypatch, handoff_then_answer("tech_support", "Restart it."))
        outcome = await run_agent(principal, "triage", "bug")
        assert (outcome.last_agent, outcome.output, outcome.status) == (
            "tech_support",
            "Restart it.",
            "success",
        )

    async def test_records_the_run(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The run row holds status, output, last agent and usage."""
        use_model(monkeypatch, handoff_then_answer("billing", "Refunded."))
        outcome = await run_agent(principal, "triage", "hi")
        run = await stored_run(principal, outcome.run_id)
        assert (run.status, run.output, run.last_agent) == ("success", "Refunded.", "billing")
        assert run.requests == outcome.usage.requests == 2

    async def test_continues_a_thread(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The second run on a thread sends the first turn to the model as history."""
        model = ScriptedModel([[assistant_message("Hi Ada.")], [assistant_message("Ada.")]])
        use_model(monkeypatch, model)
        first = await run_agent(principal, "assistant", "I am Ada")
        await run_agent(principal, "assistant", "Who am I?", first.thread_id)
        assert model.last_call is not None
        assert "I am Ada" in str(model.last_call.input)

    async def test_unknown_thread_is_not_found(self, principal: Principal) -> None:
        """A thread id that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            await run_agent(principal, "assistant", "hi", str(uuid.uuid4()))

    async def test_another_tenants_thread_is_not_found(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A thread of another tenant is NotFound, for runs and for reading history."""
        use_model(monkeypatch, ScriptedModel([[assistant_message("ok")]]))
        outcome = await run_agent(principal, "assistant", "x")
        async with db_session() as db:
            other = await repo.create_tenant(session=db, name="other")
            await db.commit()
        intruder = Principal(tenant_id=other.id, key_id="k2")
        with pytest.raises(NotFound):
            await run_agent(intruder, "assistant", "hello", outcome.thread_id)
        with pytest.raises(NotFound):
            await protocol.thread_items(intruder, outcome.thread_id)

    async def test_unknown_agent_is_not_found(self, principal: Principal) -> None:
        """An agent name outside the catalog raises NotFound before anything is stored."""
        with pytest.raises(NotFound):
            await run_agent(principal, "nope", "hi")
        async with db_session() as db:
            assert (await db.exec(select(Run))).first() is None

    async def test_model_failure_is_an_upstream_error_recording_only_the_class(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A model that raises becomes UpstreamModelError; the run records the exception's class,
        never its message (it may hold request data)."""
        use_model(monkeypatch, ScriptedModel([RuntimeError("provider down: secret-detail")]))
        with pytest.raises(UpstreamModelError) as caught:
            await run_agent(principal, "assistant", "hi")
        run = await stored_run(principal, caught.value.extra["run_id"])
        assert (run.status, run.error) == ("error", "RuntimeError")

    async def test_a_failed_run_frees_its_thread(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a failed run the thread takes the next run (it is not left busy)."""
        use_model(
            monkeypatch,
            ScriptedModel([RuntimeError("down"), [assistant_message("Back again.")]]),
        )
        with pytest.raises(UpstreamModelError) as caught:
            await run_agent(principal, "assistant", "hi")
        thread_id = caught.value.extra["thread_id"]
        again = await run_agent(principal, "assistant", "hello?", thread_id)
        assert again.output == "Back again."
