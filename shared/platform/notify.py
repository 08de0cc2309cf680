"""Notifications: wake waiters on this and other instances when something they watch changed.

A *topic* names what changed (`run:<id>`, `thread:<id>`); a message is a short string
(`e:<seq>`: events up to seq are stored; `c`: cancel requested; `end`). A message says only
that something changed: the waiter then reads the database, which stays the source of truth,
so a lost or duplicated message costs a read, never correctness.

How messages travel (ASCENT_EVENTS_CHANNEL, `auto` by default):

- **In-process**, always: a message published here wakes this process's waiters at once.
- **PostgreSQL LISTEN/NOTIFY** on Postgres: `notify_in_tx` sends `pg_notify('ascent', ...)`
  inside the writing transaction, so other instances hear of a change exactly when it commits.
  Each process keeps one listening connection; after it reconnects, every waiter is woken once
  to re-read what it may have missed.
- **Redis pub/sub** (channel `ascent:notify`) when REDIS_URL is set and the database is not
  Postgres (SQLite files shared by processes, CockroachDB, which has no LISTEN): published after
  the commit.
- **The poll fallback**, where neither exists: `channel` is None and waiters re-read the
  database every ASCENT_RUN_POLL_SECONDS (shared/runs/watch.py does that with one query per
  interval for every watched run of the process). In-process messages still wake them at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Final, Literal

from sqlalchemy import text

from shared.core.services import service
from shared.core.settings import get_settings
from shared.platform.cache import connect

if TYPE_CHECKING:
    from shared.db.direct import Tx

log = logging.getLogger(__name__)

PG_CHANNEL: Final = "ascent"
REDIS_CHANNEL: Final = "ascent:notify"
SEPARATOR: Final = "|"
# Wakes every waiter once: the channel reconnected, so messages may have been missed.
RESYNC: Final = "*"
RECONNECT_SECONDS: Final = (0.2, 0.5, 1.0, 2.0, 5.0)

Channel = Literal["postgres", "redis"]
_PG_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Subscription:
    """One waiter's view of a topic: messages since its last `wait`, and an event to sleep on."""

    def __init__(self, topic: str) -> None:
        """Start empty; messages arrive through `Notifier.deliver`."""
        self.topic = topic
        self._messages: deque[str] = deque(maxlen=1000)
        self._event = asyncio.Event()
        # Called with each message as it arrives (a watcher that needs no task of its own).
        self.on_message: Callable[[str], None] | None = None

    def push(self, message: str) -> None:
        """Record a message, wake the waiter and call `on_message` (on the subscription's loop)."""
        self._messages.append(message)
        self._event.set()
        if self.on_message is not None:
            self.on_message(message)

    async def wait(self, within: float | None) -> list[str]:
        """The messages received since the last call; waits for one up to `within` seconds.

        Returns an empty list on timeout: the caller re-reads the database anyway.
        """
        if not self._messages:
            self._event.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._event.wait()
        drained = list(self._messages)
        self._messages.clear()
        return drained


