"""LangGraph assistants over real HTTP, driven by the official `langgraph_sdk` client: versions,
search, the catalog's read-only defaults, tenancy, audit, and runs that use an assistant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk._sync.client import SyncLangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.e2e.hitl_helpers import REFUND_REQUEST
from tests.e2e.protocol_helpers import new_thread, wait_status
from tests.security_support import ADMIN_KEY, new_tenant_with_key

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
ARITHMETIC = "What is 6*7?"


@pytest.fixture(scope="module", params=BACKENDS)
def devhost(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHost]:
    """A dev host for the module (SQLite, then Postgres when set) with the admin API on, so a
    second tenant can be made."""
    url = POSTGRES_URL if request.param == "postgres" else None
    host = start_devhost(
        tmp_path_factory.mktemp("assistants"),
        database_url=url,
        extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY},
    )
    yield host
    host.stop()


def sdk(devhost: DevHost, key: str | None = None) -> SyncLangGraphClient:
    """The LangGraph SDK's sync client for a tenant's key (the dev tenant's by default)."""
    headers = {"Authorization": f"Bearer {key or devhost.api_key}"}
    return get_sync_client(url=devhost.base_url, headers=headers)


def tagged(client: SyncLangGraphClient, graph: str = "assistant", **extra: Any) -> dict[str, Any]:
    """A new assistant of the graph, with a metadata tag unique to the test."""
    metadata = {"tag": uuid.uuid4().hex, **extra.pop("metadata", {})}
    return dict(client.assistants.create(graph, metadata=metadata, **extra))


def tool_messages(reply: Any) -> list[Any]:
    """The tool results in a `/runs/wait` answer's messages."""
    return [m for m in reply["messages"] if m.get("role") == "tool" or m.get("type") == "tool"]


# --- catalog defaults --------------------------------------------------------------------------


def test_search_lists_catalog_agents_as_default_assistants(devhost: DevHost) -> None:
    """search() includes each catalog agent as a system assistant with LangGraph's uuid5 id."""
    found = sdk(devhost).assistants.search(graph_id="triage")
    assert [a["assistant_id"] for a in found] == [str(uuid.uuid5(NAMESPACE_GRAPH, "triage"))]
    assert found[0]["metadata"] == {"created_by": "system"}
    assert found[0]["version"] == 1


def test_get_accepts_graph_name_and_default_id(devhost: DevHost) -> None:
    """get() by the graph name and by the default assistant's uuid5 id return the same one."""
    client = sdk(devhost)
    by_name = client.assistants.get("billing")
    by_id = client.assistants.get(str(uuid.uuid5(NAMESPACE_GRAPH, "billing")))
    assert by_name == by_id
    assert by_name["graph_id"] == "billing"


def test_catalog_default_assistant_is_read_only(devhost: DevHost) -> None:
    """update() and delete() on a catalog default answer a 409 problem naming the fix."""
    with devhost.client() as client:
        patched = client.patch("/assistants/triage", json={"name": "x"})
        deleted = client.delete(f"/assistants/{uuid.uuid5(NAMESPACE_GRAPH, 'triage')}")
    assert [patched.status_code, deleted.status_code] == [409, 409]
    assert patched.headers["content-type"] == PROBLEM
    assert "graph_id" in patched.json()["detail"]


# --- create, get, update, versions, latest, delete ---------------------------------------------


def test_create_then_get_returns_version_one(devhost: DevHost) -> None:
    """create() stores version 1 with its config, context and metadata; get() returns it."""
    client = sdk(devhost)
    created = tagged(
        client,
        config={"configurable": {"tools": ["current_time"]}},
        context={"instructions": "Answer in French."},
        name="French clock",
        description="Tells the time",
    )
    fetched = client.assistants.get(created["assistant_id"])
    assert fetched == created
    assert uuid.UUID(created["assistant_id"])
    assert created["version"] == 1
    assert created["config"] == {"configurable": {"tools": ["current_time"]}}
    assert (created["name"], created["description"]) == ("French clock", "Tells the time")


def test_create_with_chosen_id_and_if_exists(devhost: DevHost) -> None:
    """create() with a taken id is 409, or returns the existing one with if_exists=do_nothing."""
    client = sdk(devhost)
    chosen = str(uuid.uuid4())
    first = tagged(client, assistant_id=chosen)
    with pytest.raises(ConflictError):
        client.assistants.create("assistant", assistant_id=chosen)
    again = client.assistants.create("billing", assistant_id=chosen, if_exists="do_nothing")
    assert first["assistant_id"] == chosen
    assert again == first


def test_create_refuses_unknown_graph_and_tools(devhost: DevHost) -> None:
    """An unknown graph_id, tool name or model setting is a 422 problem."""
    with devhost.client() as client:
        answers = [
            client.post("/assistants", json={"graph_id": "nope"}),
            client.post(
                "/assistants",
                json={"graph_id": "assistant", "config": {"configurable": {"tools": ["rm_rf"]}}},
            ),
            client.post(
                "/assistants",
                json={"graph_id": "assistant", "context": {"model_settings": {"temp": 1}}},
            ),
            client.post("/assistants", json={"graph_id": "assistant", "assistant_id": "x"}),
        ]
    assert [a.status_code for a in answers] == [422, 422, 422, 422]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)
    assert "rm_rf" in answers[1].json()["detail"]


