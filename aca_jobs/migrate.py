"""The `migrate` job: create or upgrade the schema once, before the app serves."""

from __future__ import annotations

import asyncio

from shared.db.engine import get_engine
from shared.db.migrate import migrate


def main() -> int:
    """Apply the schema to the configured database; exit 0 when done."""

    async def run() -> None:
        engine = get_engine()
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0