class Notifier:
    """This process's waiters, by topic, and its listening connection to other instances."""

    def __init__(self, channel: Channel | None) -> None:
        """Use `channel` across processes (None: the poll fallback)."""
        self.channel: Channel | None = channel
        self._waiters: dict[str, set[Subscription]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._redis: Any = None

    # --- waiting ---------------------------------------------------------------------------

    @contextmanager
    def subscribe(self, topic: str) -> Iterator[Subscription]:
        """Receive the messages of `topic` while the block runs."""
        subscription = Subscription(topic)
        self._waiters.setdefault(topic, set()).add(subscription)
        self._ensure_listener()
        try:
            yield subscription
        finally:
            waiters = self._waiters.get(topic)
            if waiters is not None:
                waiters.discard(subscription)
                if not waiters:
                    del self._waiters[topic]

    def has_waiters(self, topic: str) -> bool:
        """Whether anyone in this process watches `topic`."""
        return bool(self._waiters.get(topic))

    def deliver(self, topic: str, message: str) -> None:
        """Wake this process's waiters of `topic` (in-process delivery)."""
        if topic == RESYNC:
            for waiters in list(self._waiters.values()):
                for waiter in list(waiters):
                    waiter.push(RESYNC)
            return
        for waiter in list(self._waiters.get(topic, ())):
            waiter.push(message)

    # --- publishing ------------------------------------------------------------------------

    def notify_in_tx(self, tx: Tx, topic: str, message: str) -> None:
        """Announce a change made in `tx` (a shared/db/direct.py unit): delivered on commit.

        Postgres: `pg_notify` in the transaction reaches every instance, this one included, at
        commit. Everywhere: this process's waiters are woken right after the commit, and with
        Redis the message is published then too.
        """
        if tx.dialect == "postgresql" and self.channel == "postgres":
            tx.conn.execute(
                _PG_NOTIFY, {"channel": PG_CHANNEL, "payload": f"{topic}{SEPARATOR}{message}"}
            )
        tx.after_commit(lambda: self.publish_after_commit(topic, message))

    def publish_after_commit(self, topic: str, message: str) -> None:
        """After a commit: wake this process's waiters, and publish to Redis when that is the
        channel (Postgres instances heard it from the transaction's NOTIFY)."""
        self.deliver(topic, message)
        if self.channel == "redis":
            task = asyncio.get_running_loop().create_task(self._publish_redis(topic, message))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _publish_redis(self, topic: str, message: str) -> None:
        try:
            await self._redis_client().publish(REDIS_CHANNEL, f"{topic}{SEPARATOR}{message}")
        except Exception as exc:  # a lost message costs the waiter a later re-read only
            log.warning("redis notification failed: %s", type(exc).__name__)

    # --- listening to other instances --------------------------------------------------------

    def _redis_client(self) -> Any:
        if self._redis is None:
            url = get_settings().redis_url
            if url is None:
                raise RuntimeError("the redis channel needs REDIS_URL")
            self._redis = connect(url)
        return self._redis

    def _ensure_listener(self) -> None:
        if self.channel is None:
            return
        if self._listener is not None and not self._listener.done():
            return
        listen = self._listen_postgres if self.channel == "postgres" else self._listen_redis
        self._listener = asyncio.get_running_loop().create_task(listen(), name="notify-listener")

    def _dispatch(self, payload: str) -> None:
        topic, _, message = payload.partition(SEPARATOR)
        self.deliver(topic, message)

    async def _listen_postgres(self) -> None:
        import psycopg

        attempt = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(**_pg_params(), autocommit=True)
                try:
                    await conn.execute(f"LISTEN {PG_CHANNEL}")
                    if attempt:
                        self.deliver(RESYNC, RESYNC)
                    attempt = 0
                    async for note in conn.notifies():
                        self._dispatch(note.payload)
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notification listener lost (%s); reconnecting", type(exc).__name__)
            await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
            attempt += 1
            self.deliver(RESYNC, RESYNC)

    async def _listen_redis(self) -> None:
        attempt = 0
        while True:
            try:
                pubsub = self._redis_client().pubsub()
                try:
                    await pubsub.subscribe(REDIS_CHANNEL)
                    if attempt:
                        self.deliver(RESYNC, RESYNC)
                    attempt = 0
                    while True:
                        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
                        if item is not None and item.get("type") == "message":
                            data = item["data"]
                            self._dispatch(data.decode() if isinstance(data, bytes) else str(data))
                finally:
                    await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notification listener lost (%s); reconnecting", type(exc).__name__)
            await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
            attempt += 1
            self.deliver(RESYNC, RESYNC)

    async def close(self) -> None:
        """Stop listening and close the Redis client (tests, shutdown)."""
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._redis is not None:
            with suppress(Exception):
                await self._redis.aclose()
            self._redis = None


# Fire-and-forget publishes, kept referenced until they end.
_BACKGROUND: set[asyncio.Task[None]] = set()


def _pg_params() -> dict[str, Any]:
    """psycopg connection parameters of DATABASE_URL (with an Entra token when configured)."""
    from sqlalchemy.engine import make_url

    settings = get_settings()
    url = make_url(settings.sqlalchemy_url)
    params: dict[str, Any] = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "dbname": url.database,
        "user": url.username,
        **dict(url.query),
    }
    if url.password is not None:
        params["password"] = url.password
    if settings.database_auth == "entra":
        # Function-local for cold start: azure-identity loads only where Entra auth is used.
        from shared.core.credentials import postgres_token

        params["password"] = postgres_token()
    return {k: v for k, v in params.items() if v is not None}


def choose_channel() -> Channel | None:
    """The cross-instance channel ASCENT_EVENTS_CHANNEL and the database allow (None: poll)."""
    settings = get_settings()
    wanted = settings.events_channel
    postgres = settings.sqlalchemy_url.startswith("postgresql")
    if wanted == "poll":
        return None
    if wanted == "postgres" or (wanted == "auto" and postgres):
        if not postgres:
            raise ValueError("ASCENT_EVENTS_CHANNEL=postgres needs a PostgreSQL DATABASE_URL")
        return "postgres"
    if settings.redis_url:
        return "redis"
    if wanted == "redis":
        raise ValueError("ASCENT_EVENTS_CHANNEL=redis needs REDIS_URL")
    return None


@service("event_channel")
def get_notifier() -> Notifier:
    """This process's notifier, built on first use."""
    return Notifier(choose_channel())


async def close_notifier() -> None:
    """Stop this process's notifier (if one was built) and forget it."""
    if get_notifier.is_built():
        await get_notifier().close()
    get_notifier.cache_clear()