def test_update_creates_a_new_latest_version(devhost: DevHost) -> None:
    """update() writes version 2 (metadata merged, config replaced) and get() returns it."""
    client = sdk(devhost)
    created = tagged(client, metadata={"team": "a"})
    updated = client.assistants.update(
        created["assistant_id"],
        config={"configurable": {"tools": ["calculate"]}},
        metadata={"stage": "beta"},
    )
    fetched = client.assistants.get(created["assistant_id"])
    assert updated["version"] == 2
    assert fetched == updated
    assert fetched["metadata"] == {**created["metadata"], "stage": "beta"}
    assert fetched["config"] == {"configurable": {"tools": ["calculate"]}}


def test_get_versions_lists_every_version_newest_first(devhost: DevHost) -> None:
    """get_versions() returns one entry per version, newest first, each with its own config."""
    client = sdk(devhost)
    created = tagged(client, context={"instructions": "v1"})
    client.assistants.update(created["assistant_id"], context={"instructions": "v2"})
    versions = client.assistants.get_versions(created["assistant_id"])
    assert [v["version"] for v in versions] == [2, 1]
    assert [v["context"]["instructions"] for v in versions] == ["v2", "v1"]


def test_set_latest_switches_back_to_an_older_version(devhost: DevHost) -> None:
    """set_latest() points the assistant at version 1 again; get() then returns version 1."""
    client = sdk(devhost)
    created = tagged(client, name="first")
    client.assistants.update(created["assistant_id"], name="second")
    back = client.assistants.set_latest(created["assistant_id"], 1)
    fetched = client.assistants.get(created["assistant_id"])
    assert (back["version"], back["name"]) == (1, "first")
    assert fetched == back
    with pytest.raises(NotFoundError):
        client.assistants.set_latest(created["assistant_id"], 7)


def test_update_after_set_latest_takes_the_next_free_version(devhost: DevHost) -> None:
    """An update after set_latest(1) builds on version 1 and becomes version 3."""
    client = sdk(devhost)
    created = tagged(client, name="first")
    client.assistants.update(created["assistant_id"], name="second")
    client.assistants.set_latest(created["assistant_id"], 1)
    third = client.assistants.update(created["assistant_id"], metadata={"x": 1})
    assert (third["version"], third["name"]) == (3, "first")


def test_delete_removes_the_assistant(devhost: DevHost) -> None:
    """delete() removes the assistant: get() and get_versions() then raise NotFound."""
    client = sdk(devhost)
    created = tagged(client)
    client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        client.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError):
        client.assistants.get_versions(created["assistant_id"])


# --- search and count --------------------------------------------------------------------------


def test_search_filters_by_graph_and_metadata(devhost: DevHost) -> None:
    """search() returns only the tenant's assistants of the graph whose metadata matches."""
    client = sdk(devhost)
    tag = uuid.uuid4().hex
    wanted = client.assistants.create("assistant", metadata={"tag": tag, "env": "prod"})
    client.assistants.create("assistant", metadata={"tag": tag, "env": "dev"})
    client.assistants.create("billing", metadata={"tag": tag, "env": "prod"})
    found = client.assistants.search(graph_id="assistant", metadata={"tag": tag, "env": "prod"})
    assert [a["assistant_id"] for a in found] == [wanted["assistant_id"]]


def test_search_pages_with_a_next_cursor(devhost: DevHost) -> None:
    """search(response_format="object") pages by limit and reports the next offset."""
    client = sdk(devhost)
    tag = uuid.uuid4().hex
    made = [client.assistants.create("assistant", metadata={"tag": tag}) for _ in range(3)]
    first = client.assistants.search(metadata={"tag": tag}, limit=2, response_format="object")
    rest = client.assistants.search(
        metadata={"tag": tag}, limit=2, offset=2, response_format="object"
    )
    ids = [a["assistant_id"] for a in [*first["assistants"], *rest["assistants"]]]
    assert first["next"] == "2" and rest["next"] is None
    assert ids == [a["assistant_id"] for a in reversed(made)]  # newest first


