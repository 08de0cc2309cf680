"""The service registry: one instance per process (or loop), overridable, pinged by health."""

from __future__ import annotations

import asyncio

import pytest

from shared.core.services import SERVICES, Registry, service
from shared.platform import health


def test_a_service_is_built_once_and_shared() -> None:
    """Every call returns the instance the first call built."""
    built: list[object] = []

    @service("test.once")
    def thing() -> object:
        built.append(object())
        return built[-1]

    assert thing() is thing() is built[0]
    assert len(built) == 1


def test_cache_clear_builds_a_new_instance_on_next_use() -> None:
    """After `cache_clear` (settings changed), the next call builds again."""

    @service("test.clear")
    def thing() -> object:
        return object()

    first = thing()
    thing.cache_clear()
    assert thing() is not first


def test_a_test_overrides_a_service_in_one_line() -> None:
    """Inside `override`, the getter serves the given value; after it, the real one again."""

    @service("test.override")
    def thing() -> str:
        return "real"

    with SERVICES.override("test.override", "fake"):
        assert thing() == "fake"
    assert thing() == "real"


def test_a_per_loop_service_has_one_instance_per_event_loop() -> None:
    """Clients bound to a loop get one instance per loop, and the same one within a loop."""

    @service("test.loop", per_loop=True)
    def client() -> object:
        return object()

    async def twice() -> tuple[object, object]:
        return client(), client()

    a1, a2 = asyncio.run(twice())
    b1, _ = asyncio.run(twice())
    assert a1 is a2 and b1 is not a1


def test_the_platform_services_are_registered() -> None:
    """The engine, cache, queue, limiter, embedder, model provider and event channel are there."""
    import shared.memory.embeddings
    import shared.platform.llm
    import shared.platform.notify
    import shared.security.ratelimit  # noqa: F401

    assert {
        "settings",
        "engine",
        "cache",
        "queue",
        "limiter",
        "embedder",
        "model_provider",
        "event_channel",
    } <= set(SERVICES.names())


async def test_health_reports_each_dependency_and_leaves_out_unused_ones() -> None:
    """A failing ping is `error: <type>`, a skipped one is absent, the rest are `ok`."""
    registry = Registry()

    async def up() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError("secret detail")

    async def unused() -> str:
        return "skip"

    registry.register_ping("db", up)
    registry.register_ping("redis", down)
    registry.register_ping("dapr", unused)

    assert await registry.health() == {"db": "ok", "redis": "error: ConnectionRefusedError"}


async def test_the_embedded_default_reports_only_the_database() -> None:
    """With no Redis, sidecar or tool server configured, health checks the database alone."""
    report = await health.check_health()
    assert report["checks"] == {"database": "ok"}
    assert report["status"] == "ok"


async def test_a_sidecar_that_does_not_answer_degrades_health(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A configured Dapr port with nothing listening is reported, and the status degrades."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("DAPR_HTTP_PORT", "9")  # discard port: nothing answers HTTP there
    get_settings.cache_clear()
    report = await health.check_health()
    assert report["checks"]["dapr_sidecar"].startswith("error: ")
    assert report["status"] == "degraded"


async def test_a_configured_redis_is_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    """With REDIS_URL set, health pings the real Redis and reports it."""
    from shared.core.settings import get_settings
    from shared.platform.cache import close_cache

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    try:
        report = await health.check_health()
    finally:
        await close_cache()
    assert report["checks"] == {"database": "ok", "redis": "ok"}
