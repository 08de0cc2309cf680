"""The long-term memory store (shared.memory.store) on SQLite and on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from agents import Agent, RunConfig, Runner
from agents.items import ToolCallOutputItem
from agents.testing import ScriptedModel, assistant_message, function_call

from shared.agents.memory_tools import MEMORY_TOOLS, NO_CONTEXT
from shared.core.context import RunContext
from shared.core.errors import ValidationFailed
from shared.db import repo
from shared.db.engine import db_session, get_engine
from shared.db.memory_models import StoreItem
from shared.db.migrate import migrate
from shared.db.models import utcnow
from shared.memory import store as memory
from tests.conftest import POSTGRES_URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

NewTenant = Callable[[], Awaitable[str]]


@pytest.fixture(params=BACKENDS)
async def new_tenant(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[NewTenant]:
    """A migrated database (fresh SQLite, or the shared Postgres) and a maker of unique tenants."""
    if request.param == "postgres":
        assert POSTGRES_URL is not None
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    await migrate(get_engine())

    async def make() -> str:
        tenant_id = f"mem-{uuid.uuid4().hex[:16]}"
        async with db_session() as db:
            await repo.create_tenant(session=db, name="memory test", tenant_id=tenant_id)
            await db.commit()
        return tenant_id

    yield make
    await get_engine().dispose()


async def _expire(tenant_id: str, namespace: tuple[str, ...], key: str) -> None:
    """Move an item's expiry into the past, as if its TTL had run out."""
    async with db_session() as db:
        row = await db.get(StoreItem, (tenant_id, memory.join_namespace(namespace), key))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()


FACTS = {
    "color": "My favorite color is blue",
    "outage": "The payment server crashed with error E500 after Tuesday's deploy",
    "home": "I live in Lisbon with my wife and two kids",
    "allergy": "I am allergic to peanuts and shellfish",
    "pet": "My dog is called Rex and he is three years old",
}


class TestPutGetDelete:
    """Items at (namespace, key)."""

    async def test_put_then_get_returns_the_value(self, new_tenant: NewTenant) -> None:
        """A stored value comes back with its namespace, key and timestamps."""
        tenant = await new_tenant()
        await memory.put(tenant_id=tenant, namespace=["users", "u1"], key="k", value={"a": 1})
        item = await memory.get(tenant_id=tenant, namespace=["users", "u1"], key="k")
        assert item is not None
        assert (item.namespace, item.key, item.value) == (("users", "u1"), "k", {"a": 1})
        assert item.created_at.tzinfo is not None

    async def test_put_twice_replaces_and_keeps_created_at(self, new_tenant: NewTenant) -> None:
        """A second put replaces the value and moves updated_at, not created_at."""
        tenant = await new_tenant()
        first = await memory.put(tenant_id=tenant, namespace=["n"], key="k", value={"v": 1})
        await memory.put(tenant_id=tenant, namespace=["n"], key="k", value={"v": 2})
        item = await memory.get(tenant_id=tenant, namespace=["n"], key="k")
        assert item is not None and item.value == {"v": 2}
        assert item.created_at == first.created_at
        assert item.updated_at >= first.updated_at

    async def test_delete_removes_the_item(self, new_tenant: NewTenant) -> None:
        """After delete the item is gone, and a second delete reports nothing was there."""
        tenant = await new_tenant()
        await memory.put(tenant_id=tenant, namespace=["n"], key="k", value={"v": 1})
        assert await memory.delete(tenant_id=tenant, namespace=["n"], key="k") is True
        assert await memory.get(tenant_id=tenant, namespace=["n"], key="k") is None
        assert await memory.delete(tenant_id=tenant, namespace=["n"], key="k") is False

    async def test_bad_namespace_is_refused(self, new_tenant: NewTenant) -> None:
        """Empty namespaces and labels with dots are refused as validation errors."""
        tenant = await new_tenant()
        for namespace in ([], ["a.b"], [""]):
            with pytest.raises(ValidationFailed):
                await memory.put(tenant_id=tenant, namespace=namespace, key="k", value={})


