"""Per-tenant budgets: a tenant's overrides (`tenant_limits`) over the deployment defaults.

Four budgets, each overridable per tenant: requests per minute (per tenant), requests per
minute per key or token user, concurrent runs, tokens per UTC day. The defaults are the
settings ASCENT_RATE_LIMIT_PER_MINUTE, ASCENT_KEY_RATE_LIMIT_PER_MINUTE,
ASCENT_MAX_CONCURRENT_RUNS and ASCENT_TOKENS_PER_DAY. In a tenant's row a NULL column means
"the default" and 0 turns that budget off for the tenant, as 0 does for the settings.
shared/security/ratelimit.py enforces `effective_limits(tenant)`.

Resolution is on the hot path of every request (`principal_of` → `enforce_request_rate`), so
a tenant's overrides are cached at two levels and a request normally does no I/O for them:

1. in process, for LOCAL_TTL_SECONDS (5 s): a hit costs nothing;
2. in Redis (shared/platform/cache.py, only with REDIS_URL) as `ascent:limits:<tenant>`, for
   REDIS_TTL_SECONDS: an expired local entry costs one GET, not a database query;
3. the `tenant_limits` row otherwise (one primary-key read), written back to Redis.

**Bound on staleness: a change applies at once on the process that served the PUT, and within
LOCAL_TTL_SECONDS everywhere else** (other instances, other worker processes). The PUT commits,
stores the new overrides in its own process cache and overwrites the Redis entry (delete, then
set), so the next local refresh anywhere reads the new value. Fills from the database use SET NX,
so a fill that read the row just before the commit cannot put the old value back after the
writer's set. Without Redis the bound is the same: each process re-reads the row every
LOCAL_TTL_SECONDS. If Redis does not answer the PUT's delete, the PUT answers 503 (the change is
saved; retrying the idempotent call finishes the invalidation); until then an instance may keep
reading the old entry from Redis for up to REDIS_TTL_SECONDS + LOCAL_TTL_SECONDS.

Failure policy: like the limiter (fail open), a database error while reading overrides (or a
database not yet migrated to 0010) falls back to the deployment defaults, logged once per outage,
and that fallback is kept LOCAL_TTL_SECONDS so a dead database is not asked on every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy import Row, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import NotFound, ServiceUnavailable
from shared.core.settings import get_settings
from shared.db import direct, repo
from shared.db.direct import Tx
from shared.db.models import utcnow
from shared.db.security_models import TenantLimits
from shared.platform import cache as cache_mod
from shared.platform.cache import CacheUnavailable

log = logging.getLogger(__name__)

LIMITS_CACHE_PREFIX = f"{cache_mod.NAMESPACE}limits:"
# The documented staleness bound on instances other than the one that served the change.
LOCAL_TTL_SECONDS = 5.0
# Only bounds staleness when an invalidation failed: writes overwrite the entry.
REDIS_TTL_SECONDS = 60
# A process serving more tenants than this drops expired entries, then everything, and refills.
MAX_LOCAL_ENTRIES = 10_000
# The columns are 32-bit INTEGERs (Postgres refuses more).
MAX_BUDGET = 2_147_483_647


@dataclass(frozen=True, slots=True)
class Budgets:
    """A tenant's effective budgets; 0 means that budget is off."""

    requests_per_minute: int
    key_requests_per_minute: int
    concurrent_runs: int
    tokens_per_day: int


