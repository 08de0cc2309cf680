"""Notifications (shared/platform/notify.py): in-process wake-ups, and which channel carries
them to other instances for each database and setting."""

from __future__ import annotations

import asyncio

import pytest

from shared.platform.notify import RESYNC, Notifier, choose_channel


async def test_a_message_wakes_the_waiters_of_its_topic() -> None:
    """A delivered message wakes a waiter of its topic at once, with the message."""
    notifier = Notifier(None)
    with notifier.subscribe("run:a") as sub:
        waiting = asyncio.ensure_future(sub.wait(30))
        await asyncio.sleep(0)
        notifier.deliver("run:a", "e:3")
        assert await asyncio.wait_for(waiting, timeout=5) == ["e:3"]


async def test_messages_of_other_topics_are_not_delivered() -> None:
    """A waiter hears only its own topic."""
    notifier = Notifier(None)
    with notifier.subscribe("run:a") as sub:
        notifier.deliver("run:b", "end")
        assert await sub.wait(0) == []


async def test_messages_that_arrive_before_the_wait_are_kept() -> None:
    """Messages delivered between two waits are returned by the next wait, in order."""
    notifier = Notifier(None)
    with notifier.subscribe("run:a") as sub:
        notifier.deliver("run:a", "e:1")
        notifier.deliver("run:a", "c")
        assert await sub.wait(0) == ["e:1", "c"]


async def test_a_resync_wakes_every_waiter() -> None:
    """After the channel reconnects, every waiter is woken to re-read what it may have missed."""
    notifier = Notifier(None)
    with notifier.subscribe("run:a") as a, notifier.subscribe("thread:t") as t:
        notifier.deliver(RESYNC, RESYNC)
        assert (await a.wait(0), await t.wait(0)) == ([RESYNC], [RESYNC])


async def test_on_message_is_called_with_each_message() -> None:
    """A subscription's callback sees each message as it arrives (no task needed)."""
    notifier = Notifier(None)
    heard: list[str] = []
    with notifier.subscribe("run:a") as sub:
        sub.on_message = heard.append
        notifier.deliver("run:a", "c")
    assert heard == ["c"]


async def test_leaving_the_block_unsubscribes() -> None:
    """After its block a subscription no longer counts as a waiter."""
    notifier = Notifier(None)
    with notifier.subscribe("run:a"):
        assert notifier.has_waiters("run:a")
    assert not notifier.has_waiters("run:a")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgresql://u@h/db"}, "postgres"),
        ({"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h"}, "postgres"),
        ({"REDIS_URL": "redis://h"}, "redis"),
        ({}, None),
        ({"DATABASE_URL": "postgresql://u@h/db", "ASCENT_EVENTS_CHANNEL": "poll"}, None),
        (
            {
                "DATABASE_URL": "postgresql://u@h/db",
                "REDIS_URL": "redis://h",
                "ASCENT_EVENTS_CHANNEL": "redis",
            },
            "redis",
        ),
    ],
    ids=[
        "postgres",
        "postgres-over-redis",
        "sqlite-redis",
        "sqlite-poll",
        "forced-poll",
        "forced-redis",
    ],
)
def test_the_channel_follows_the_database_and_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    """LISTEN/NOTIFY on Postgres, else Redis with REDIS_URL, else the poll fallback (None)."""
    from shared.core.settings import get_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    assert choose_channel() == expected


def test_asking_for_a_channel_the_deployment_lacks_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ASCENT_EVENTS_CHANNEL=postgres on SQLite, or redis without REDIS_URL, fails clearly."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_EVENTS_CHANNEL", "postgres")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="PostgreSQL"):
        choose_channel()
    monkeypatch.setenv("ASCENT_EVENTS_CHANNEL", "redis")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="REDIS_URL"):
        choose_channel()
