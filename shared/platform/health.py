"""Health checks: ping every backend the process depends on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from shared.core.settings import get_settings
from shared.db.engine import get_engine


async def check_health() -> dict[str, Any]:
    """Ping the database; report status `ok` or `degraded` with per-backend detail."""
    checks: dict[str, str] = {}
    try:
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # a health probe reports failures, it does not raise them
        checks["database"] = f"error: {type(exc).__name__}"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "model_provider": get_settings().model_provider, "checks": checks}
