"""Direct SQL for the hot paths: one batched writer and a reader pool, on sync connections.

The run engine's statements are *units*: plain functions `unit(tx) -> T` that run SQLAlchemy
Core statements on `tx.conn`. They execute in threads on synchronous connections (sqlite3,
psycopg), because the async path costs far more per statement: measured on this project's
machines, an INSERT or UPDATE took ~25 µs through SQLAlchemy Core on a sync sqlite3 connection
and ~400 µs through aiosqlite (its thread hand-off per statement), and a hand-off to a thread
here costs ~40 µs per unit, not per statement.

- `await write(unit)` queues the unit for a writer thread. A writer takes every unit waiting
  (up to MAX_BATCH), runs them in ONE transaction, each in a SAVEPOINT of its own, and commits
  once (group commit). A unit that raises is rolled back alone and its caller gets the
  exception; the others commit. Callbacks a unit registers with `tx.after_commit` run on the
  caller's event loop once the batch has committed (never for a rolled-back unit).
- `await read(unit)` runs the unit on a reader thread's connection, in a short transaction.

SQLite has exactly one writer thread, which opens its transactions with `BEGIN IMMEDIATE`: this
process never runs two write transactions at once, and no transaction upgrades from reading to
writing, which is what makes SQLite answer "database is locked" at once, busy timeout or not.
Other processes on the same file wait their turn through the busy timeout. Postgres (and
CockroachDB) get ASCENT_DB_WRITERS writer threads, each batching, since their row locks allow
concurrent writers.

Threads, engines and connections are created on first use, never at import. `close_direct()`
stops the threads and disposes the engines (tests and shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from shared.core.settings import get_settings
from shared.db.engine import SQLITE_BUSY_TIMEOUT_MS, entra_password

log = logging.getLogger(__name__)

T = TypeVar("T")
# Units one writer transaction takes at most; more wait for the next batch.
MAX_BATCH: Final = 256


class Tx:
    """What a unit gets: the connection (inside its transaction) and post-commit callbacks."""

    __slots__ = ("_after", "conn")

    def __init__(self, conn: Connection) -> None:
        """Wrap the connection the unit runs on."""
        self.conn = conn
        self._after: list[Callable[[], None]] = []

    @property
    def dialect(self) -> str:
        """The database's dialect name: `sqlite`, `postgresql` (also CockroachDB)."""
        return self.conn.dialect.name

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the caller's event loop once this unit's writes are committed."""
        self._after.append(callback)


Unit = Callable[[Tx], T]


@dataclass
class _Job:
    unit: Callable[[Tx], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    after: list[Callable[[], None]] = field(default_factory=list)


_STOP: Final = object()


def sync_url(async_url: str) -> str:
    """The synchronous twin of the app's async SQLAlchemy URL (same database, sync driver)."""
    if async_url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + async_url[len("sqlite+aiosqlite:") :]
    return async_url  # postgresql+psycopg serves both sync and async connections


