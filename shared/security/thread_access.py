"""Which threads a principal sees within its tenant, and the grants that share a thread.

Visibility. A tenant-wide principal (`Principal.tenant_wide`: an API key, a user holding
ASCENT_TENANT_ADMIN_ROLE, or a cron created by either) sees every thread of its tenant. Any other
principal is a user, who sees a thread when they own it (`threads.owner_id`: the user who
created or copied it) or it was granted to them (`thread_grants`). A thread created without a
user (owner NULL: by an API key) is visible to users only through a grant. What hangs off a
thread follows it: its runs and their streams, its reviews, its crons. A run without a thread
(a stateless run, whose thread is deleted when it ends) is visible to tenant-wide principals
and to the user who started it.

A thread the principal may not see is answered exactly like a missing one (404, same body), so
another user's ids reveal nothing. The conditions are SQL (`thread_visible`, `run_visible`, ...),
so searches filter and page over visible rows in the database.

Grants. The thread's owner or a tenant-wide principal lists, grants (idempotent) and revokes
(idempotent) a user's access; a grantee may use the thread but not manage its grants (403).
A grant names a user id as the tokens carry it (`oid`, else `sub`) and gives full use of the
thread - read, run, patch, copy, delete - but not its grants. Deleting a thread deletes its
grants first (shared/db/repo.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import and_, delete, exists, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from shared.core.errors import Forbidden, NotFound, ValidationFailed
from shared.db.engine import db_session
from shared.db.jobs_models import Cron
from shared.db.models import Run, Thread, ThreadGrant
from shared.db.review_models import Review
from shared.security.auth import Principal

MAX_USER_ID_CHARS = 200  # thread_grants.user_id and threads.owner_id


# --- visibility ------------------------------------------------------------------------------


def owner_for(principal: Principal) -> str | None:
    """The owner of a thread this principal creates: its user (tenant admins too), else None."""
    return principal.user_id


def _granted(principal: Principal) -> ColumnElement[bool]:
    return exists(
        select(ThreadGrant.thread_id).where(
            col(ThreadGrant.thread_id) == col(Thread.id),
            col(ThreadGrant.tenant_id) == principal.tenant_id,
            col(ThreadGrant.user_id) == principal.user_id,
        )
    )


def thread_visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on `threads`: of the principal's tenant, and visible to it."""
    same_tenant = col(Thread.tenant_id) == principal.tenant_id
    if principal.tenant_wide:
        return same_tenant
    return and_(same_tenant, or_(col(Thread.owner_id) == principal.user_id, _granted(principal)))


def visible_thread_ids(principal: Principal) -> SelectOfScalar[str]:
    """A subquery of the ids of the threads the principal sees."""
    return select(Thread.id).where(thread_visible(principal))


def run_visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on `runs`: the run's thread is visible, or it has none and is the user's."""
    same_tenant = col(Run.tenant_id) == principal.tenant_id
    if principal.tenant_wide:
        return same_tenant
    on_visible_thread = col(Run.thread_id).in_(visible_thread_ids(principal))
    own_threadless = and_(col(Run.thread_id).is_(None), col(Run.user_id) == principal.user_id)
    return and_(same_tenant, or_(on_visible_thread, own_threadless))


def review_visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on `reviews`: of the tenant, on a thread the principal sees."""
    same_tenant = col(Review.tenant_id) == principal.tenant_id
    if principal.tenant_wide:
        return same_tenant
    return and_(same_tenant, col(Review.thread_id).in_(visible_thread_ids(principal)))


def cron_visible(principal: Principal) -> ColumnElement[bool]:
    """SQL condition on `crons`: the user's own crons and the crons of threads it sees."""
    same_tenant = col(Cron.tenant_id) == principal.tenant_id
    if principal.tenant_wide:
        return same_tenant
    on_visible_thread = col(Cron.thread_id).in_(visible_thread_ids(principal))
    return and_(same_tenant, or_(col(Cron.user_id) == principal.user_id, on_visible_thread))


async def find_thread(db: AsyncSession, principal: Principal, thread_id: str) -> Thread | None:
    """The thread with this id if the principal sees it, else None (missing or not visible)."""
    stmt = select(Thread).where(col(Thread.id) == thread_id, thread_visible(principal))
    return (await db.exec(stmt)).first()


