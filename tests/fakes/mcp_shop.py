"""A tiny MCP server for the tests: `python -m tests.fakes.mcp_shop --port P --calls FILE`.

It speaks streamable HTTP (stateless, JSON responses) through the official `mcp` SDK and
requires the `X-Shop-Key` header to equal $SHOP_KEY. Its tools:

- `store_hours` (read): a store's opening hours (an error for store S000);
- `charge_card` (spend): appends one line per call (its idempotency key from `_meta`) to the
  calls file, so a test counts how often the tool really ran;
- `slow_report` (read): never answers (waits on an event nobody sets), for timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

IDEMPOTENCY_KEY = "ascent/idempotency_key"


def build(calls: Path) -> Any:
    """The shop server's ASGI app, recording `charge_card` calls to `calls`."""
    server: MCPServer = MCPServer("shop")
    never = asyncio.Event()

    @server.tool()
    def store_hours(store: Annotated[str, Field(pattern=r"S\d{3}")]) -> str:
        """Tell the opening hours of a store such as S123."""
        if store == "S000":
            raise ToolError(f"store {store} is closed for good")
        return f"Store {store} opens 09:00-17:00."

    @server.tool()
    def charge_card(amount: Annotated[float, Field(gt=0)], ctx: Context) -> str:
        """Charge the customer's card the given amount."""
        meta = ctx.request_context.meta
        found = dict(meta or {})
        key = found.get(IDEMPOTENCY_KEY)
        with calls.open("a") as out:
            out.write(json.dumps({"amount": amount, "key": key}) + "\n")
        return f"Charged {amount:.2f} to the card."

    @server.tool()
    async def slow_report(topic: Annotated[str, Field(pattern=r"Q\d")]) -> str:
        """Build the slow quarterly report for a quarter such as Q3."""
        await never.wait()
        return "never"

    app = server.streamable_http_app(stateless_http=True, json_response=True)
    expected = os.environ.get("SHOP_KEY", "").encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"x-shop-key", b"")
            if not hmac.compare_digest(given, expected):
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--calls", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.calls), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
