"""User-defined scheduled runs (LangGraph's crons): create, search, count, update and delete
them. A cron is enabled while it has a next run (`enabled: false` clears it; `true` schedules
the next occurrence after now).

Firing is the run engine's (shared/runs/crons.py, the `dispatch_crons` job), which also
documents when a cron runs, who its runs act as, and the missed-occurrence policy.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func
from sqlmodel import col, select

from shared.agents import configured
from shared.api import protocol
from shared.core.errors import Conflict, NotFound, ValidationFailed
from shared.core.settings import get_settings
from shared.core.validation import MAX_OFFSET, JsonInt
from shared.db.engine import db_session
from shared.db.jobs_models import Cron
from shared.db.models import utcnow
from shared.db.types import as_utc
from shared.runs.crons import CRON_PATTERN, next_occurrence, validate_schedule
from shared.security import thread_access
from shared.security.auth import Principal
from shared.security.data_policy import policy_for

Json = dict[str, Any]
MAX_PAGE = 1000


# --- request bodies --------------------------------------------------------------------------


class CronCreate(BaseModel):
    """Body of `POST /runs/crons` and `POST /threads/{thread_id}/runs/crons`."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=protocol.INPUT_REQUIRED)

    schedule: str = Field(
        max_length=120,
        description="5-field cron expression, in UTC.",
        json_schema_extra={"pattern": CRON_PATTERN},
    )
    agent_id: str | None = Field(None, max_length=100)
    assistant_id: str | None = Field(None, max_length=100)
    input: protocol.RunInput = None
    messages: protocol.RunMessages = None
    metadata: Json | None = None
    config: Json | None = None
    thread_id: uuid.UUID | None = None
    end_time: datetime | None = Field(None, description="No run is scheduled after this time.")
    on_run_completed: Literal["delete", "keep"] | None = Field(
        None, description="Stateless crons: delete each run's new thread when it ends (default)."
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        return validate_schedule(value)

    @property
    def agent(self) -> str:
        """The agent to run: agent_id, or its LangGraph synonym assistant_id, or the default."""
        return self.agent_id or self.assistant_id or get_settings().default_agent


class CronSearch(BaseModel):
    """Body of `POST /runs/crons/search`."""

    model_config = ConfigDict(extra="ignore")

    agent_id: str | None = Field(None, max_length=100)
    assistant_id: str | None = Field(None, max_length=100)
    thread_id: uuid.UUID | None = None
    metadata: Json | None = None
    limit: JsonInt = Field(10, ge=1, le=MAX_PAGE)
    offset: JsonInt = Field(0, ge=0, le=MAX_OFFSET)


class CronCount(BaseModel):
    """Body of `POST /runs/crons/count`: the search filters, without paging."""

    model_config = ConfigDict(extra="ignore")

    agent_id: str | None = Field(None, max_length=100)
    assistant_id: str | None = Field(None, max_length=100)
    thread_id: uuid.UUID | None = None
    metadata: Json | None = None


class CronUpdate(BaseModel):
    """Body of `PATCH /runs/crons/{cron_id}`: the fields to change (absent ones are kept;
    `end_time: null` clears the end)."""

    model_config = ConfigDict(extra="ignore")

    schedule: str | None = Field(None, max_length=120, json_schema_extra={"pattern": CRON_PATTERN})
    end_time: datetime | None = None
    input: str | Json | list[Json] | None = None
    messages: list[Json] | None = None
    metadata: Json | None = None
    config: Json | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return None if value is None else validate_schedule(value)


# --- service ---------------------------------------------------------------------------------


def cron_json(cron: Cron) -> Json:
    """A cron in LangGraph's shape (with `agent_id` alongside `assistant_id`)."""

    def iso(moment: datetime | None) -> str | None:
        return as_utc(moment).isoformat() if moment is not None else None

    return {
        "cron_id": cron.id,
        "assistant_id": cron.agent,
        "agent_id": cron.agent,
        "thread_id": cron.thread_id,
        "user_id": cron.user_id,
        "schedule": cron.schedule,
        "payload": cron.payload,
        "metadata": cron.metadata_ or {},
        "next_run_date": iso(cron.next_run_at),
        "enabled": cron.next_run_at is not None,
        "end_time": iso(cron.end_time),
        "created_at": iso(cron.created_at),
        "updated_at": iso(cron.updated_at),
    }


async def create_cron(
    principal: Principal,
    body: CronCreate,
    *,
    thread_id: str | None = None,
    now: datetime | None = None,
) -> Json:
    """Validate and store a cron; its first run is the first occurrence after `now`."""
    tenant = principal.tenant_id
    # A catalog agent or the tenant's assistant (each run uses its latest version then).
    await configured.resolve(tenant, body.agent)
    run_body = protocol.RunCreate(
        agent_id=body.agent, input=body.input, messages=body.messages, config=body.config
    )
    # The tenant's data policy before the cron stores its input: its runs reuse the stored
    # (checked) input, so a policy changed later applies to crons created or updated after it.
    items = (await policy_for(tenant)).check_items(protocol.normalize_input(run_body)) or []
    tid = thread_id or (str(body.thread_id) if body.thread_id else None)
    moment = now or utcnow()
    first = next_occurrence(body.schedule, moment)
    end = as_utc(body.end_time) if body.end_time is not None else None
    if end is not None and first > end:
        raise ValidationFailed("end_time is before the schedule's first occurrence.")
    async with db_session() as db:
        if tid is not None and await thread_access.find_thread(db, principal, tid) is None:
            raise NotFound(f"No thread {tid!r}.")
        limit = get_settings().max_crons
        count = (
            await db.exec(select(func.count()).select_from(Cron).where(Cron.tenant_id == tenant))
        ).one()
        if count >= limit:
            raise Conflict(f"The tenant already has {limit} crons (ASCENT_MAX_CRONS).")
        cron = Cron(
            tenant_id=tenant,
            user_id=principal.user_id or principal.key_id,
            agent=body.agent,
            thread_id=tid,
            schedule=body.schedule,
            payload={
                "input": items,
                "config": body.config or {},
                "on_completion": body.on_run_completed or ("keep" if tid else "delete"),
                # Who the runs act as (see "Who a cron acts as" above).
                "owner_id": principal.user_id,
                "tenant_admin": principal.tenant_admin,
            },
            metadata_=body.metadata or {},
            next_run_at=first,
            end_time=end,
            created_at=moment,
            updated_at=moment,
        )
        db.add(cron)
        await db.commit()
    return cron_json(cron)


async def search_crons(principal: Principal, body: CronSearch) -> list[Json]:
    """The crons the principal sees, filtered by agent, thread and metadata, oldest first."""
    stmt = select(Cron).where(thread_access.cron_visible(principal))
    agent = body.agent_id or body.assistant_id
    if agent is not None:
        stmt = stmt.where(Cron.agent == agent)
    if body.thread_id is not None:
        stmt = stmt.where(Cron.thread_id == str(body.thread_id))
    stmt = stmt.order_by(col(Cron.created_at), col(Cron.id))
    async with db_session() as db:
        crons = (await db.exec(stmt)).all()
    wanted = body.metadata or {}
    found = [c for c in crons if all((c.metadata_ or {}).get(k) == v for k, v in wanted.items())]
    return [cron_json(c) for c in found[body.offset : body.offset + body.limit]]


def _visible_crons(principal: Principal, agent: str | None, thread_id: uuid.UUID | None) -> Any:
    stmt = select(Cron).where(thread_access.cron_visible(principal))
    if agent is not None:
        stmt = stmt.where(Cron.agent == agent)
    if thread_id is not None:
        stmt = stmt.where(Cron.thread_id == str(thread_id))
    return stmt


async def count_crons(principal: Principal, body: CronCount) -> int:
    """How many of the crons the principal sees match the filters."""
    stmt = _visible_crons(principal, body.agent_id or body.assistant_id, body.thread_id)
    async with db_session() as db:
        crons = (await db.exec(stmt)).all()
    wanted = body.metadata or {}
    return sum(1 for c in crons if all((c.metadata_ or {}).get(k) == v for k, v in wanted.items()))


async def update_cron(
    principal: Principal, cron_id: str, body: CronUpdate, *, now: datetime | None = None
) -> Json:
    """Change a cron the principal sees; a new schedule or re-enabling schedules the next
    occurrence after `now`."""
    cid = protocol.parse_id(cron_id, "cron")
    moment = now or utcnow()
    async with db_session() as db:
        cron = (
            await db.exec(
                select(Cron).where(col(Cron.id) == cid, thread_access.cron_visible(principal))
            )
        ).first()
        if cron is None:
            raise NotFound(f"No cron {cron_id!r}.")
        payload = dict(cron.payload or {})
        if body.input is not None or body.messages is not None:
            run_body = protocol.RunCreate(
                agent_id=cron.agent, input=body.input, messages=body.messages
            )
            policy = await policy_for(principal.tenant_id)
            payload["input"] = policy.check_items(protocol.normalize_input(run_body)) or []
        if body.config is not None:
            payload["config"] = body.config
        if body.on_run_completed is not None:
            payload["on_completion"] = body.on_run_completed
        cron.payload = payload
        if body.metadata is not None:
            cron.metadata_ = {**(cron.metadata_ or {}), **body.metadata}
        if "end_time" in body.model_fields_set:
            cron.end_time = as_utc(body.end_time) if body.end_time is not None else None
        if body.schedule is not None:
            cron.schedule = body.schedule
        enabled = cron.next_run_at is not None if body.enabled is None else body.enabled
        reschedule = body.schedule is not None or (body.enabled and cron.next_run_at is None)
        if not enabled:
            cron.next_run_at = None
        elif reschedule:
            cron.next_run_at = next_occurrence(cron.schedule, moment)
        cron.updated_at = moment
        db.add(cron)
        await db.commit()
        await db.refresh(cron)
    return cron_json(cron)


async def delete_cron(principal: Principal, cron_id: str) -> None:
    """Delete a cron the principal sees (404 for another tenant's, an unseen or a missing one)."""
    cid = protocol.parse_id(cron_id, "cron")
    async with db_session() as db:
        cron = (
            await db.exec(
                select(Cron).where(col(Cron.id) == cid, thread_access.cron_visible(principal))
            )
        ).first()
        if cron is None:
            raise NotFound(f"No cron {cron_id!r}.")
        await db.delete(cron)
        await db.commit()
