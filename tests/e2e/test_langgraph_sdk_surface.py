"""Every method of the langgraph-sdk async client works against Ascent.

The methods are enumerated from the SDK's own client classes (assistants, threads, runs, crons,
store), so a method a new SDK version adds fails `test_every_client_method_has_a_case` until it
gets a case here or a reason in NOT_SERVED. Each case calls the method through the official
async client and asserts on what it did.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk._async.assistants import AssistantsClient
from langgraph_sdk._async.cron import CronClient
from langgraph_sdk._async.runs import RunsClient
from langgraph_sdk._async.store import StoreClient
from langgraph_sdk._async.threads import ThreadsClient
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.conftest import DevHost

pytestmark = pytest.mark.e2e

CLASSES = {
    "assistants": AssistantsClient,
    "threads": ThreadsClient,
    "runs": RunsClient,
    "crons": CronClient,
    "store": StoreClient,
}
# Methods Ascent does not serve, with the reason a user would read. Empty: all are served.
NOT_SERVED: dict[str, str] = {}
HOURLY = "0 * * * *"
FAR = 3600  # seconds: a run deferred this long stays pending for the test


def said(text: str) -> Any:
    """LangGraph-style input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def client_methods() -> list[str]:
    """`<group>.<method>` for every public method of the SDK's async client classes."""
    return sorted(
        f"{group}.{name}"
        for group, cls in CLASSES.items()
        for name, _ in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    )


