"""Conversation sessions: the Agents SDK `Session` of a thread, on the backend settings choose.

`SESSION_BACKEND` picks where a thread's history lives; the code that runs agents only ever
calls `build_session(tenant_id, thread_id)`:

- `sql` (default): the SDK's `SQLAlchemySession` on the process-wide engine (SQLite, Postgres,
  CockroachDB). It has no TTL: expiring old SQL history is a retention job's work (an ACA
  Job deleting old rows), not the session's.
- `redis`: the SDK's `RedisSession` on a `redis.asyncio` client built from `REDIS_URL`.
- `upstash`: `UpstashRedisSession` below, over the `upstash-redis` REST client
  (`UPSTASH_REDIS_REST_URL` / `UPSTASH_REDIS_REST_TOKEN`), with the same keys and semantics as
  `RedisSession`, so the two can read each other's data.
- `dapr`: the SDK's `DaprSession` on the sidecar's state store `DAPR_STATE_STORE`, through the
  `dapr` SDK's gRPC client on `DAPR_GRPC_PORT` (ACA sets the ports when Dapr is on).

`SESSION_TTL_SECONDS` applies to every backend for which `supports_ttl()` is true.

Runs on the `sql` backend use `HistoryBuffer` instead: the history is read once before the
run and its items are written in the transaction that records its outcome.

Clients are built once per process, lazily, on the first session that needs them (never at
import), and shared by every session: a session never owns or closes its client. Async clients
belong to the event loop that first used them, which is one loop per Functions worker;
`close_clients()` closes and forgets them (tests call it between event loops).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Final, Literal, cast, get_args

from agents.extensions.memory import SQLAlchemySession
from agents.memory import Session, SessionABC
from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)
from sqlalchemy import (
    TIMESTAMP,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from shared.core.services import service
from shared.core.settings import get_settings
from shared.db.engine import get_engine

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from dapr.aio.clients import DaprClient
    from redis.asyncio import Redis
    from upstash_redis.asyncio import Redis as UpstashRedis

SessionBackendName = Literal["sql", "redis", "upstash", "dapr"]

SESSION_BACKENDS: Final[tuple[SessionBackendName, ...]] = get_args(SessionBackendName)

# Backends whose store expires history itself. SQL is not one: SESSION_TTL_SECONDS has no
# effect there, and old SQL history is a retention job's to delete.
_TTL_BACKENDS: Final[frozenset[SessionBackendName]] = frozenset({"redis", "upstash", "dapr"})

# The key prefix the SDK's RedisSession uses; UpstashRedisSession shares it (and the layout).
REDIS_KEY_PREFIX: Final = "agents:session"


def session_key(tenant_id: str, thread_id: str) -> str:
    """The session id of a thread: the tenant is part of it, so histories never mix."""
    return f"{tenant_id}:{thread_id}"


def supports_ttl(backend: SessionBackendName) -> bool:
    """Whether a backend expires history after `SESSION_TTL_SECONDS` by itself."""
    return backend in _TTL_BACKENDS


def build_session(tenant_id: str, thread_id: str) -> Session:
    """The conversation memory of a tenant's thread, on the configured backend."""
    settings = get_settings()
    sid = session_key(tenant_id, thread_id)
    ttl = settings.session_ttl_seconds
    backend = settings.session_backend
    if backend == "redis":
        from agents.extensions.memory import RedisSession

        return RedisSession(sid, redis_client=_redis_client(), key_prefix=REDIS_KEY_PREFIX, ttl=ttl)
    if backend == "upstash":
        return UpstashRedisSession(sid, client=_upstash_client(), ttl=ttl)
    if backend == "dapr":
        from agents.extensions.memory import DaprSession

        return DaprSession(
            sid,
            state_store_name=settings.dapr_state_store,
            dapr_client=_dapr_client(),
            ttl=ttl,
        )
    return SQLAlchemySession(sid, engine=get_engine())


@service("session_redis")
def _redis_client() -> Redis:
    import redis.asyncio

    url = get_settings().redis_url
    if not url:  # the settings validator already requires it for SESSION_BACKEND=redis
        raise RuntimeError("REDIS_URL is not set")
    return redis.asyncio.Redis.from_url(url)


