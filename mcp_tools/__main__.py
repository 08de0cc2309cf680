"""`python -m mcp_tools [--host H] [--port P]`: serve the MCP tool server."""

from __future__ import annotations

import argparse

import uvicorn

from mcp_tools.server import DEFAULT_PORT, build_app


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m mcp_tools", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
