"""Thread owners and grants in the database: SQL visibility, grants removed with their thread
(the foreign key refuses otherwise), and crons acting as the user who created them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from aca_jobs.purge_retention import purge
from shared.api import crons as cron_api
from shared.api import protocol
from shared.db import direct, repo
from shared.db.engine import db_session
from shared.db.jobs_models import Cron, CronFire
from shared.db.models import Run, Thread, ThreadGrant, utcnow
from shared.outbox import drain
from shared.runs import crons, records, service
from shared.security import thread_access
from shared.security.auth import Principal
from tests.integration import jobs_support as js

job_db = js.job_db  # the fresh-database fixture
T0 = datetime(2031, 3, 4, 12, 2, 0, tzinfo=UTC)
YEARLY = "0 0 1 1 *"


@pytest.fixture(autouse=True)
async def drained(job_db: js.JobDb) -> AsyncIterator[None]:
    """A fired run records events: their background outbox drain ends before the database."""
    yield
    await drain.wait_for_background_drain()


def user(tenant_id: str, user_id: str, *, admin: bool = False) -> Principal:
    """A bearer-token user of the tenant (a tenant admin when asked)."""
    return Principal(tenant_id, f"user:{user_id}", user_id, tenant_admin=admin)


async def thread_of(
    tenant_id: str, owner: str | None, *, updated_at: datetime | None = None
) -> str:
    """A thread owned by `owner` (None: created by an API key)."""
    moment = updated_at or utcnow()
    async with db_session() as db:
        thread = Thread(tenant_id=tenant_id, owner_id=owner, created_at=moment, updated_at=moment)
        db.add(thread)
        await db.commit()
    return thread.id


async def visible_ids(principal: Principal) -> set[str]:
    """The ids of the threads a thread search returns to the principal."""
    async with db_session() as db:
        found = await repo.search_threads(
            session=db,
            tenant_id=principal.tenant_id,
            visible=thread_access.thread_visible(principal),
        )
    return {t.id for t in found}


async def test_search_filters_on_owner_and_grant_in_sql(job_db: js.JobDb) -> None:
    """A user's search returns their threads and granted ones; API keys and admins get all."""
    tenant = await js.make_tenant()
    own = await thread_of(tenant, "alice")
    granted = await thread_of(tenant, "bob")
    bobs = await thread_of(tenant, "bob")
    keys = await thread_of(tenant, None)
    await thread_access.grant(user(tenant, "bob"), granted, "alice")
    everything = {own, granted, bobs, keys}
    assert await visible_ids(user(tenant, "alice")) == {own, granted}
    assert await visible_ids(Principal(tenant, "key-1")) == everything
    assert await visible_ids(user(tenant, "carol", admin=True)) == everything


async def test_a_grant_in_another_tenant_gives_nothing(job_db: js.JobDb) -> None:
    """A grant row only counts in its own tenant: the same user id elsewhere sees nothing."""
    home, other = await js.make_tenant(), await js.make_tenant()
    thread_id = await thread_of(home, "bob")
    await thread_access.grant(user(home, "bob"), thread_id, "alice")
    assert await visible_ids(user(other, "alice")) == set()


async def test_deleting_a_thread_deletes_its_grants(job_db: js.JobDb) -> None:
    """Deleting a granted thread (and its conversation) removes its grant rows too."""
    tenant = await js.make_tenant()
    thread_id = await thread_of(tenant, "bob")
    await thread_access.grant(user(tenant, "bob"), thread_id, "alice")
    await service.delete_thread(tenant, thread_id)
    assert await js.count(Thread, id=thread_id) == 0
    assert await js.count(ThreadGrant, thread_id=thread_id) == 0


async def test_detaching_a_stateless_thread_deletes_its_grants(job_db: js.JobDb) -> None:
    """The end of a stateless run deletes its thread and grants but keeps the run."""
    tenant = await js.make_tenant()
    thread_id = await thread_of(tenant, "bob")
    run_id = await js.make_run(tenant, thread_id, created_at=utcnow())
    await thread_access.grant(user(tenant, "bob"), thread_id, "alice")
    await direct.write(lambda tx: records.detach_thread(tx, tenant_id=tenant, thread_id=thread_id))
    assert await js.count(ThreadGrant, thread_id=thread_id) == 0
    assert await js.count(Run, id=run_id, thread_id=None) == 1