@dataclass(frozen=True, slots=True)
class Overrides:
    """A tenant's own budgets; None means the deployment default."""

    requests_per_minute: int | None = None
    key_requests_per_minute: int | None = None
    concurrent_runs: int | None = None
    tokens_per_day: int | None = None

    @classmethod
    def of_row(cls, row: TenantLimits | Row[Any] | None) -> Overrides:
        """The overrides a `tenant_limits` row holds (none for a tenant without a row)."""
        if row is None:
            return NO_OVERRIDES
        return cls(
            requests_per_minute=row.requests_per_minute,
            key_requests_per_minute=row.key_requests_per_minute,
            concurrent_runs=row.concurrent_runs,
            tokens_per_day=row.tokens_per_day,
        )

    def over(self, defaults: Budgets) -> Budgets:
        """The effective budgets: each override, or the default where there is none."""

        def pick(own: int | None, default: int) -> int:
            return default if own is None else own

        return Budgets(
            requests_per_minute=pick(self.requests_per_minute, defaults.requests_per_minute),
            key_requests_per_minute=pick(
                self.key_requests_per_minute, defaults.key_requests_per_minute
            ),
            concurrent_runs=pick(self.concurrent_runs, defaults.concurrent_runs),
            tokens_per_day=pick(self.tokens_per_day, defaults.tokens_per_day),
        )

    def dumps(self) -> str:
        """Serialize for the cache."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> Overrides | None:
        """Parse a cached entry; None when it is not one (the caller then reads the database)."""
        try:
            data = json.loads(raw)
            values = {f.name: data[f.name] for f in fields(cls)}
        except (ValueError, TypeError, KeyError):
            return None
        if not all(v is None or (type(v) is int and v >= 0) for v in values.values()):
            return None
        return cls(**values)


NO_OVERRIDES = Overrides()


def default_budgets() -> Budgets:
    """The deployment's budgets, from settings.

    Caches hold overrides, never effective budgets, so a settings change needs no invalidation.
    """
    s = get_settings()
    return Budgets(
        requests_per_minute=s.rate_limit_per_minute,
        key_requests_per_minute=s.key_rate_limit_per_minute,
        concurrent_runs=s.max_concurrent_runs,
        tokens_per_day=s.tokens_per_day,
    )


def limits_cache_key(tenant_id: str) -> str:
    """The Redis key of a tenant's cached overrides."""
    return f"{LIMITS_CACHE_PREFIX}{tenant_id}"


class LimitsResolver:
    """Resolves tenants' overrides through a process cache, Redis and the database.

    One per process (`get_resolver`); tests build more, with a fake clock, to play the part of
    other instances sharing the same Redis and database.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, ttl: float = LOCAL_TTL_SECONDS
    ) -> None:
        """Start with an empty process cache whose entries live `ttl` seconds of `clock`."""
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Overrides]] = {}
        self._loading: dict[str, asyncio.Task[Overrides]] = {}
        self._db_degraded = False

    def remember(self, tenant_id: str, overrides: Overrides) -> None:
        """Keep a tenant's overrides in this process for the next `ttl` seconds."""
        now = self._clock()
        if len(self._entries) >= MAX_LOCAL_ENTRIES and tenant_id not in self._entries:
            self._entries = {t: e for t, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= MAX_LOCAL_ENTRIES:
                self._entries.clear()
        self._entries[tenant_id] = (now + self._ttl, overrides)

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant's entry from this process's cache."""
        self._entries.pop(tenant_id, None)

    async def overrides(self, tenant_id: str) -> Overrides:
        """The tenant's overrides: from this process, else Redis, else the database."""
        held = self._entries.get(tenant_id)
        if held is not None and held[0] > self._clock():
            return held[1]
        # One load per tenant at a time: a burst of requests after expiry shares it.
        loop = asyncio.get_running_loop()
        task = self._loading.get(tenant_id)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._load(tenant_id))
            self._loading[tenant_id] = task
            task.add_done_callback(lambda done: self._loaded(tenant_id, done))
        return await asyncio.shield(task)

    def _loaded(self, tenant_id: str, task: asyncio.Task[Overrides]) -> None:
        if self._loading.get(tenant_id) is task:
            del self._loading[tenant_id]
        if not task.cancelled() and task.exception() is None:
            self.remember(tenant_id, task.result())

    async def effective(self, tenant_id: str) -> Budgets:
        """The tenant's effective budgets under the current settings."""
        return (await self.overrides(tenant_id)).over(default_budgets())

    async def _load(self, tenant_id: str) -> Overrides:
        cache = cache_mod.get_cache()
        key = limits_cache_key(tenant_id)
        if cache is not None:
            raw = await cache.get(key)
            hit = Overrides.loads(raw) if raw is not None else None
            if hit is not None:
                return hit
        try:
            row = await direct.read(lambda tx: _limits_row(tx, tenant_id))
        except (SQLAlchemyError, OSError) as exc:
            if not self._db_degraded:
                self._db_degraded = True
                log.warning(
                    "tenant limits unavailable (%s); using the deployment defaults",
                    type(exc).__name__,
                )
            return NO_OVERRIDES  # never written to Redis: other instances may read the row
        if self._db_degraded:
            self._db_degraded = False
            log.info("tenant limits available again")
        found = Overrides.of_row(row)
        if cache is not None:
            await cache.set(key, found.dumps(), REDIS_TTL_SECONDS, only_if_absent=True)
        return found


