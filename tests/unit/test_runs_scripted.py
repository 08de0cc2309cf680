"""Agents and the run service driven by the SDK's ScriptedModel, offline, on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from agents import Model, ModelProvider, OpenAIProvider, RunConfig, Runner
from agents.models.openai_responses import OpenAIResponsesModel
from agents.testing import ScriptedModel, assistant_message, function_call
from openai import AsyncOpenAI
from sqlmodel import select

from shared.agents import get_agent
from shared.core.errors import GuardrailTripped, NotFound, UpstreamModelError
from shared.core.settings import Settings
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.db.models import Run
from shared.platform.llm import build_model_provider
from shared.runs import engine as runs
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
    """Make the run service build its runs on this scripted model."""
    monkeypatch.setattr(runs, "get_model_provider", lambda: ScriptedProvider(model))


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
        """run_agent returns the scripted answer, the specialist and status success."""
        use_model(monkeypatch, handoff_then_answer("tech_support", "Restart it."))
        outcome = await runs.run_agent(principal=principal, agent_name="triage", input_text="bug")
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
        outcome = await runs.run_agent(principal=principal, agent_name="triage", input_text="hi")
        run = await stored_run(principal, outcome.run_id)
        assert (run.status, run.output, run.last_agent) == ("success", "Refunded.", "billing")
        assert run.requests == outcome.usage["requests"] == 2

    async def test_history_holds_the_whole_turn(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The thread's items are the user message, the handoff call and output, the answer."""
        use_model(monkeypatch, handoff_then_answer("billing", "Refunded."))
        outcome = await runs.run_agent(principal=principal, agent_name="triage", input_text="hi")
        items = await runs.thread_items(principal=principal, thread_id=outcome.thread_id)
        kinds = [i.get("type", i.get("role")) for i in items]
        assert kinds == ["user", "function_call", "function_call_output", "message"]

    async def test_continues_a_thread(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The second run on a thread sends the first turn to the model as history."""
        model = ScriptedModel([[assistant_message("Hi Ada.")], [assistant_message("Ada.")]])
        use_model(monkeypatch, model)
        first = await runs.run_agent(
            principal=principal, agent_name="assistant", input_text="I am Ada"
        )
        await runs.run_agent(
            principal=principal,
            agent_name="assistant",
            input_text="Who am I?",
            thread_id=first.thread_id,
        )
        assert model.last_call is not None
        assert "I am Ada" in str(model.last_call.input)

    async def test_unknown_thread_is_not_found(self, principal: Principal) -> None:
        """A thread id that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            await runs.run_agent(
                principal=principal,
                agent_name="assistant",
                input_text="hi",
                thread_id=str(uuid.uuid4()),
            )

    async def test_another_tenants_thread_is_not_found(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A thread of another tenant is NotFound, for runs and for reading history."""
        use_model(monkeypatch, ScriptedModel([[assistant_message("ok")]]))
        outcome = await runs.run_agent(principal=principal, agent_name="assistant", input_text="x")
        async with db_session() as db:
            other = await repo.create_tenant(session=db, name="other")
            await db.commit()
        intruder = Principal(tenant_id=other.id, key_id="k2")
        with pytest.raises(NotFound):
            await runs.thread_items(principal=intruder, thread_id=outcome.thread_id)

    async def test_unknown_agent_is_not_found(self, principal: Principal) -> None:
        """An agent name outside the catalog raises NotFound before anything is stored."""
        with pytest.raises(NotFound):
            await runs.run_agent(principal=principal, agent_name="nope", input_text="hi")
        async with db_session() as db:
            assert (await db.exec(select(Run))).first() is None

    async def test_model_failure_is_an_upstream_error(
        self, principal: Principal, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A model that raises becomes UpstreamModelError and the run is recorded as error."""
        use_model(monkeypatch, ScriptedModel([RuntimeError("provider down: secret-detail")]))
        with pytest.raises(UpstreamModelError) as caught:
            await runs.run_agent(principal=principal, agent_name="assistant", input_text="hi")
        run = await stored_run(principal, caught.value.extra["run_id"])
        assert (run.status, run.error) == ("error", "RuntimeError")

    async def test_guardrail_trip_is_refused_and_recorded(self, principal: Principal) -> None:
        """A card number raises GuardrailTripped and the run is recorded as error."""
        with pytest.raises(GuardrailTripped) as caught:
            await runs.run_agent(
                principal=principal, agent_name="triage", input_text="4111 1111 1111 1111"
            )
        run = await stored_run(principal, caught.value.extra["run_id"])
        assert run.status == "error" and "no_card_numbers" in (run.error or "")

    async def test_guardrail_trip_keeps_the_input_out_of_history(
        self, principal: Principal
    ) -> None:
        """After a guardrail trip the refused input is not in the thread's history."""
        with pytest.raises(GuardrailTripped) as caught:
            await runs.run_agent(
                principal=principal, agent_name="triage", input_text="4111 1111 1111 1111"
            )
        thread_id = caught.value.extra["thread_id"]
        items = await runs.thread_items(principal=principal, thread_id=thread_id)
        assert "4111" not in str(items)

    async def test_guardrail_trip_keeps_the_input_out_of_the_run_row(
        self, principal: Principal
    ) -> None:
        """After a guardrail trip the refused input is not stored on the run row."""
        with pytest.raises(GuardrailTripped) as caught:
            await runs.run_agent(
                principal=principal, agent_name="triage", input_text="4111 1111 1111 1111"
            )
        run = await stored_run(principal, caught.value.extra["run_id"])
        assert "4111" not in run.input


class TestRealModelsAreBlocked:
    async def test_openai_responses_call_fails_outside_live_tests(self) -> None:
        """Calling a real OpenAI Responses model from a non-live test raises AssertionError."""
        model = OpenAIResponsesModel("gpt-4.1-mini", AsyncOpenAI(api_key="sk-not-used"))
        with pytest.raises(AssertionError, match="not marked live"):
            await model.get_response(
                None,
                "hi",
                None,  # type: ignore[arg-type]
                [],
                None,
                [],
                None,  # type: ignore[arg-type]
                previous_response_id=None,
                conversation_id=None,
                prompt=None,
            )

    async def test_a_run_on_the_openai_provider_fails_outside_live_tests(self) -> None:
        """A whole run on the configured openai provider fails instead of reaching the network."""
        provider = build_model_provider(
            Settings(MODEL_PROVIDER="openai", OPENAI_API_KEY="sk-not-used")
        )
        assert isinstance(provider, OpenAIProvider)
        config = RunConfig(model_provider=provider, tracing_disabled=True)
        with pytest.raises(AssertionError, match="not marked live"):
            await Runner.run(get_agent("billing"), "hi", run_config=config)