@service("session_upstash")
def _upstash_client() -> UpstashRedis:
    from upstash_redis.asyncio import Redis as UpstashRedis

    settings = get_settings()
    url, token = settings.upstash_redis_rest_url, settings.upstash_redis_rest_token
    if not url or token is None:  # the settings validator already requires both
        raise RuntimeError("UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are not set")
    return UpstashRedis(url.rstrip("/"), token.get_secret_value(), allow_telemetry=False)


@service("session_dapr")
def _dapr_client() -> DaprClient:
    from dapr.aio.clients import DaprClient

    # The SDK resolves the sidecar from the same environment the settings read
    # (DAPR_GRPC_PORT, DAPR_HTTP_PORT, or DAPR_GRPC_ENDPOINT / DAPR_RUNTIME_HOST when set), so
    # its health probe and its channel always agree. The constructor waits synchronously (up to
    # DAPR_HEALTH_TIMEOUT) for /v1.0/healthz/outbound: once per process.
    return DaprClient()


async def close_clients() -> None:
    """Close the session clients this process built (if any) and forget them."""
    if _redis_client.is_built():
        await _redis_client().aclose()
    if _upstash_client.is_built():
        await _upstash_client().close()
    if _dapr_client.is_built():
        # The dapr SDK leaves close() unannotated.
        await _dapr_client().close()  # type: ignore[no-untyped-call]
    for factory in (_redis_client, _upstash_client, _dapr_client):
        factory.cache_clear()


# The SDK's session tables (created by migrations/versions/0001_baseline.py with the SDK's own
# definition), for writes that join the caller's transaction.
_TABLES = MetaData()
_SESSIONS = Table(
    "agent_sessions",
    _TABLES,
    Column("session_id", String, primary_key=True),
    Column("updated_at", TIMESTAMP(timezone=False)),
)
_MESSAGES = Table(
    "agent_messages",
    _TABLES,
    Column("id", Integer, primary_key=True),
    Column("session_id", String),
    Column("message_data", Text),
    Column("created_at", TIMESTAMP(timezone=False)),
)


# Built once: the run engine reads and writes history on every run.
_READ = (
    select(_MESSAGES.c.message_data)
    .where(_MESSAGES.c.session_id == bindparam("session_id"))
    .order_by(_MESSAGES.c.created_at, _MESSAGES.c.id)
)
_INSERT_MESSAGES = insert(_MESSAGES)
# One statement creates the session row or touches its updated_at, as the SDK does; SQLite's
# form, and Postgres's (CockroachDB speaks its dialect).
_TOUCH = {
    name: dialect_insert(_SESSIONS)
    .values(session_id=bindparam("session_id"))
    .on_conflict_do_update(
        index_elements=[_SESSIONS.c.session_id], set_={"updated_at": func.current_timestamp()}
    )
    for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
}
_CLEAR = (
    delete(_MESSAGES).where(_MESSAGES.c.session_id == bindparam("session_id")),
    delete(_SESSIONS).where(_SESSIONS.c.session_id == bindparam("session_id")),
)


def read_history(conn: Connection, session_id: str) -> list[TResponseInputItem]:
    """A SQL session's history, oldest first, read on `conn` (sync; the run engine's units)."""
    rows = conn.execute(_READ, {"session_id": session_id})
    return [json.loads(row[0]) for row in rows]


def stage_history(conn: Connection, session_id: str, items: list[TResponseInputItem]) -> None:
    """Append items to a SQL session's history on `conn`, in the caller's transaction."""
    if not items:
        return
    conn.execute(_TOUCH[conn.dialect.name], {"session_id": session_id})
    conn.execute(
        _INSERT_MESSAGES,
        [
            {"session_id": session_id, "message_data": json.dumps(i, separators=(",", ":"))}
            for i in items
        ],
    )


def clear_history(conn: Connection, session_id: str) -> None:
    """Delete a SQL session's history on `conn` (a no-op for the other backends' sessions)."""
    for statement in _CLEAR:
        conn.execute(statement, {"session_id": session_id})