class TestSearch:
    """Semantic and filtered search."""

    async def _seed(self, tenant: str) -> None:
        for key, text in FACTS.items():
            await memory.put(
                tenant_id=tenant, namespace=["users", "u1", "facts"], key=key, value={"text": text}
            )

    async def test_paraphrase_finds_the_item_first(self, new_tenant: NewTenant) -> None:
        """A paraphrase with different words ranks the matching memory first."""
        tenant = await new_tenant()
        await self._seed(tenant)
        for query, expected in (
            ("Which colour do I like best?", "color"),
            ("where does the user reside", "home"),
            ("what food allergies do I have", "allergy"),
            ("what's the name of my pet", "pet"),
        ):
            found = await memory.search(
                tenant_id=tenant, namespace_prefix=["users", "u1"], query=query, limit=5
            )
            assert found[0].key == expected, (query, [i.key for i in found])
            assert found[0].score is not None and found[0].score > found[1].score  # type: ignore[operator]

    async def test_unrelated_query_ranks_the_item_low(self, new_tenant: NewTenant) -> None:
        """A query about something else scores the color memory near zero and not first."""
        tenant = await new_tenant()
        await self._seed(tenant)
        found = await memory.search(
            tenant_id=tenant, namespace_prefix=["users"], query="server outage error", limit=5
        )
        assert found[0].key == "outage"
        color = next(i for i in found if i.key == "color")
        assert color.score is not None and color.score < 0.1

    async def test_prefix_limits_the_namespace(self, new_tenant: NewTenant) -> None:
        """Search only sees items at or below the prefix, never a sibling with a longer name."""
        tenant = await new_tenant()
        await memory.put(tenant_id=tenant, namespace=["users", "u1"], key="a", value={"t": "x"})
        await memory.put(tenant_id=tenant, namespace=["users", "u10"], key="b", value={"t": "x"})
        found = await memory.search(tenant_id=tenant, namespace_prefix=["users", "u1"])
        assert [i.key for i in found] == ["a"]

    async def test_filter_and_paging(self, new_tenant: NewTenant) -> None:
        """A value filter keeps matching items; limit and offset page newest first."""
        tenant = await new_tenant()
        for n in range(5):
            await memory.put(
                tenant_id=tenant, namespace=["n"], key=f"k{n}", value={"n": n, "even": n % 2 == 0}
            )
        evens = await memory.search(tenant_id=tenant, filter={"even": True})
        assert sorted(i.key for i in evens) == ["k0", "k2", "k4"]
        big = await memory.search(tenant_id=tenant, filter={"n": {"$gte": 3}}, query="n")
        assert sorted(i.key for i in big) == ["k3", "k4"]
        page = await memory.search(tenant_id=tenant, limit=2, offset=1)
        assert [i.key for i in page] == ["k3", "k2"]


class TestNamespaces:
    """Listing namespaces."""

    async def test_list_with_prefix_suffix_and_depth(self, new_tenant: NewTenant) -> None:
        """Namespaces are listed sorted, filtered by prefix and suffix, and cut to max_depth."""
        tenant = await new_tenant()
        for ns in (["users", "u1", "facts"], ["users", "u2", "facts"], ["users", "u2", "prefs"]):
            await memory.put(tenant_id=tenant, namespace=ns, key="k", value={})
        await memory.put(tenant_id=tenant, namespace=["docs"], key="k", value={})
        assert await memory.list_namespaces(tenant_id=tenant, prefix=["users"]) == [
            ("users", "u1", "facts"),
            ("users", "u2", "facts"),
            ("users", "u2", "prefs"),
        ]
        assert await memory.list_namespaces(tenant_id=tenant, suffix=["facts"]) == [
            ("users", "u1", "facts"),
            ("users", "u2", "facts"),
        ]
        assert await memory.list_namespaces(tenant_id=tenant, max_depth=1) == [
            ("docs",),
            ("users",),
        ]
        assert await memory.list_namespaces(tenant_id=tenant, limit=1, offset=1) == [
            ("users", "u1", "facts")
        ]


class TestTenantIsolation:
    """Tenant B sees nothing of tenant A's store."""

    async def test_other_tenant_gets_the_missing_answer(self, new_tenant: NewTenant) -> None:
        """Get, search, list and delete from tenant B answer as if A's item did not exist."""
        a, b = await new_tenant(), await new_tenant()
        await memory.put(tenant_id=a, namespace=["users", "u1"], key="k", value={"t": "secret"})
        assert await memory.get(tenant_id=b, namespace=["users", "u1"], key="k") is None
        assert await memory.search(tenant_id=b, query="secret") == []
        assert await memory.search(tenant_id=b) == []
        assert await memory.list_namespaces(tenant_id=b) == []
        assert await memory.delete(tenant_id=b, namespace=["users", "u1"], key="k") is False
        assert await memory.get(tenant_id=a, namespace=["users", "u1"], key="k") is not None