Case = Callable[[LangGraphClient], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    """Register the case of one client method."""

    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


async def new_thread(c: LangGraphClient) -> str:
    """A new thread's id."""
    return str((await c.threads.create())["thread_id"])


async def new_assistant(c: LangGraphClient, **extra: Any) -> dict[str, Any]:
    """A new assistant of the `assistant` agent."""
    return dict(await c.assistants.create("assistant", **extra))


# --- assistants --------------------------------------------------------------------------------


@case("assistants.create")
async def _(c: LangGraphClient) -> None:
    made = await new_assistant(c, name="helper")
    assert (made["graph_id"], made["version"], made["name"]) == ("assistant", 1, "helper")


@case("assistants.get")
async def _(c: LangGraphClient) -> None:
    assert (await c.assistants.get("triage"))["graph_id"] == "triage"


@case("assistants.update")
async def _(c: LangGraphClient) -> None:
    made = await new_assistant(c)
    updated = await c.assistants.update(made["assistant_id"], name="renamed")
    assert (updated["version"], updated["name"]) == (2, "renamed")


@case("assistants.delete")
async def _(c: LangGraphClient) -> None:
    made = await new_assistant(c)
    await c.assistants.delete(made["assistant_id"])
    with pytest.raises(NotFoundError):
        await c.assistants.get(made["assistant_id"])


@case("assistants.search")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    made = await new_assistant(c, metadata=tag)
    found = await c.assistants.search(metadata=tag)
    assert [a["assistant_id"] for a in found] == [made["assistant_id"]]


@case("assistants.count")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    await new_assistant(c, metadata=tag)
    await new_assistant(c, metadata=tag)
    assert await c.assistants.count(metadata=tag) == 2


@case("assistants.get_versions")
async def _(c: LangGraphClient) -> None:
    made = await new_assistant(c)
    await c.assistants.update(made["assistant_id"], name="second")
    versions = await c.assistants.get_versions(made["assistant_id"])
    assert sorted(v["version"] for v in versions) == [1, 2]


@case("assistants.set_latest")
async def _(c: LangGraphClient) -> None:
    made = await new_assistant(c, name="first")
    await c.assistants.update(made["assistant_id"], name="second")
    back = await c.assistants.set_latest(made["assistant_id"], 1)
    assert (back["version"], back["name"]) == (1, "first")


@case("assistants.get_graph")
async def _(c: LangGraphClient) -> None:
    graph = await c.assistants.get_graph("triage")
    assert "handoff:billing" in {n["id"] for n in graph["nodes"]}


@case("assistants.get_schemas")
async def _(c: LangGraphClient) -> None:
    schemas = await c.assistants.get_schemas("triage")
    assert schemas["graph_id"] == "triage" and schemas["input_schema"]


@case("assistants.get_subgraphs")
async def _(c: LangGraphClient) -> None:
    assert await c.assistants.get_subgraphs("triage") == {}


# --- threads -----------------------------------------------------------------------------------


@case("threads.create")
async def _(c: LangGraphClient) -> None:
    made = await c.threads.create(metadata={"k": "v"})
    assert (made["status"], made["metadata"]) == ("idle", {"k": "v"})


@case("threads.get")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    assert (await c.threads.get(thread_id))["thread_id"] == thread_id


@case("threads.update")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    updated = await c.threads.update(thread_id, metadata={"topic": "billing"})
    assert updated["metadata"]["topic"] == "billing"


@case("threads.delete")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await c.threads.get(thread_id)


@case("threads.search")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    made = await c.threads.create(metadata=tag)
    assert [t["thread_id"] for t in await c.threads.search(metadata=tag)] == [made["thread_id"]]


@case("threads.count")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    await c.threads.create(metadata=tag)
    assert await c.threads.count(metadata=tag) == 1


@case("threads.copy")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    copy = await c.threads.copy(thread_id)
    assert copy["thread_id"] != thread_id
    assert len((await c.threads.get_state(copy["thread_id"]))["values"]["messages"]) == 2


@case("threads.prune")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    assert await c.threads.prune([thread_id]) == {"pruned_count": 1}


@case("threads.get_state")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    state = await c.threads.get_state(thread_id)
    assert state["values"]["messages"][-1]["content"] == "Noted: your name is Ada."


@case("threads.update_state")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.threads.update_state(thread_id, {"messages": [{"role": "user", "content": "hi"}]})
    assert [m["content"] for m in (await c.threads.get_state(thread_id))["values"]["messages"]] == [
        "hi"
    ]


@case("threads.get_history")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.runs.wait(thread_id, "triage", input=said("my name is Ada"))
    await c.runs.wait(thread_id, "triage", input=said("what is my name?"))
    assert len(await c.threads.get_history(thread_id)) == 2


@case("threads.join_stream")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    await c.runs.create(thread_id, "triage", input=said("my name is Ada"), after_seconds=1)
    events = [p.event async for p in await c.threads.join_stream(thread_id)]
    assert events[0] == "metadata" and events[-1] == "end"


@case("threads.stream")
async def _(c: LangGraphClient) -> None:
    async with c.threads.stream(assistant_id="triage") as thread:
        await thread.run.start(input=said("my name is Ada"))
        output = await thread.output
    assert output["messages"][-1]["content"] == "Noted: your name is Ada."


# --- runs --------------------------------------------------------------------------------------


@case("runs.create")
async def _(c: LangGraphClient) -> None:
    run = await c.runs.create(None, "triage", input=said("hello"))
    assert run["status"] in ("pending", "running", "success")


@case("runs.create_batch")
async def _(c: LangGraphClient) -> None:
    runs = await c.runs.create_batch(
        [{"assistant_id": "triage", "input": said("hello")} for _ in range(2)]
    )
    assert len({r["run_id"] for r in runs}) == 2


@case("runs.wait")
async def _(c: LangGraphClient) -> None:
    result: Any = await c.runs.wait(None, "triage", input=said("my name is Ada"))
    assert result["messages"][-1]["content"] == "Noted: your name is Ada."


@case("runs.stream")
async def _(c: LangGraphClient) -> None:
    parts = [p async for p in c.runs.stream(None, "triage", input=said("hi"), stream_mode="values")]
    assert parts[0].event == "metadata" and parts[-1].event == "end"


@case("runs.get")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"))
    assert (await c.runs.get(thread_id, run["run_id"]))["run_id"] == run["run_id"]


@case("runs.list")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"))
    assert [r["run_id"] for r in await c.runs.list(thread_id)] == [run["run_id"]]


@case("runs.join")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("my name is Ada"))
    joined: Any = await c.runs.join(thread_id, run["run_id"])
    assert joined["messages"][-1]["content"] == "Noted: your name is Ada."


@case("runs.join_stream")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"))
    events = [p.event async for p in c.runs.join_stream(thread_id, run["run_id"])]
    assert events[0] == "metadata" and events[-1] == "end"


@case("runs.cancel")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"), after_seconds=FAR)
    await c.runs.cancel(thread_id, run["run_id"])
    assert (await c.runs.get(thread_id, run["run_id"]))["cancel_reason"] == "cancelled"


