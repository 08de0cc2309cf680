"""End to end over HTTP against the dev host: every behavior of the walking skeleton.

One module, so the dev host starts once per backend (SQLite, and Postgres when DATABASE_URL
is set): conversations, handoffs, tools, guardrails, catalog, health, every 4xx, tenant
isolation, and two host processes sharing one database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.settings import Settings
from shared.db import repo
from shared.db.engine import build_engine
from shared.security.auth import issue_api_key, new_api_key
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.e2e.problems import assert_problem

pytestmark = pytest.mark.e2e

CARD = "4111 1111 1111 1111"


@pytest.fixture
def client(devhost: DevHost) -> Iterator[httpx.Client]:
    """An authenticated client of the module's dev host."""
    with devhost.client() as c:
        yield c


def run(client: httpx.Client, agent: str, text: str, thread_id: str | None = None) -> Any:
    """POST a run and return its JSON body, asserting 200."""
    body: dict[str, str] = {"input": text}
    if thread_id:
        body["thread_id"] = thread_id
    response = client.post(f"/agents/{agent}/runs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def history(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    """The thread's items, asserting 200."""
    response = client.get(f"/threads/{thread_id}/messages")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestConversation:
    def test_second_turn_recalls_the_first(self, client: httpx.Client) -> None:
        """A name given in turn one is recalled in turn two of the same thread."""
        first = run(client, "assistant", "Hi, my name is Ada")
        second = run(client, "assistant", "What is my name?", first["thread_id"])
        assert second["thread_id"] == first["thread_id"]
        assert "Ada" in second["output"]

    def test_a_new_thread_starts_empty(self, client: httpx.Client) -> None:
        """Without a thread_id the run starts a new thread that knows nothing earlier."""
        run(client, "assistant", "my name is Grace")
        fresh = run(client, "assistant", "What is my name?")
        assert "Grace" not in fresh["output"]

    def test_history_lists_both_turns_in_order(self, client: httpx.Client) -> None:
        """The thread's messages hold both user messages, oldest first."""
        first = run(client, "assistant", "my name is Alan")
        run(client, "assistant", "what is my name?", first["thread_id"])
        users = [
            i["content"] for i in history(client, first["thread_id"]) if i.get("role") == "user"
        ]
        assert users == ["my name is Alan", "what is my name?"]

    def test_run_reports_its_outcome(self, client: httpx.Client) -> None:
        """A run returns run and thread ids, agent, last agent, status and usage."""
        body = run(client, "assistant", "hello")
        assert body["status"] == "success" and body["agent"] == "assistant"
        assert body["run_id"] and body["thread_id"] and body["usage"]["requests"] >= 1


class TestHandoffs:
    def test_refund_question_goes_to_billing(self, client: httpx.Client) -> None:
        """Triage hands a refund question to billing."""
        body = run(client, "triage", "I want a refund for my last invoice")
        assert (body["agent"], body["last_agent"]) == ("triage", "billing")

    def test_error_code_goes_to_tech_support(self, client: httpx.Client) -> None:
        """Triage hands 'error E300' to tech support, which looks the code up."""
        body = run(client, "triage", "I keep getting error E300")
        assert body["last_agent"] == "tech_support"
        assert "Rate limited" in body["output"]


class TestTools:
    def test_assistant_calculates(self, client: httpx.Client) -> None:
        """The assistant answers 12 * (3 + 4) with 84, through its calculator."""
        assert "84" in run(client, "assistant", "What is 12 * (3 + 4)?")["output"]

    def test_thread_shows_the_tool_call_and_its_output(self, client: httpx.Client) -> None:
        """The thread holds the function_call and its function_call_output, paired by call id."""
        body = run(client, "assistant", "What is 12 * (3 + 4)?")
        items = history(client, body["thread_id"])
        calls = [i for i in items if i.get("type") == "function_call"]
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert [c["name"] for c in calls] == ["calculate"]
        assert [o["call_id"] for o in outputs] == [calls[0]["call_id"]]
        assert "84" in outputs[0]["output"]


class TestGuardrail:
    def test_card_number_is_refused_with_a_problem(self, client: httpx.Client) -> None:
        """A card number in the input answers 422 guardrail-tripped problem+json."""
        response = client.post("/agents/triage/runs", json={"input": f"my card is {CARD}"})
        body = assert_problem(response, 422, "guardrail-tripped")
        assert body["guardrail"] == "no_card_numbers"
        assert CARD not in response.text

    def test_card_number_is_not_kept_in_history(self, client: httpx.Client) -> None:
        """After a guardrail trip the card number is not in the thread's history."""
        first = run(client, "triage", "hello")
        response = client.post(
            "/agents/triage/runs",
            json={"input": f"my card is {CARD}", "thread_id": first["thread_id"]},
        )
        assert_problem(response, 422, "guardrail-tripped")
        items = history(client, first["thread_id"])
        assert "4111" not in str(items)

    def test_thread_stays_usable_after_a_trip(self, client: httpx.Client) -> None:
        """After a refused input the same thread still answers the next message."""
        first = run(client, "assistant", "my name is Ada")
        client.post("/agents/assistant/runs", json={"input": CARD, "thread_id": first["thread_id"]})
        assert "Ada" in run(client, "assistant", "what is my name?", first["thread_id"])["output"]


class TestCatalogAndHealth:
    def test_lists_the_agents(self, client: httpx.Client) -> None:
        """GET /agents lists at least three agents, each with a name and description."""
        response = client.get("/agents")
        assert response.status_code == 200
        agents = response.json()["agents"]
        assert len(agents) >= 3
        assert {"triage", "assistant", "billing", "tech_support"} <= {a["name"] for a in agents}
        assert all(a["description"] for a in agents)

    def test_health_needs_no_key(self, devhost: DevHost) -> None:
        """GET /health answers 200 ok without an Authorization header."""
        response = httpx.get(f"{devhost.base_url}/health", timeout=30)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert response.json()["checks"]["database"] == "ok"


def database_url(devhost: DevHost, request: pytest.FixtureRequest) -> str | None:
    """The DATABASE_URL the module's dev host runs on (None: SQLite in its data dir)."""
    return POSTGRES_URL if request.node.callspec.params.get("devhost") == "postgres" else None


async def _new_tenant_key(url: str) -> str:
    engine = build_engine(url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            tenant = await repo.create_tenant(session=db, name=f"other-{uuid.uuid4().hex[:8]}")
            key = await issue_api_key(session=db, tenant_id=tenant.id)
            await db.commit()
        return key
    finally:
        await engine.dispose()


@pytest.fixture
def other_client(devhost: DevHost, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client authenticated as a second tenant, inserted straight into the host's database."""
    settings = Settings(  # type: ignore[call-arg]
        ASCENT_DATA_DIR=str(devhost.log_path.parent),
        DATABASE_URL=database_url(devhost, request),
    )
    key = asyncio.run(_new_tenant_key(settings.sqlalchemy_url))
    with devhost.client(key) as c:
        yield c


class TestMalformedBodies:
    def test_malformed_json_is_400(self, client: httpx.Client) -> None:
        """A body that is not JSON answers 400 bad-request."""
        response = client.post(
            "/agents/assistant/runs",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert_problem(response, 400, "bad-request")

    def test_deeply_nested_json_is_400(self, client: httpx.Client) -> None:
        """JSON nested too deeply for the parser answers 400, not 500."""
        response = client.post("/agents/assistant/runs", content=b"[" * 100_000)
        assert_problem(response, 400, "bad-request")

    def test_empty_body_is_422(self, client: httpx.Client) -> None:
        """An empty body answers 422 (a body is required)."""
        assert_problem(client.post("/agents/assistant/runs"), 422, "validation-failed")

    def test_non_object_json_is_422(self, client: httpx.Client) -> None:
        """A JSON array instead of an object answers 422."""
        response = client.post("/agents/assistant/runs", json=["hi"])
        assert_problem(response, 422, "validation-failed")

    def test_missing_field_is_422_naming_it(self, client: httpx.Client) -> None:
        """A body without `input` answers 422 and names the missing field."""
        body = assert_problem(client.post("/agents/assistant/runs", json={}), 422)
        assert ["input"] in [e["loc"] for e in body["errors"]]  # type: ignore[union-attr]

    def test_extra_field_is_422(self, client: httpx.Client) -> None:
        """An unknown field answers 422 rather than being ignored."""
        response = client.post("/agents/assistant/runs", json={"input": "hi", "stream": True})
        assert_problem(response, 422, "validation-failed")

    def test_blank_input_is_422(self, client: httpx.Client) -> None:
        """An input of only whitespace answers 422."""
        response = client.post("/agents/assistant/runs", json={"input": "   "})
        assert_problem(response, 422, "validation-failed")

    def test_non_uuid_thread_id_is_422(self, client: httpx.Client) -> None:
        """A thread_id that is not a UUID answers 422."""
        response = client.post("/agents/assistant/runs", json={"input": "hi", "thread_id": "x"})
        assert_problem(response, 422, "validation-failed")

    def test_validation_errors_do_not_echo_values(self, client: httpx.Client) -> None:
        """A refused value (it may be a secret) is not echoed in the problem."""
        secret = "sk-" + uuid.uuid4().hex
        response = client.post("/agents/assistant/runs", json={"input": "hi", "thread_id": secret})
        assert_problem(response, 422)
        assert secret not in response.text

    def test_oversized_body_is_413(self, client: httpx.Client) -> None:
        """A 300 KiB body (over the 256 KiB default limit) answers 413."""
        response = client.post("/agents/assistant/runs", json={"input": "a" * (300 * 1024)})
        assert_problem(response, 413, "payload-too-large")

    def test_oversized_chunked_body_is_413(self, client: httpx.Client) -> None:
        """A 300 KiB body sent chunked, without Content-Length, answers 413 too."""
        chunks = [b'{"input": "'] + [b"a" * 1024] * 300 + [b'"}']
        response = client.post("/agents/assistant/runs", content=iter(chunks))
        assert_problem(response, 413, "payload-too-large")


class TestNotFound:
    def test_unknown_agent_is_404(self, client: httpx.Client) -> None:
        """Running an agent that is not in the catalog answers 404."""
        response = client.post("/agents/nope/runs", json={"input": "hi"})
        assert_problem(response, 404, "not-found")

    def test_unknown_thread_is_404(self, client: httpx.Client) -> None:
        """Reading a thread that does not exist (a random UUID) answers 404."""
        assert_problem(client.get(f"/threads/{uuid.uuid4()}/messages"), 404, "not-found")

    def test_non_uuid_thread_is_404(self, client: httpx.Client) -> None:
        """Reading a thread whose id is not a UUID answers 404, not 500."""
        assert_problem(client.get("/threads/not-a-uuid/messages"), 404, "not-found")

    def test_continuing_an_unknown_thread_is_404(self, client: httpx.Client) -> None:
        """Running on a thread id that does not exist answers 404."""
        response = client.post(
            "/agents/assistant/runs", json={"input": "hi", "thread_id": str(uuid.uuid4())}
        )
        assert_problem(response, 404, "not-found")

    def test_unknown_route_is_404(self, client: httpx.Client) -> None:
        """A path no function serves answers 404."""
        assert client.get("/nothing-here").status_code == 404


class TestTenantIsolation:
    def test_other_tenant_cannot_read_a_thread(
        self, client: httpx.Client, other_client: httpx.Client
    ) -> None:
        """Another tenant reading this tenant's thread gets 404, as if it did not exist."""
        thread_id = run(client, "assistant", "my name is Ada")["thread_id"]
        assert_problem(other_client.get(f"/threads/{thread_id}/messages"), 404, "not-found")

    def test_other_tenant_cannot_continue_a_thread(
        self, client: httpx.Client, other_client: httpx.Client
    ) -> None:
        """Another tenant running on this tenant's thread gets 404 and learns nothing."""
        thread_id = run(client, "assistant", "my name is Ada")["thread_id"]
        response = other_client.post(
            "/agents/assistant/runs", json={"input": "what is my name?", "thread_id": thread_id}
        )
        assert_problem(response, 404, "not-found")
        assert "Ada" not in response.text

    def test_other_tenant_has_its_own_threads(self, other_client: httpx.Client) -> None:
        """The second tenant's key works: it runs and reads its own thread."""
        thread_id = run(other_client, "assistant", "hello")["thread_id"]
        assert history(other_client, thread_id)


class TestAuthentication:
    def test_missing_key_is_401(self, devhost: DevHost) -> None:
        """A request without Authorization answers 401 with a Bearer challenge."""
        response = httpx.get(f"{devhost.base_url}/agents", timeout=30)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_unknown_key_is_401(self, devhost: DevHost) -> None:
        """A well-formed key that was never issued answers 401 with a Bearer challenge."""
        with devhost.client(new_api_key()[0]) as c:
            response = c.get("/agents")
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_wrong_secret_is_401(self, devhost: DevHost) -> None:
        """The dev key's prefix with a wrong secret answers 401."""
        forged = devhost.api_key[: devhost.api_key.rindex("_") + 1] + "0" * 32
        with devhost.client(forged) as c:
            response = c.get("/agents")
        assert_problem(response, 401, "unauthorized")
        assert "www-authenticate" in response.headers

    def test_other_scheme_is_401(self, devhost: DevHost) -> None:
        """A Basic Authorization header answers 401."""
        response = httpx.get(
            f"{devhost.base_url}/agents", headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
        assert_problem(response, 401, "unauthorized")

    def test_runs_need_a_key(self, devhost: DevHost) -> None:
        """POST runs without a key answers 401 before reading the body."""
        response = httpx.post(
            f"{devhost.base_url}/agents/assistant/runs", json={"input": "hi"}, timeout=30
        )
        assert_problem(response, 401, "unauthorized")


class TestTwoHostsShareADatabase:
    def test_a_thread_started_on_one_host_continues_on_another(
        self, devhost: DevHost, request: pytest.FixtureRequest
    ) -> None:
        """Two dev host processes on one SQLite file serve the same thread."""
        if database_url(devhost, request) is not None:
            pytest.skip("the shared-file case is SQLite's; Postgres is shared by design")
        second = start_devhost(
            devhost.log_path.parent, extra_env={"ASCENT_DEV_API_KEY": devhost.api_key}
        )
        try:
            with devhost.client() as a, second.client(devhost.api_key) as b:
                thread_id = run(a, "assistant", "my name is Ada")["thread_id"]
                answer = run(b, "assistant", "what is my name?", thread_id)
                assert "Ada" in answer["output"]
                assert history(a, thread_id) == history(b, thread_id)
        finally:
            second.stop()