def test_search_selects_fields_and_sorts(devhost: DevHost) -> None:
    """search(select=..., sort_by="name") returns only those fields, ordered by name."""
    client = sdk(devhost)
    tag = uuid.uuid4().hex
    for name in ("b", "c", "a"):
        client.assistants.create("assistant", metadata={"tag": tag}, name=name)
    found = client.assistants.search(
        metadata={"tag": tag}, sort_by="name", sort_order="asc", select=["name"]
    )
    assert found == [{"name": "a"}, {"name": "b"}, {"name": "c"}]


def test_count_filters_by_graph_and_metadata(devhost: DevHost) -> None:
    """count() counts the tenant's assistants matching graph and metadata (and the defaults)."""
    client = sdk(devhost)
    tag = uuid.uuid4().hex
    for graph in ("assistant", "assistant", "billing"):
        client.assistants.create(graph, metadata={"tag": tag})
    assert client.assistants.count(metadata={"tag": tag}) == 3
    assert client.assistants.count(graph_id="assistant", metadata={"tag": tag}) == 2
    assert client.assistants.count(graph_id="tech_support") >= 1


# --- schemas and graph -------------------------------------------------------------------------


def test_get_schemas_describe_the_configurable_tools(devhost: DevHost) -> None:
    """get_schemas() gives the graph's schemas; the config schema lists its tool names."""
    client = sdk(devhost)
    created = tagged(client)
    schemas = client.assistants.get_schemas(created["assistant_id"])
    tools = schemas["context_schema"]["properties"]["tools"]["items"]["enum"]
    assert schemas["graph_id"] == "assistant"
    assert {"calculate", "current_time"} <= set(tools)
    assert {"input_schema", "output_schema", "state_schema", "config_schema"} <= set(schemas)


def test_get_graph_shows_handoffs_as_nodes(devhost: DevHost) -> None:
    """get_graph() of triage has its handoff targets as nodes, from __start__ to __end__."""
    graph = sdk(devhost).assistants.get_graph("triage")
    ids = [n["id"] for n in graph["nodes"]]
    assert ids[0] == "__start__" and ids[-1] == "__end__"
    assert {"handoff:billing", "handoff:tech_support"} <= set(ids)
    assert {"source": "__start__", "target": "triage"} in graph["edges"]


def test_get_graph_shows_only_the_assistants_tool_subset(devhost: DevHost) -> None:
    """get_graph() of an assistant with a tool subset has only those tools as nodes."""
    client = sdk(devhost)
    created = tagged(client, context={"tools": ["current_time"]})
    graph = client.assistants.get_graph(created["assistant_id"])
    tools = [n["data"]["name"] for n in graph["nodes"] if n["id"].startswith("tools:")]
    assert tools == ["current_time"]


def test_get_subgraphs_is_empty(devhost: DevHost) -> None:
    """get_subgraphs() answers no subgraphs (handoffs are nodes of the graph)."""
    assert sdk(devhost).assistants.get_subgraphs("triage") == {}


# --- tenancy and audit -------------------------------------------------------------------------


def test_other_tenants_assistant_is_not_found(devhost: DevHost) -> None:
    """Another tenant gets 404 for an assistant, exactly like for a missing id, and its search
    does not list it."""
    created = tagged(sdk(devhost))
    _, issued = new_tenant_with_key(devhost.base_url)
    other = sdk(devhost, issued["key"])
    with pytest.raises(NotFoundError) as real:
        other.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError) as missing:
        other.assistants.get(str(uuid.uuid4()))
    assert real.value.response.json()["type"] == missing.value.response.json()["type"]
    assert other.assistants.search(metadata=created["metadata"]) == []


def test_changes_are_audited_and_outlive_the_assistant(devhost: DevHost) -> None:
    """Create, update, set latest and delete each leave an audit entry, readable after delete."""
    client = sdk(devhost)
    created = tagged(client)
    assistant_id = created["assistant_id"]
    client.assistants.update(assistant_id, name="renamed")
    client.assistants.set_latest(assistant_id, 1)
    client.assistants.delete(assistant_id)
    with devhost.client() as http:
        trail = http.get(f"/assistants/{assistant_id}/audit").json()
    assert [(e["action"], e["version"]) for e in trail] == [
        ("created", 1),
        ("updated", 2),
        ("latest", 1),
        ("deleted", 1),
    ]
    assert trail[1]["details"] == {"fields": ["name"]}
    assert all(e["actor"] for e in trail)