class TestRetention:
    """TTL: expired items vanish from reads at once and are purged later."""

    async def test_expired_item_is_invisible(self, new_tenant: NewTenant) -> None:
        """Once its TTL has passed an item is gone from get, search and namespace listing."""
        tenant = await new_tenant()
        await memory.put(
            tenant_id=tenant, namespace=["n"], key="k", value={"t": "x"}, ttl_seconds=60
        )
        assert await memory.get(tenant_id=tenant, namespace=["n"], key="k") is not None
        await _expire(tenant, ("n",), "k")
        assert await memory.get(tenant_id=tenant, namespace=["n"], key="k") is None
        assert await memory.search(tenant_id=tenant, query="x") == []
        assert await memory.list_namespaces(tenant_id=tenant) == []

    async def test_default_ttl_setting_applies(
        self, new_tenant: NewTenant, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """STORE_DEFAULT_TTL_SECONDS sets an expiry on items put without a ttl."""
        from shared.core.settings import get_settings

        monkeypatch.setenv("STORE_DEFAULT_TTL_SECONDS", "3600")
        get_settings.cache_clear()
        tenant = await new_tenant()
        item = await memory.put(tenant_id=tenant, namespace=["n"], key="k", value={})
        assert item.expires_at is not None
        assert timedelta(minutes=59) < item.expires_at - item.updated_at <= timedelta(hours=1)

    async def test_purge_removes_expired_rows_only(self, new_tenant: NewTenant) -> None:
        """purge_expired deletes the expired rows and leaves live ones."""
        tenant = await new_tenant()
        await memory.put(tenant_id=tenant, namespace=["n"], key="old", value={}, ttl_seconds=60)
        await memory.put(tenant_id=tenant, namespace=["n"], key="new", value={}, ttl_seconds=60)
        await memory.put(tenant_id=tenant, namespace=["n"], key="forever", value={})
        await _expire(tenant, ("n",), "old")
        assert await memory.purge_expired(tenant_id=tenant) == 1
        async with db_session() as db:
            assert await db.get(StoreItem, (tenant, "n", "old")) is None
            assert await db.get(StoreItem, (tenant, "n", "new")) is not None
        assert await memory.purge_expired() >= 0  # the job's call: every tenant


async def _run_tool(context: object, tool: str, arguments: dict[str, object]) -> str:
    """Run an agent whose scripted model calls one memory tool; return the tool's output."""
    model = ScriptedModel(
        [[function_call(tool, arguments, call_id="call-1")], [assistant_message("done")]]
    )
    agent: Agent[object] = Agent(name="memory_test", tools=list(MEMORY_TOOLS))
    result = await Runner.run(
        agent,
        "go",
        context=context,
        run_config=RunConfig(model=model, tracing_disabled=True),
    )
    outputs = [i.output for i in result.new_items if isinstance(i, ToolCallOutputItem)]
    assert len(outputs) == 1
    return str(outputs[0])


class TestMemoryTools:
    """The agents' remember/recall tools, acting for the run context's tenant and user."""

    async def test_recall_in_another_thread(self, new_tenant: NewTenant) -> None:
        """A fact remembered in one run is recalled, by meaning, in a separate later run."""
        who = RunContext(tenant_id=await new_tenant(), user_id="user@example.com")
        saved = await _run_tool(who, "remember", {"fact": "My favorite color is blue."})
        assert saved.startswith("Remembered")
        await _run_tool(who, "remember", {"fact": "I work as a nurse in Porto."})
        recalled = await _run_tool(who, "recall", {"query": "which colour do I like best"})
        assert recalled.splitlines()[0] == "- My favorite color is blue."

    async def test_other_user_recalls_nothing(self, new_tenant: NewTenant) -> None:
        """Another user of the same tenant, and another tenant, cannot recall the fact."""
        tenant = await new_tenant()
        await _run_tool(
            RunContext(tenant, "alice"), "remember", {"fact": "My favorite color is blue."}
        )
        for who in (RunContext(tenant, "bob"), RunContext(await new_tenant(), "alice")):
            output = await _run_tool(who, "recall", {"query": "favorite color"})
            assert output == "No relevant memories."

    async def test_without_context_the_tools_fail_soft(self, new_tenant: NewTenant) -> None:
        """With no tenant/user in the run context the tools say memory is unavailable."""
        assert await _run_tool(None, "remember", {"fact": "x"}) == NO_CONTEXT
        assert await _run_tool({"tenant_id": "t"}, "recall", {"query": "x"}) == NO_CONTEXT

    async def test_assistant_recalls_across_threads_offline(self, new_tenant: NewTenant) -> None:
        """The catalog assistant on the offline model recalls in thread 2 what thread 1 saved."""
        from shared.agents import get_agent
        from shared.memory.sessions import build_session
        from shared.platform.offline_model import OfflineModelProvider

        tenant = await new_tenant()
        who = RunContext(tenant_id=tenant, user_id="alice")
        config = RunConfig(model_provider=OfflineModelProvider(), tracing_disabled=True)
        agent = get_agent("assistant")
        first = await Runner.run(
            agent,
            "Please remember that my favourite colour is blue",
            context=who,
            run_config=config,
            session=build_session(tenant, f"{tenant}-thread-1"),
        )
        assert str(first.final_output).startswith("Remembered")
        second = await Runner.run(
            agent,
            "Can you recall which color I like best?",
            context=who,
            run_config=config,
            session=build_session(tenant, f"{tenant}-thread-2"),
        )
        assert "favourite colour is blue" in str(second.final_output)