@case("runs.cancel_many")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"), after_seconds=FAR)
    await c.runs.cancel_many(thread_id=thread_id, run_ids=[run["run_id"]])
    assert (await c.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


@case("runs.delete")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    run = await c.runs.create(thread_id, "triage", input=said("hello"))
    await c.runs.join(thread_id, run["run_id"])
    await c.runs.delete(thread_id, run["run_id"])
    assert await c.runs.list(thread_id) == []


# --- crons -------------------------------------------------------------------------------------


@case("crons.create")
async def _(c: LangGraphClient) -> None:
    cron = await c.crons.create("triage", schedule=HOURLY, input=said("ping"))
    assert (cron["schedule"], cron["thread_id"]) == (HOURLY, None)


@case("crons.create_for_thread")
async def _(c: LangGraphClient) -> None:
    thread_id = await new_thread(c)
    cron = await c.crons.create_for_thread(thread_id, "triage", schedule=HOURLY, input="ping")
    assert cron["thread_id"] == thread_id


@case("crons.search")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    cron = await c.crons.create("triage", schedule=HOURLY, input="ping", metadata=tag)
    assert [x["cron_id"] for x in await c.crons.search(metadata=tag)] == [cron["cron_id"]]


@case("crons.count")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    await c.crons.create("triage", schedule=HOURLY, input="ping", metadata=tag)
    assert await c.crons.count(metadata=tag) == 1


@case("crons.update")
async def _(c: LangGraphClient) -> None:
    cron = await c.crons.create("triage", schedule=HOURLY, input="ping")
    updated = await c.crons.update(cron["cron_id"], schedule="30 6 * * *", enabled=False)
    assert (updated["schedule"], updated["enabled"], updated["next_run_date"]) == (
        "30 6 * * *",
        False,
        None,
    )


@case("crons.delete")
async def _(c: LangGraphClient) -> None:
    tag = {"surface": str(uuid.uuid4())}
    cron = await c.crons.create("triage", schedule=HOURLY, input="ping", metadata=tag)
    await c.crons.delete(cron["cron_id"])
    assert await c.crons.search(metadata=tag) == []


# --- store -------------------------------------------------------------------------------------


def namespace() -> list[str]:
    """A namespace of its own for one case."""
    return ["surface", uuid.uuid4().hex]


@case("store.put_item")
async def _(c: LangGraphClient) -> None:
    ns = namespace()
    await c.store.put_item(ns, key="k", value={"n": 1})
    assert (await c.store.get_item(ns, key="k"))["value"] == {"n": 1}


@case("store.get_item")
async def _(c: LangGraphClient) -> None:
    ns = namespace()
    await c.store.put_item(ns, key="k", value={"n": 2})
    item = await c.store.get_item(ns, key="k")
    assert (item["key"], item["namespace"]) == ("k", ns)


@case("store.delete_item")
async def _(c: LangGraphClient) -> None:
    ns = namespace()
    await c.store.put_item(ns, key="k", value={"n": 3})
    await c.store.delete_item(ns, key="k")
    with pytest.raises(NotFoundError):
        await c.store.get_item(ns, key="k")


@case("store.search_items")
async def _(c: LangGraphClient) -> None:
    ns = namespace()
    await c.store.put_item(ns, key="a", value={"text": "alpha"})
    await c.store.put_item(ns, key="b", value={"text": "beta"})
    found = await c.store.search_items(ns)
    assert sorted(i["key"] for i in found["items"]) == ["a", "b"]


@case("store.list_namespaces")
async def _(c: LangGraphClient) -> None:
    ns = namespace()
    await c.store.put_item(ns, key="k", value={"n": 4})
    listed: Any = await c.store.list_namespaces(prefix=ns)
    # Agent Protocol's shape, a bare array: LangGraph's server wraps it as {"namespaces": [...]}.
    # The two specs differ here and Ascent follows Agent Protocol (README, Agent Protocol).
    assert listed == [ns]


# --- the matrix --------------------------------------------------------------------------------


def test_every_client_method_has_a_case() -> None:
    """Each public method of the SDK's client classes has a case here or a reason not served."""
    assert sorted(set(CASES) | set(NOT_SERVED)) == client_methods()


@pytest.mark.parametrize("method", sorted(CASES))
async def test_client_method_works(devhost: DevHost, method: str) -> None:
    """The method, called through the official async client, does what it documents."""
    client = get_client(
        url=devhost.base_url, headers={"Authorization": f"Bearer {devhost.api_key}"}
    )
    try:
        await CASES[method](client)
    finally:
        await client.aclose()