def _limits_row(tx: Tx, tenant_id: str) -> Row[Any] | None:
    table = TenantLimits.__table__  # type: ignore[attr-defined]
    return tx.conn.execute(select(table).where(table.c.tenant_id == tenant_id)).first()


_resolver = LimitsResolver()


def get_resolver() -> LimitsResolver:
    """This process's resolver (its cache holds plain values, so it serves every event loop)."""
    return _resolver


async def effective_limits(tenant_id: str) -> Budgets:
    """The tenant's effective budgets (cached; see the module docstring for the bound)."""
    return await _resolver.effective(tenant_id)


async def publish_overrides(tenant_id: str, overrides: Overrides) -> None:
    """Make committed overrides current: in this process now, and in Redis for every instance.

    Raises CacheUnavailable when Redis does not answer the delete (see the module docstring).
    """
    _resolver.remember(tenant_id, overrides)
    cache = cache_mod.get_cache()
    if cache is None:
        return
    key = limits_cache_key(tenant_id)
    # Delete first, loudly: `set` only logs failures, and a stale entry must not survive silently.
    await cache.delete(key)
    await cache.set(key, overrides.dumps(), REDIS_TTL_SECONDS)


# --- admin API: GET/PUT /api/platform/tenants/{tenant_id}/limits -----------------------------

Budget = Annotated[StrictInt, Field(ge=0, le=MAX_BUDGET)]


class LimitOverrides(BaseModel):
    """Body of `PUT .../limits`: every budget, each an integer >= 0 (0 = off) or null (default).

    All four fields are required, so a PUT never resets a budget its author did not mention.
    """

    model_config = ConfigDict(extra="forbid")
    requests_per_minute: Budget | None = Field(
        description="Requests per minute for the whole tenant (ASCENT_RATE_LIMIT_PER_MINUTE)."
    )
    key_requests_per_minute: Budget | None = Field(
        description="Requests per minute per key or token user (ASCENT_KEY_RATE_LIMIT_PER_MINUTE)."
    )
    concurrent_runs: Budget | None = Field(
        description="Runs in flight at once (ASCENT_MAX_CONCURRENT_RUNS)."
    )
    tokens_per_day: Budget | None = Field(
        description="Model tokens per UTC day (ASCENT_TOKENS_PER_DAY)."
    )


class EffectiveLimits(BaseModel):
    """The budgets enforced for a tenant now (0 = off)."""

    requests_per_minute: int
    key_requests_per_minute: int
    concurrent_runs: int
    tokens_per_day: int


class TenantLimitsOut(BaseModel):
    """A tenant's budgets as the admin API shows them: its overrides and what they amount to."""

    tenant_id: str
    overrides: LimitOverrides
    effective: EffectiveLimits


def _limits_out(tenant_id: str, overrides: Overrides) -> TenantLimitsOut:
    return TenantLimitsOut(
        tenant_id=tenant_id,
        overrides=LimitOverrides(**asdict(overrides)),
        effective=EffectiveLimits(**asdict(overrides.over(default_budgets()))),
    )


async def require_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Raise NotFound (404) unless the tenant exists."""
    if await repo.get_tenant(session=session, tenant_id=tenant_id) is None:
        raise NotFound(f"No tenant {tenant_id!r}.")


async def get_tenant_limits(*, session: AsyncSession, tenant_id: str) -> TenantLimitsOut:
    """The tenant's overrides and effective budgets, read from the database (not a cache)."""
    await require_tenant(session, tenant_id)
    row = await session.get(TenantLimits, tenant_id)
    return _limits_out(tenant_id, Overrides.of_row(row))


async def set_tenant_limits(
    *, session: AsyncSession, tenant_id: str, body: LimitOverrides
) -> TenantLimitsOut:
    """Replace the tenant's overrides, then publish them (at once here, within 5 s elsewhere).

    503 when Redis does not answer the invalidation: the overrides are saved, and retrying the
    same PUT finishes the invalidation.
    """
    await require_tenant(session, tenant_id)
    row = await session.get(TenantLimits, tenant_id) or TenantLimits(tenant_id=tenant_id)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    overrides = Overrides(**body.model_dump())
    try:
        await publish_overrides(tenant_id, overrides)
    except CacheUnavailable:
        raise ServiceUnavailable(
            "The limits are saved, but the cache did not answer; retry so that every instance "
            f"applies them within {LOCAL_TTL_SECONDS:g} seconds."
        ) from None
    return _limits_out(tenant_id, overrides)