# --- runs on an assistant ----------------------------------------------------------------------


def test_run_on_assistant_uses_its_tool_subset(devhost: DevHost) -> None:
    """A run on an assistant without the calculator answers without calling it, where the
    catalog agent calls it; the run records the assistant and version it used."""
    client = sdk(devhost)
    created = tagged(client, context={"tools": ["current_time"]})
    plain = client.runs.wait(
        None, "assistant", input={"messages": [{"role": "user", "content": ARITHMETIC}]}
    )
    limited = client.runs.wait(
        None,
        created["assistant_id"],
        input={"messages": [{"role": "user", "content": ARITHMETIC}]},
    )
    assert tool_messages(plain)
    assert not tool_messages(limited)
    assert "42" not in str(limited["messages"][-1]["content"])


def test_run_records_assistant_and_version(devhost: DevHost) -> None:
    """A run on an assistant shows its assistant_id and the version it ran in its config."""
    created = tagged(sdk(devhost))
    with devhost.client() as http:
        reply = http.post(
            "/runs/wait", json={"assistant_id": created["assistant_id"], "input": "hello"}
        ).json()
    run = reply["run"]
    assert run["assistant_id"] == created["assistant_id"]
    assert run["agent_id"] == "assistant"
    assert run["kwargs"]["config"]["configurable"]["assistant_version"] == 1


def test_run_follows_set_latest(devhost: DevHost) -> None:
    """After set_latest(1), runs use version 1 again (its tools), not the newer version 2."""
    client = sdk(devhost)
    created = tagged(client)
    client.assistants.update(created["assistant_id"], context={"tools": ["current_time"]})
    client.assistants.set_latest(created["assistant_id"], 1)
    reply = client.runs.wait(
        None, created["assistant_id"], input={"messages": [{"role": "user", "content": ARITHMETIC}]}
    )
    assert tool_messages(reply)
    assert reply["run"]["kwargs"]["config"]["configurable"]["assistant_version"] == 1


def test_simple_route_runs_an_assistant(devhost: DevHost) -> None:
    """`POST /agents/{assistant_id}/runs` runs the assistant's configuration too."""
    created = tagged(sdk(devhost), context={"tools": ["current_time"]})
    with devhost.client() as http:
        plain = http.post("/agents/assistant/runs", json={"input": ARITHMETIC}).json()
        limited = http.post(
            f"/agents/{created['assistant_id']}/runs", json={"input": ARITHMETIC}
        ).json()
    assert "42" in plain["output"]
    assert "42" not in limited["output"]


def test_run_on_deleted_or_foreign_assistant_is_not_found(devhost: DevHost) -> None:
    """A run naming a deleted assistant, or another tenant's, is a 404 problem."""
    client = sdk(devhost)
    deleted = tagged(client)
    client.assistants.delete(deleted["assistant_id"])
    kept = tagged(client)
    _, issued = new_tenant_with_key(devhost.base_url)
    body: dict[str, Any] = {"input": "hello"}
    with devhost.client() as mine, devhost.client(issued["key"]) as theirs:
        gone = mine.post("/runs/wait", json={**body, "assistant_id": deleted["assistant_id"]})
        foreign = theirs.post("/runs/wait", json={**body, "assistant_id": kept["assistant_id"]})
    assert [gone.status_code, foreign.status_code] == [404, 404]
    assert foreign.headers["content-type"] == PROBLEM


def test_bad_bodies_are_4xx_problems(devhost: DevHost) -> None:
    """Malformed bodies and ids on /assistants answer 4xx problem+json, never 5xx."""
    with devhost.client() as client:
        answers: list[httpx.Response] = [
            client.post("/assistants", content=b"{not json"),
            client.post("/assistants/search", json={"limit": 0}),
            client.post("/assistants/count", json={"metadata": "x"}),
            client.get("/assistants/not-a-uuid"),
            client.post(f"/assistants/{uuid.uuid4()}/latest", json={"version": 0}),
            client.patch(f"/assistants/{uuid.uuid4()}", json={}),
        ]
    assert [a.status_code for a in answers] == [400, 422, 422, 404, 422, 404]
    assert all(a.headers["content-type"] == PROBLEM for a in answers)


def test_unprocessable_update_keeps_the_latest_version(devhost: DevHost) -> None:
    """An update naming a tool the graph lacks is 422 and writes no version."""
    client = sdk(devhost)
    created = tagged(client)
    with pytest.raises(UnprocessableEntityError):
        client.assistants.update(created["assistant_id"], context={"tools": ["refund_quote"]})
    assert [v["version"] for v in client.assistants.get_versions(created["assistant_id"])] == [1]


