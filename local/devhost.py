"""The dev host: serves `function_app.app`'s real HTTP functions with uvicorn, as the host would.

Run `python -m local.devhost`. It reads host.json's route prefix, maps each HTTP trigger's route
template and methods onto a Starlette route, and calls the user function with a FastAPI
`Request` whose `path_params` hold the route values, exactly as the Python worker's FastAPI
extension does in Azure. At start it creates the schema and the development tenant and key.
It also runs every scheduled job of `aca_jobs.JOBS` in a child process at its cron times
(local/job_scheduler.py; only at due times, never at start); `--no-jobs` turns that off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import uvicorn
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.api.openapi import app_functions
from shared.core.settings import Settings, get_settings
from shared.core.telemetry import setup_logging
from shared.db import repo
from shared.db.direct import aclose_direct
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.platform import observability
from shared.platform.llm import aclose_model_clients
from shared.platform.notify import close_notifier
from shared.platform.queues import close_queue_backend
from shared.runs.engine import close_leases
from shared.security import auth

log = logging.getLogger("ascent.devhost")

ROOT = Path(__file__).resolve().parent.parent
DEV_TENANT_ID = "dev"

_CONSTRAINTS = {"int": "int", "long": "int", "guid": "str", "alpha": "str", "bool": "str"}


def route_path(prefix: str, template: str) -> str:
    """Turn a Functions route template (`a/{id:int}/{*rest}`) into a Starlette path."""

    def convert(match: re.Match[str]) -> str:
        name, _, constraint = match.group(1).partition(":")
        if name.startswith("*"):
            return "{" + name[1:] + ":path}"
        name = name.rstrip("?")
        kind = _CONSTRAINTS.get(constraint.split("(")[0], "str") if constraint else "str"
        return "{" + name + ("" if kind == "str" else f":{kind}") + "}"

    path = re.sub(r"\{([^}]+)\}", convert, template.strip("/"))
    return "/" + "/".join(p for p in (prefix.strip("/"), path) if p)


def http_routes(app: func.FunctionApp, prefix: str) -> list[Route]:
    """One Starlette route per HTTP function of the app, calling the real user function."""
    routes: list[Route] = []
    for function in app_functions(app):
        trigger: Any = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        user_fn = function.get_user_function()
        methods = [str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET"])]
        routes.append(
            Route(
                route_path(prefix, str(trigger.route or function.get_function_name())),
                _endpoint(user_fn, trigger.name),
                methods=methods,
                name=function.get_function_name(),
            )
        )
    return routes


def _endpoint(
    user_fn: Callable[..., Any], arg_name: str
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        result = user_fn(**{arg_name: request})
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    return endpoint


def read_route_prefix(host_json: Path = ROOT / "host.json") -> str:
    """The `extensions.http.routePrefix` of host.json (`api` when unset, as in Azure)."""
    config = json.loads(host_json.read_text())
    return str(config.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


def build_asgi(*, queues: bool = False) -> Starlette:
    """The ASGI app serving every HTTP function of `function_app.app`.

    With `queues`, its lifespan also drives every queue-triggered function (local/queue_host.py).
    Its shutdown closes what the run engine holds: the notification listener and the hot path's
    database access.
    """
    from function_app import app

    routes = http_routes(app, read_route_prefix())
    queue_host = None
    if queues:
        from local.queue_host import QueueHost, queue_triggers

        queue_host = QueueHost(queue_triggers(app_functions(app)))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if queue_host is not None:
            queue_host.start()
        try:
            yield
        finally:
            if queue_host is not None:
                await queue_host.stop()
                await close_queue_backend()
            await close_leases()
            await close_notifier()
            await aclose_direct()
            await aclose_model_clients()

    return Starlette(routes=routes, lifespan=lifespan)


def _dev_key(settings: Settings) -> str:
    if settings.dev_api_key is not None:
        return settings.dev_api_key.get_secret_value()
    path = settings.data_dir / "dev_api_key"
    if path.exists():
        return path.read_text().strip()
    key, _ = auth.new_api_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


async def ensure_dev_tenant(key: str) -> None:
    """Create the development tenant and register its key, unless another process already did."""
    prefix = auth.key_prefix(key)
    if prefix is None:
        raise SystemExit("ASCENT_DEV_API_KEY must look like asc_<prefix>_<secret>")
    try:
        async with db_session() as db:
            if await repo.get_tenant(session=db, tenant_id=DEV_TENANT_ID) is None:
                await repo.create_tenant(session=db, name="Development", tenant_id=DEV_TENANT_ID)
                await db.commit()
    except IntegrityError:
        pass  # another dev host process created it first
    try:
        async with db_session() as db:
            if await repo.find_api_key(session=db, prefix=prefix) is None:
                await repo.add_api_key(
                    session=db,
                    tenant_id=DEV_TENANT_ID,
                    prefix=prefix,
                    key_hash=auth.hash_key(key),
                    name="development",
                )
                await db.commit()
    except IntegrityError:
        pass


async def prepare(settings: Settings, *, run_migrations: bool) -> str:
    """Create the schema (unless told not to) and the dev tenant; return the dev key."""
    if run_migrations:
        await migrate(get_engine())
    key = _dev_key(settings)
    await ensure_dev_tenant(key)
    # The engine's pool is bound to this event loop; uvicorn runs its own, so start fresh.
    await get_engine().dispose()
    return key


def main(argv: list[str] | None = None) -> int:
    """Start the dev host: prepare the database, print the URL and key, serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m local.devhost", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--no-migrate", action="store_true", help="do not create the schema")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--no-queues", action="store_true", help="do not run the queue-triggered functions"
    )
    parser.add_argument(
        "--no-jobs", action="store_true", help="do not run the scheduled jobs on their crons"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    # Redacted, enriched lines (tenant, run, thread and trace ids); JSON with ASCENT_LOG_FORMAT.
    setup_logging(args.log_level.upper(), json_lines=settings.log_format == "json")

    key = asyncio.run(prepare(settings, run_migrations=not args.no_migrate))
    asgi = build_asgi(queues=not args.no_queues and settings.queue_backend != "inline")
    base = f"http://{args.host}:{args.port}/{read_route_prefix()}".rstrip("/")
    print(f"Ascent dev host on {base}  (model: {settings.model_provider})", flush=True)
    print(f"Development API key: {key}", flush=True)
    print(
        f'Try: curl -s {base}/agents/triage/runs -H "Authorization: Bearer {key}" '
        "-H 'Content-Type: application/json' -d '{\"input\": \"Hi, my name is Ada\"}'",
        flush=True,
    )
    config = uvicorn.Config(
        asgi, host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )
    scheduler = None
    if not args.no_jobs:
        # Each scheduled job of aca_jobs.JOBS runs in a child process at its cron times.
        from local.job_scheduler import JobScheduler

        scheduler = JobScheduler()
        scheduler.start()
    try:
        uvicorn.Server(config).run()
    finally:
        if scheduler is not None:
            scheduler.stop()
        observability.shutdown()  # flush the spans still batched
    return 0


if __name__ == "__main__":
    sys.exit(main())