def build_sync_engine(url: str, *, pool_size: int, immediate: bool) -> Engine:
    """A sync engine on the app's database; SQLite transactions begin IMMEDIATE when asked."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver would BEGIN on its own, lazily and DEFERRED, and SAVEPOINTs would not
            # nest inside it; SQLAlchemy's documented recipe: no driver transactions, our BEGIN.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin)

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)
    if get_settings().database_auth == "entra":
        event.listen(engine, "do_connect", entra_password)
    return engine


def _settle(job: _Job, value: Any, error: BaseException | None) -> None:
    """On the caller's loop: hand the unit's result over, then run its post-commit callbacks."""
    if not job.future.done():
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
    for callback in job.after:
        try:
            callback()
        except Exception:
            log.exception("a post-commit callback failed")


class Direct:
    """The writer threads and the reader pool of one database."""

    def __init__(self, url: str, *, writers: int, readers: int) -> None:
        """Prepare engines and threads for `url` (sync form); nothing connects yet."""
        self.url = url
        sqlite = url.startswith("sqlite")
        self._writers = 1 if sqlite else max(1, writers)
        self._write_engine = build_sync_engine(url, pool_size=self._writers, immediate=True)
        self._read_engine = build_sync_engine(url, pool_size=max(1, readers), immediate=False)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._readers = ThreadPoolExecutor(max_workers=max(1, readers), thread_name_prefix="db-r")
        self._lock = threading.Lock()
        self._closed = False

    def _start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            for index in range(self._writers):
                thread = threading.Thread(target=self._loop, name=f"db-w{index}", daemon=True)
                thread.start()
                self._threads.append(thread)

    async def write(self, unit: Unit[T]) -> T:
        """Run `unit` in the next batch of a writer's transaction; its result, once committed."""
        if self._closed:
            raise RuntimeError("the database writer is closed")
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        job = _Job(unit, loop, loop.create_future())
        self._queue.put(job)
        result: T = await job.future
        return result

    async def read(self, unit: Unit[T]) -> T:
        """Run `unit` on a reader connection (in a thread) and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_sync, unit)

    def _read_sync(self, unit: Unit[T]) -> T:
        with self._read_engine.connect() as conn:
            return unit(Tx(conn))

    def _loop(self) -> None:
        conn: Connection | None = None
        while True:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Job] = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            if conn is None:
                try:
                    conn = self._write_engine.connect()
                except Exception as exc:
                    self._deliver([(job, None, exc) for job in batch])
                    conn = None
                    if stop:
                        break
                    continue
            conn = self._run_batch(conn, batch)
            if stop:
                break
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: Connection, batch: list[_Job]) -> Connection | None:
        """Run a batch in one transaction; on a failed commit, each unit again on its own."""
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            with conn.begin():
                for job in batch:
                    tx = Tx(conn)
                    try:
                        with conn.begin_nested():
                            value = job.unit(tx)
                    except Exception as exc:
                        outcomes.append((job, None, exc))
                        continue
                    job.after = tx._after
                    outcomes.append((job, value, None))
        except Exception as exc:
            # The commit itself failed (connection lost, serialization failure): nothing of the
            # batch is durable. One unit alone is reported; a batch is retried unit by unit so
            # one bad unit cannot fail its neighbours.
            invalid = isinstance(exc, DBAPIError) and exc.connection_invalidated
            if invalid or conn.closed:
                conn.close()
                try:
                    conn = self._write_engine.connect()
                except Exception as again:
                    self._deliver([(job, None, again) for job in batch])
                    return None
            if len(batch) == 1:
                batch[0].after = []
                self._deliver([(batch[0], None, exc)])
                return conn
            current: Connection | None = conn
            for job in batch:
                job.after = []
                if current is None:
                    self._deliver([(job, None, exc)])
                    continue
                current = self._run_batch(current, [job])
            return current
        self._deliver(outcomes)
        return conn

    @staticmethod
    def _deliver(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        for job, value, error in outcomes:
            # RuntimeError: the caller's loop is closed, so nobody waits for this result.
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_settle, job, value, error)

    def close(self) -> None:
        """Stop the writer threads (after the units already queued) and dispose the engines."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout=30)
        self._readers.shutdown(wait=True)
        self._write_engine.dispose()
        self._read_engine.dispose()


@lru_cache(maxsize=1)
def get_direct() -> Direct:
    """The process-wide direct database access for DATABASE_URL, built on first use."""
    settings = get_settings()
    return Direct(
        sync_url(settings.sqlalchemy_url),
        writers=settings.db_writers,
        readers=settings.db_readers,
    )


async def write(unit: Unit[T]) -> T:
    """Run a unit in the writer's next batch (see the module docstring)."""
    return await get_direct().write(unit)


async def read(unit: Unit[T]) -> T:
    """Run a read-only unit on a reader connection."""
    return await get_direct().read(unit)


def close_direct() -> None:
    """Stop and forget this process's direct access (a no-op when none was built)."""
    if get_direct.cache_info().currsize:
        get_direct().close()
    get_direct.cache_clear()