def test_background_run_on_assistant_uses_its_configuration(devhost: DevHost) -> None:
    """A queued run (`POST /runs`) on an assistant also runs its tool subset and records it."""
    client = sdk(devhost)
    created = tagged(client, context={"tools": ["current_time"]})
    run = client.runs.create(None, created["assistant_id"], input=ARITHMETIC)
    with devhost.client() as http:
        reply = http.get(f"/runs/{run['run_id']}/wait").json()
    assert reply["run"]["status"] == "success"
    assert not tool_messages(reply)
    assert reply["run"]["assistant_id"] == created["assistant_id"]


def test_cron_may_name_an_assistant(devhost: DevHost) -> None:
    """A cron may name the tenant's assistant; an unknown assistant id is a 404 problem."""
    created = tagged(sdk(devhost))
    body = {"input": "hello", "schedule": "0 0 1 1 *"}
    with devhost.client() as http:
        made = http.post("/runs/crons", json={**body, "assistant_id": created["assistant_id"]})
        unknown = http.post("/runs/crons", json={**body, "assistant_id": str(uuid.uuid4())})
    assert made.status_code == 200, made.text
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM


def test_concurrent_updates_get_distinct_versions(devhost: DevHost) -> None:
    """Concurrent updates each get their own version number (or a 409 to retry), never a 5xx
    and never a lost version."""
    client = sdk(devhost)
    created = tagged(client)
    path = f"/assistants/{created['assistant_id']}"

    def patch(index: int) -> int:
        with devhost.client() as http:
            return http.patch(path, json={"metadata": {f"k{index}": index}}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(patch, range(4)))
    versions = [v["version"] for v in client.assistants.get_versions(created["assistant_id"])]
    assert set(statuses) <= {200, 409}
    assert versions == list(range(1 + statuses.count(200), 0, -1))


def test_assistant_without_the_write_tool_never_pauses_for_approval(devhost: DevHost) -> None:
    """A billing assistant limited to `refund_quote` answers a refund request without the
    approval pause the catalog billing agent takes before `issue_refund`."""
    created = tagged(sdk(devhost), graph="billing", context={"tools": ["refund_quote"]})
    statuses: list[str] = []
    with devhost.client() as http:
        for agent in ("billing", created["assistant_id"]):
            thread_id = new_thread(http)
            run = http.post(
                f"/threads/{thread_id}/runs", json={"assistant_id": agent, "input": REFUND_REQUEST}
            ).json()
            statuses.append(wait_status(http, run["run_id"], "interrupted", "success", "error"))
    assert statuses == ["interrupted", "success"]


# --- an assistant is an OpenAI model -----------------------------------------------------------


def openai_client(devhost: DevHost) -> openai.OpenAI:
    """The official `openai` client on the dev host's /v1."""
    return openai.OpenAI(base_url=f"{devhost.base_url}/v1", api_key=devhost.api_key)


def test_v1_models_lists_the_tenants_assistants(devhost: DevHost) -> None:
    """GET /v1/models lists the tenant's assistants after the catalog agents, and retrieves one."""
    created = tagged(sdk(devhost))
    client = openai_client(devhost)
    ids = [m.id for m in client.models.list()]
    assert "triage" in ids and created["assistant_id"] in ids
    assert client.models.retrieve(created["assistant_id"]).id == created["assistant_id"]


def test_chat_completions_on_an_assistant_use_its_configuration(devhost: DevHost) -> None:
    """`model: <assistant id>` on chat completions runs the assistant: without the calculator
    in its tool subset, the arithmetic goes unanswered."""
    created = tagged(sdk(devhost), context={"tools": ["current_time"]})
    client = openai_client(devhost)
    ask = [{"role": "user", "content": ARITHMETIC}]
    plain = client.chat.completions.create(model="assistant", messages=ask)
    limited = client.chat.completions.create(model=created["assistant_id"], messages=ask)
    assert "42" in str(plain.choices[0].message.content)
    assert "42" not in str(limited.choices[0].message.content)


def test_responses_on_an_assistant_use_its_configuration(devhost: DevHost) -> None:
    """`model: <assistant id>` on the Responses API runs the assistant's configuration."""
    created = tagged(sdk(devhost), context={"tools": ["current_time"]})
    client = openai_client(devhost)
    limited = client.responses.create(model=created["assistant_id"], input=ARITHMETIC)
    assert limited.status == "completed"
    assert "42" not in limited.output_text