async def test_the_retention_purge_deletes_grants_of_old_threads(job_db: js.JobDb) -> None:
    """purge_retention removes an old, granted thread with its grants; a recent one stays."""
    tenant = await js.make_tenant()
    old = await thread_of(tenant, "bob", updated_at=utcnow() - timedelta(days=200))
    recent = await thread_of(tenant, "bob")
    for thread_id in (old, recent):
        await thread_access.grant(user(tenant, "bob"), thread_id, "alice")
    totals = await purge()
    assert totals["threads"] == 1
    assert await js.count(ThreadGrant, thread_id=old) == 0
    assert await js.count(ThreadGrant, thread_id=recent) == 1


async def test_a_users_run_without_a_thread_stays_theirs(job_db: js.JobDb) -> None:
    """A threadless run is visible to the user who started it, not to another user."""
    tenant = await js.make_tenant()
    run_id = await js.make_run(tenant, None, created_at=utcnow(), user_id="alice")
    assert (await protocol.get_run(user(tenant, "alice"), run_id)).id == run_id
    found = await protocol.search_runs(user(tenant, "bob"), protocol.RunSearch())
    assert run_id not in {r["run_id"] for r in found}


async def _fire_cron_of(principal: Principal, *, thread_id: str | None = None) -> str:
    """Create a yearly cron as `principal`, fire its first occurrence; return the cron id."""
    body = cron_api.CronCreate(schedule=YEARLY, agent_id="assistant", input="ping")
    created = await cron_api.create_cron(principal, body, thread_id=thread_id, now=T0)
    await crons.dispatch_due(now=datetime(2032, 1, 1, 0, 0, 30, tzinfo=UTC))
    return str(created["cron_id"])


async def test_a_users_cron_makes_threads_they_own(job_db: js.JobDb) -> None:
    """A stateless cron created by a user runs as that user, on a new thread they own."""
    tenant = await js.make_tenant()
    cron_id = await _fire_cron_of(user(tenant, "alice"))
    async with db_session() as db:
        fire = (await db.exec(select(CronFire).where(CronFire.cron_id == cron_id))).one()
        run = await db.get(Run, fire.run_id)
        assert run is not None and run.user_id == "alice"
        thread = await db.get(Thread, (run.thread_id, run.tenant_id))
    assert thread is not None and thread.owner_id == "alice"


async def test_an_api_key_cron_acts_as_the_key(job_db: js.JobDb) -> None:
    """A cron created by an API key makes ownerless threads and records the key as its user."""
    tenant = await js.make_tenant()
    cron_id = await _fire_cron_of(Principal(tenant, "key-1"))
    async with db_session() as db:
        fire = (await db.exec(select(CronFire).where(CronFire.cron_id == cron_id))).one()
        run = await db.get(Run, fire.run_id)
        assert run is not None and run.user_id == "key-1"
        thread = await db.get(Thread, (run.thread_id, run.tenant_id))
    assert thread is not None and thread.owner_id is None


async def test_a_cron_stops_when_its_user_loses_the_thread(job_db: js.JobDb) -> None:
    """A grantee's thread cron fires nothing once the grant is revoked, and is stopped."""
    tenant = await js.make_tenant()
    thread_id = await thread_of(tenant, "bob")
    await thread_access.grant(user(tenant, "bob"), thread_id, "alice")
    body = cron_api.CronCreate(schedule=YEARLY, agent_id="assistant", input="ping")
    created = await cron_api.create_cron(user(tenant, "alice"), body, thread_id=thread_id, now=T0)
    await thread_access.revoke(user(tenant, "bob"), thread_id, "alice")
    [fired] = await crons.dispatch_due(now=datetime(2032, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert fired.cron_id == created["cron_id"] and fired.run_id is None
    async with db_session() as db:
        cron = await db.get(Cron, created["cron_id"])
        stmt = select(CronFire).where(CronFire.cron_id == created["cron_id"])
        fire = (await db.exec(stmt)).one()
    assert cron is not None and cron.next_run_at is None
    assert fire.error == "thread not accessible"
    assert await js.count(Run, thread_id=thread_id) == 0


async def test_a_cron_stored_before_owners_keeps_tenant_wide_access(job_db: js.JobDb) -> None:
    """A cron whose payload predates owners acts tenant-wide: it still runs on its thread."""
    tenant = await js.make_tenant()
    thread_id = await thread_of(tenant, None)
    async with db_session() as db:
        db.add(
            Cron(
                tenant_id=tenant,
                user_id="u-legacy",
                agent="assistant",
                thread_id=thread_id,
                schedule=YEARLY,
                payload={"input": [{"role": "user", "content": "ping"}], "on_completion": "keep"},
                metadata_={},
                next_run_at=datetime(2032, 1, 1, tzinfo=UTC),
            )
        )
        await db.commit()
    [fired] = await crons.dispatch_due(now=datetime(2032, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert fired.run_id is not None
