"""The `consolidate_memory` job: idle threads become summaries in their users' memory, once."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from aca_jobs.consolidate_memory import consolidate, memory_key
from aca_jobs.steps import STEP_PAUSE_ENV
from shared.agents.memory_tools import user_namespace
from shared.db.jobs_models import ThreadConsolidation
from shared.db.models import utcnow
from shared.memory import store as memory
from shared.memory.sessions import build_session
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture


async def _idle_thread(tenant_id: str, user: str, name: str, *, idle_hours: float = 5) -> str:
    """A thread idle for `idle_hours` whose user told the agent their name."""
    moment = utcnow() - timedelta(hours=idle_hours)
    thread_id = await js.make_thread(tenant_id, updated_at=moment)
    await js.make_run(tenant_id, thread_id, created_at=moment, user_id=user)
    await build_session(tenant_id, thread_id).add_items(
        [
            {"role": "user", "content": f"Hi, my name is {name}"},
            {"role": "assistant", "content": f"Noted: your name is {name}."},
        ]
    )
    return thread_id


async def _summary(tenant_id: str, user: str, thread_id: str) -> str | None:
    item = await memory.get(
        tenant_id=tenant_id, namespace=user_namespace(user), key=memory_key(thread_id)
    )
    return None if item is None else str(item.value["text"])


async def test_idle_thread_is_summarized_into_its_users_memory(job_db: js.JobDb) -> None:
    """The user's namespace gets the thread's summary; a recently active thread is left alone."""
    tenant = await js.make_tenant()
    idle = await _idle_thread(tenant, "u-ada", "Ada")
    active = await _idle_thread(tenant, "u-bob", "Bob", idle_hours=0)
    assert await consolidate() == 1
    assert await _summary(tenant, "u-ada", idle) == "The user's name is Ada."
    assert await _summary(tenant, "u-bob", active) is None
    assert await js.count(ThreadConsolidation, thread_id=idle, status="done") == 1


async def test_consolidating_twice_does_each_thread_once(job_db: js.JobDb) -> None:
    """A second run finds nothing to do; the memory item is not rewritten."""
    tenant = await js.make_tenant()
    thread = await _idle_thread(tenant, "u-ada", "Ada")
    await consolidate()
    before = await memory.get(
        tenant_id=tenant, namespace=user_namespace("u-ada"), key=memory_key(thread)
    )
    assert await consolidate() == 0
    after = await memory.get(
        tenant_id=tenant, namespace=user_namespace("u-ada"), key=memory_key(thread)
    )
    assert before is not None and after is not None and after.updated_at == before.updated_at


async def test_two_processes_at_once_summarize_each_thread_once(job_db: js.JobDb) -> None:
    """Two `python -m aca_jobs consolidate_memory` at once split the threads: none twice."""
    tenant = await js.make_tenant()
    threads = [await _idle_thread(tenant, f"u-{i}", f"User{i}") for i in range(6)]
    first = await js.start_job("consolidate_memory", job_db, tag="a")
    second = await js.start_job("consolidate_memory", job_db, tag="b")
    codes = await asyncio.gather(first.wait(), second.wait())
    assert codes == [0, 0], first.log() + second.log()
    done = re.findall(r"thread (\S+) of tenant \S+: summarized", first.log() + second.log())
    assert sorted(done) == sorted(threads)
    for i, thread in enumerate(threads):
        assert await _summary(tenant, f"u-{i}", thread) == f"The user's name is User{i}."


async def test_killed_between_threads_the_next_run_finishes(job_db: js.JobDb) -> None:
    """SIGKILL after the first thread's step; the next run summarizes the remaining threads."""
    tenant = await js.make_tenant()
    threads = [await _idle_thread(tenant, f"u-{i}", f"User{i}") for i in range(3)]
    pause = job_db.data_dir / "pause"
    job_db.data_dir.mkdir(parents=True, exist_ok=True)
    pause.write_text("hold")
    job = await js.start_job("consolidate_memory", job_db, **{STEP_PAUSE_ENV: str(pause)})

    async def first_step() -> bool:
        return await js.count(ThreadConsolidation, status="done") >= 1

    await js.until(first_step, "the first thread consolidated")
    job.kill()
    await job.wait()
    assert await js.count(ThreadConsolidation, status="done") < len(threads)
    await js.run_job("consolidate_memory", job_db)
    for i, thread in enumerate(threads):
        assert await _summary(tenant, f"u-{i}", thread) == f"The user's name is User{i}."
