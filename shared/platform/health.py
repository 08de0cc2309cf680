"""Health checks: ping every backend the process depends on, through the service registry.

Each dependency registers its ping with `SERVICES` here; a dependency this deployment does not
use (no REDIS_URL, no Dapr sidecar, no MCP tool server, the embedded queue that lives in the
database) answers "skip" and is left out of the report.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from shared.core.services import SERVICES
from shared.core.settings import get_settings
from shared.db.engine import get_engine
from shared.platform.cache import get_cache
from shared.platform.queues import RUNS_QUEUE, get_queue_backend

PROBE_TIMEOUT = httpx.Timeout(2.0)


async def ping_database() -> str | None:
    """The database answers `SELECT 1`."""
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))
    return None


async def ping_redis() -> str | None:
    """Redis (REDIS_URL) answers PING."""
    cache = get_cache()
    if cache is None:
        return "skip"
    await cache.ping()
    return None


async def ping_queue() -> str | None:
    """The Storage queue answers (the embedded queue is the database: checked above)."""
    if get_settings().queue_backend != "azure":
        return "skip"
    await get_queue_backend().count(RUNS_QUEUE)
    return None


async def ping_dapr() -> str | None:
    """The Dapr sidecar reports itself healthy (`GET /v1.0/healthz`)."""
    port = get_settings().dapr_http_port
    if not port:
        return "skip"
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        (await client.get(f"http://127.0.0.1:{port}/v1.0/healthz")).raise_for_status()
    return None


async def ping_mcp_tools() -> str | None:
    """The shared MCP tool server answers HTTP (any answer below 500: it is up)."""
    url = get_settings().mcp_tools_url
    if not url:
        return "skip"
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        answer = await client.get(url)
    if answer.status_code >= 500:
        answer.raise_for_status()
    return None


SERVICES.register_ping("database", ping_database)
SERVICES.register_ping("redis", ping_redis)
SERVICES.register_ping("queue", ping_queue)
SERVICES.register_ping("dapr_sidecar", ping_dapr)
SERVICES.register_ping("mcp_tools", ping_mcp_tools)


async def check_health() -> dict[str, Any]:
    """Ping every dependency; report status `ok` or `degraded` with per-backend detail."""
    checks = await SERVICES.health()
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "model_provider": get_settings().model_provider, "checks": checks}