async def can_see(db: AsyncSession, principal: Principal, thread: Thread) -> bool:
    """Whether the principal sees this loaded thread (one query for a user's grant)."""
    if thread.tenant_id != principal.tenant_id:
        return False
    if principal.tenant_wide or thread.owner_id == principal.user_id:
        return True
    grant = await db.get(ThreadGrant, (thread.id, principal.user_id, thread.tenant_id))
    return grant is not None and grant.tenant_id == principal.tenant_id


# --- grants ----------------------------------------------------------------------------------


class GrantOut(BaseModel):
    """A user's access to a thread, given by its owner or a tenant admin."""

    thread_id: str
    user_id: str
    granted_by: str
    created_at: datetime


class GrantList(BaseModel):
    """Response of `GET /threads/{thread_id}/grants`: oldest first."""

    thread_id: str
    owner_id: str | None
    grants: list[GrantOut]


def grant_out(grant: ThreadGrant) -> GrantOut:
    """A stored grant as the API shows it (SQLite hands timestamps back naive: they are UTC)."""
    moment = grant.created_at
    return GrantOut(
        thread_id=grant.thread_id,
        user_id=grant.user_id,
        granted_by=grant.granted_by,
        created_at=moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC),
    )


async def _managed_thread(db: AsyncSession, principal: Principal, thread_id: str) -> Thread:
    """The thread, if the principal may manage its grants: 404 unseen, 403 for a grantee."""
    thread = await find_thread(db, principal, thread_id)
    if thread is None:
        raise NotFound(f"No thread {thread_id!r}.")
    if not (principal.tenant_wide or thread.owner_id == principal.user_id):
        raise Forbidden("Only the thread's owner or a tenant admin manages its grants.")
    return thread


def _check_user_id(user_id: str) -> str:
    if not user_id or len(user_id) > MAX_USER_ID_CHARS or user_id != user_id.strip():
        raise ValidationFailed(
            f"user_id must be 1 to {MAX_USER_ID_CHARS} characters without surrounding spaces.",
            errors=[{"loc": ["path", "user_id"], "msg": "invalid user id", "type": "value_error"}],
        )
    return user_id


def _granter(principal: Principal) -> str:
    return principal.user_id or f"key:{principal.key_id}"


async def list_grants(principal: Principal, thread_id: str) -> GrantList:
    """The users a thread is granted to (owner or tenant-wide principals only)."""
    async with db_session() as db:
        thread = await _managed_thread(db, principal, thread_id)
        stmt = (
            select(ThreadGrant)
            .where(
                col(ThreadGrant.tenant_id) == principal.tenant_id,
                col(ThreadGrant.thread_id) == thread.id,
            )
            .order_by(col(ThreadGrant.created_at), col(ThreadGrant.user_id))
        )
        grants = (await db.exec(stmt)).all()
    return GrantList(
        thread_id=thread.id, owner_id=thread.owner_id, grants=[grant_out(g) for g in grants]
    )


async def grant(principal: Principal, thread_id: str, user_id: str) -> GrantOut:
    """Give a user of the tenant access to the thread; granting twice changes nothing."""
    async with db_session() as db:
        thread = await _managed_thread(db, principal, thread_id)
        _check_user_id(user_id)
        found = await db.get(ThreadGrant, (thread.id, user_id, thread.tenant_id))
        if found is not None:
            return grant_out(found)
        row = ThreadGrant(
            thread_id=thread.id,
            user_id=user_id,
            tenant_id=principal.tenant_id,
            granted_by=_granter(principal),
        )
        db.add(row)
        try:
            await db.commit()
        except IntegrityError:
            # A concurrent PUT of the same grant won (or the thread was deleted meanwhile).
            await db.rollback()
            found = await db.get(ThreadGrant, (thread.id, user_id, thread.tenant_id))
            if found is None:
                raise NotFound(f"No thread {thread_id!r}.") from None
            return grant_out(found)
        return grant_out(row)


async def revoke(principal: Principal, thread_id: str, user_id: str) -> None:
    """Take a user's access to the thread away (idempotent: no grant is fine too)."""
    async with db_session() as db:
        thread = await _managed_thread(db, principal, thread_id)
        _check_user_id(user_id)
        await db.exec(
            delete(ThreadGrant).where(
                col(ThreadGrant.tenant_id) == principal.tenant_id,
                col(ThreadGrant.thread_id) == thread.id,
                col(ThreadGrant.user_id) == user_id,
            )
        )
        await db.commit()