class HistoryBuffer(SessionABC):
    """A thread's SQL history for one run: read before it starts, written when it ends.

    For the `sql` backend only. The SDK appends to its session twice per turn (the input,
    then the output), each append its own transaction; this keeps appends in memory and the run
    engine writes `pending` in the transaction that records the run's outcome
    (`stage_history`), so a turn's history and its answer become durable together or not at
    all, and a run that dies midway leaves no partial turn behind. Correct only while the run
    holds its thread (one active run per thread): nothing else appends meanwhile.
    """

    def __init__(self, session_id: str, stored: list[TResponseInputItem]) -> None:
        """The history as stored (read by the caller, or empty for a new thread)."""
        self.session_id = session_id
        self.session_settings = SessionSettings()
        self._stored = stored
        self._pending: list[TResponseInputItem] = []

    @property
    def stored_length(self) -> int:
        """How many items the history held before this run."""
        return len(self._stored)

    @property
    def pending(self) -> list[TResponseInputItem]:
        """Items appended by this run (oldest first), to be written with its outcome."""
        return list(self._pending)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The stored history followed by this run's items; the latest `limit`."""
        items = self._stored + self._pending
        if limit is None:
            return items
        return items[-limit:] if limit > 0 else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append in memory."""
        self._pending.extend(items)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove this run's newest item (stored history is never popped)."""
        return self._pending.pop() if self._pending else None

    async def clear_session(self) -> None:
        """Forget this run's items."""
        self._pending.clear()


class UpstashRedisSession(SessionABC):
    """A `Session` over the Upstash Redis REST API, with `RedisSession`'s keys and semantics.

    Keys, under `agents:session:<session_id>`: a hash of `session_id` / `created_at` /
    `updated_at`, the `:messages` list of JSON items (oldest first), and `:counter`. An append
    is one MULTI/EXEC transaction (metadata, RPUSH, and the TTL on every key when set), so
    concurrent writers from any number of processes never lose an item. A pop is one RPOP.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        *,
        client: UpstashRedis,
        key_prefix: str = REDIS_KEY_PREFIX,
        ttl: int | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        """Use an existing `upstash_redis.asyncio.Redis` client (the caller closes it)."""
        if ttl is not None and ttl < 1:
            raise ValueError("ttl must be at least one second")
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._client = client
        self._ttl = ttl
        self._session_key = f"{key_prefix}:{session_id}"
        self._messages_key = f"{self._session_key}:messages"
        self._counter_key = f"{self._session_key}:counter"

    @staticmethod
    def _decode(raw: str) -> TResponseInputItem | None:
        try:
            return cast("TResponseInputItem", json.loads(raw))
        except (json.JSONDecodeError, TypeError):
            return None  # a corrupt entry is skipped, as RedisSession does

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history, oldest first; with a limit, the latest `limit` items."""
        session_limit = resolve_session_limit(limit, self.session_settings)
        if session_limit is None:
            raw = await self._client.lrange(self._messages_key, 0, -1)
            return [item for item in map(self._decode, raw) if item is not None]
        if session_limit <= 0:
            return []
        # Widen the window while corrupt entries hide valid ones among the newest.
        window = session_limit
        while True:
            raw = await self._client.lrange(self._messages_key, -window, -1)
            items = [item for item in map(self._decode, raw) if item is not None]
            if len(items) >= session_limit or len(raw) < window:
                return items[-session_limit:]
            window *= 2

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append items atomically, refreshing the TTL of every session key when one is set."""
        if not items:
            return
        serialized = [json.dumps(item, separators=(",", ":")) for item in items]
        now = str(int(time.time()))
        tx = self._client.multi()
        tx.hset(self._session_key, "session_id", self.session_id)
        tx.hsetnx(self._session_key, "created_at", now)
        tx.rpush(self._messages_key, *serialized)
        tx.hset(self._session_key, "updated_at", now)
        if self._ttl is not None:
            for key in (self._session_key, self._messages_key, self._counter_key):
                tx.expire(key, self._ttl)
        await tx.exec()  # raises UpstashError when any command in it failed

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (skipping corrupt ones); None when empty."""
        while True:
            raw = cast("str | None", await self._client.rpop(self._messages_key))
            if raw is None:
                return None
            item = self._decode(raw)
            if item is not None:
                return item

    async def clear_session(self) -> None:
        """Delete every key of this session."""
        await self._client.delete(self._session_key, self._messages_key, self._counter_key)


__all__ = [
    "REDIS_KEY_PREFIX",
    "SESSION_BACKENDS",
    "HistoryBuffer",
    "SessionBackendName",
    "UpstashRedisSession",
    "build_session",
    "clear_history",
    "close_clients",
    "read_history",
    "session_key",
    "stage_history",
    "supports_ttl",
]
