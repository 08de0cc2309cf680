"""Direct SQL for the hot paths: batched writes (group commit) and cheap reads.

The run engine's statements are *units*: plain functions `unit(tx) -> T` that run SQLAlchemy
Core statements on `tx.conn`, a synchronous connection.

- `await write(unit)` adds the unit to the next batch. A batch is ONE transaction in which
  each unit runs in a SAVEPOINT of its own, so a unit that raises is rolled back alone and its
  caller gets the exception while the others commit; the batch commits once (group commit).
  Callbacks a unit registers with `tx.after_commit` run on the event loop once its batch has
  committed (never for a rolled-back unit).
- `await read(unit)` runs a read-only unit in a short transaction of its own.

Why not the async engine: through aiosqlite a statement costs ~400 µs (a thread hand-off per
statement), and SQLite allows one writer at a time, so concurrent async transactions either
wait on each other or fail with "database is locked". Measured on this project's machines, a
thread per connection is no better under load: each statement releases and re-takes the GIL,
and the event loop, busy running agents, keeps it for up to the switch interval each time.

- **SQLite** runs units on the event loop's own thread, on sync connections of the process's one
  SQLite library (shared/db/sqlite_driver.py): a statement is ~20 µs of CPU and there is no hand-off
  at all. The units submitted while the loop is busy form one batch (one `BEGIN IMMEDIATE` ...
  `COMMIT`), so there is exactly one write transaction at a time in this process. The connection
  never waits for a lock on the loop: it asks with a busy timeout of 0 and, when another connection
  (another process on the file, or this process's async engine) holds the write lock, hands the
  batch to a fallback thread that waits its turn (ASCENT's busy timeout, 15 s). The WAL is
  checkpointed from that thread too, never on the loop.
- **Postgres** (and CockroachDB) runs units through the async psycopg driver with
  `AsyncConnection.run_sync`: statements await the network without blocking the loop or
  involving a thread. ASCENT_DB_WRITERS batches can be in flight at once, since row locks let
  concurrent writers proceed.

Everything is created on first use, never at import; `close_direct()` releases it (tests,
shutdown).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.core.services import service
from shared.core.settings import get_settings
from shared.db.engine import SQLITE_BUSY_TIMEOUT_MS, entra_password, load_stored_json
from shared.db.sqlite_driver import sqlite_module

log = logging.getLogger(__name__)

T = TypeVar("T")
# Units one transaction takes at most; more wait for the next batch.
MAX_BATCH: Final = 256
# The SQLite WAL is checkpointed (off the loop) once this many batches committed since the last.
CHECKPOINT_EVERY: Final = 200


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
        """Run `callback` on the event loop once this unit's writes are committed."""
        self._after.append(callback)


Unit = Callable[[Tx], T]


@dataclass
class _Job:
    unit: Callable[[Tx], Any]
    future: asyncio.Future[Any]
    after: list[Callable[[], None]] = field(default_factory=list)
    error: BaseException | None = None
    value: Any = None


def _run_batch(conn: Connection, batch: list[_Job]) -> None:
    """Run each unit in a SAVEPOINT of one transaction (the caller begins and commits it)."""
    for job in batch:
        tx = Tx(conn)
        try:
            with conn.begin_nested():
                job.value = job.unit(tx)
        except Exception as exc:
            job.error = exc
            continue
        job.after = tx._after


def _settle(batch: list[_Job]) -> None:
    """On the loop, after the batch committed: results to callers, then post-commit callbacks."""
    for job in batch:
        if not job.future.done():
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.value)
        for callback in job.after if job.error is None else ():
            try:
                callback()
            except Exception:
                log.exception("a post-commit callback failed")


def _fail(batch: list[_Job], error: BaseException) -> None:
    for job in batch:
        job.after = []
        job.error = error
    _settle(batch)


def sync_url(async_url: str) -> str:
    """The synchronous twin of the app's async SQLAlchemy URL (same database, sync driver)."""
    if async_url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + async_url[len("sqlite+aiosqlite:") :]
    return async_url


# --- SQLite: on the loop, with a fallback thread ---------------------------------------------


def _sqlite_engine(url: str, *, busy_ms: int, pool_size: int, writes: bool) -> Engine:
    """A sync SQLite engine: writers begin IMMEDIATE themselves; readers run in autocommit
    (each statement its own snapshot)."""
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        # The async engine's SQLite library, never a second copy: two copies in one process
        # break each other's file locks, and commits are lost (sqlite.org/howtocorrupt.html).
        module=sqlite_module(),
        connect_args={"check_same_thread": False, "timeout": busy_ms / 1000},
        json_deserializer=load_stored_json,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's documented recipe: no driver-managed transactions, so SAVEPOINTs nest
        # inside the BEGIN we issue ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Checkpoints (which fsync) happen off the loop, in the fallback thread.
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()

    if writes:

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _is_busy(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite_module().OperationalError) and "locked" in str(orig).lower()


class SqliteDirect:
    """Units on the event loop's thread; a batch waits in a thread only when the file is busy."""

    def __init__(self, url: str) -> None:
        """Prepare engines for `url` (a sync sqlite URL); nothing connects yet."""
        # On the loop: never wait for a lock (busy timeout 0), hand the batch over instead.
        self._loop_engine = _sqlite_engine(url, busy_ms=0, pool_size=1, writes=True)
        self._read_engine = _sqlite_engine(url, busy_ms=0, pool_size=1, writes=False)
        self._wait_engine = _sqlite_engine(
            url, busy_ms=SQLITE_BUSY_TIMEOUT_MS, pool_size=1, writes=True
        )
        self._wait_read_engine = _sqlite_engine(
            url, busy_ms=SQLITE_BUSY_TIMEOUT_MS, pool_size=1, writes=False
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-sqlite")
        self._pending: list[_Job] = []
        self._scheduled = False
        self._batches = 0
        self._closed = False

    async def write(self, unit: Unit[T]) -> T:
        """Queue the unit for this loop tick's batch; its result once committed."""
        if self._closed:
            raise RuntimeError("the database writer is closed")
        loop = asyncio.get_running_loop()
        job = _Job(unit, loop.create_future())
        self._pending.append(job)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        result: T = await job.future
        return result

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if not self._commit_here(batch):
                # Another connection holds the write lock: wait for it in the thread.
                waiting = asyncio.get_running_loop().run_in_executor(
                    self._thread, self._commit_waiting, batch
                )
                waiting.add_done_callback(partial(self._after_thread, batch))
        self._batches += 1
        if self._batches % CHECKPOINT_EVERY == 0:
            self._thread.submit(self._checkpoint)

    def _commit_here(self, batch: list[_Job]) -> bool:
        """Run and commit a batch on the loop; False (nothing done) when the file is busy."""
        try:
            with self._loop_engine.connect() as conn:
                try:
                    conn.begin()
                except OperationalError as exc:
                    if _is_busy(exc):
                        return False
                    raise
                _run_batch(conn, batch)
                conn.commit()
        except Exception as exc:
            if _is_busy(exc):
                for job in batch:
                    job.error, job.value, job.after = None, None, []
                return False
            log.exception("a database batch failed")
            _fail(batch, exc)
            return True
        _settle(batch)
        return True

    def _commit_waiting(self, batch: list[_Job]) -> BaseException | None:
        """In the fallback thread: run and commit a batch, waiting for the lock if needed."""
        try:
            with self._wait_engine.connect() as conn, conn.begin():
                _run_batch(conn, batch)
        except Exception as exc:
            return exc
        return None

    def _after_thread(self, batch: list[_Job], done: asyncio.Future[BaseException | None]) -> None:
        error = done.exception() or done.result()
        if error is not None:
            _fail(batch, error)
        else:
            _settle(batch)

    def _checkpoint(self) -> None:
        try:
            # Outside any transaction (a checkpoint cannot run inside one).
            with self._wait_read_engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("WAL checkpoint failed; the next one retries", exc_info=True)

    async def read(self, unit: Unit[T]) -> T:
        """Run a read-only unit on the loop (WAL readers do not wait for writers); in the
        thread on the rare busy answer (a WAL recovery under way)."""
        try:
            with self._read_engine.connect() as conn:
                return unit(Tx(conn))
        except OperationalError as exc:
            if not _is_busy(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._read_waiting, unit)

    def _read_waiting(self, unit: Unit[T]) -> T:
        with self._wait_read_engine.connect() as conn:
            return unit(Tx(conn))

    def close(self) -> None:
        """Checkpoint, stop the fallback thread, dispose the engines."""
        self._closed = True
        self._checkpoint()
        self._thread.shutdown(wait=True)
        for engine in (
            self._loop_engine,
            self._read_engine,
            self._wait_engine,
            self._wait_read_engine,
        ):
            engine.dispose()


# --- Postgres: the async driver, without threads -----------------------------------------------


class PostgresDirect:
    """Units through psycopg's async driver (`run_sync`); up to `writers` batches at once."""

    def __init__(self, url: str, *, writers: int, readers: int) -> None:
        """Prepare the engine; nothing connects yet."""
        self.writers = max(1, writers)
        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_size=self.writers + max(1, readers),
            max_overflow=0,
            pool_pre_ping=True,
            json_deserializer=load_stored_json,
        )
        if get_settings().database_auth == "entra":
            event.listen(self._engine.sync_engine, "do_connect", entra_password)
        self._pending: list[_Job] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, unit: Unit[T]) -> T:
        """Queue the unit; a batch task takes everything queued when it starts."""
        loop = asyncio.get_running_loop()
        job = _Job(unit, loop.create_future())
        self._pending.append(job)
        if self._running < self.writers:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        result: T = await job.future
        return result

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    async with self._engine.begin() as conn:
                        await conn.run_sync(_run_batch, batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _fail(batch, exc)
                        continue
                    # The commit failed (serialization, connection lost): nothing of the batch
                    # is durable; each unit gets a transaction of its own, so one bad unit
                    # cannot fail its neighbours.
                    for job in batch:
                        job.error, job.value, job.after = None, None, []
                        await self._alone(job)
                    continue
                _settle(batch)
        finally:
            self._running -= 1

    async def _alone(self, job: _Job) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.run_sync(_run_batch, [job])
        except Exception as exc:
            _fail([job], exc)
            return
        _settle([job])

    async def read(self, unit: Unit[T]) -> T:
        """Run a read-only unit in a short transaction."""
        async with self._engine.connect() as conn:
            result: T = await conn.run_sync(lambda sync_conn: unit(Tx(sync_conn)))
            return result

    def close(self) -> None:
        """Forget the engine's pool (its connections close with their event loop)."""
        self._engine.sync_engine.dispose(close=False)

    async def aclose(self) -> None:
        """Wait for batches in flight, then close every connection."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._engine.dispose()


Direct = SqliteDirect | PostgresDirect


@service("direct_db")
def get_direct() -> Direct:
    """The process-wide direct database access for DATABASE_URL, built on first use."""
    settings = get_settings()
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return SqliteDirect(sync_url(url))
    return PostgresDirect(url, writers=settings.db_writers, readers=settings.db_readers)


async def write(unit: Unit[T]) -> T:
    """Run a unit in the next batch (see the module docstring).

    The unit runs in a copy of the caller's context (a writer thread would otherwise see none),
    so what it stages carries the caller's trace (the outbox's `traceparent`) and log ids.
    """
    context = contextvars.copy_context()
    return await get_direct().write(lambda tx: context.run(unit, tx))


async def read(unit: Unit[T]) -> T:
    """Run a read-only unit."""
    return await get_direct().read(unit)


def close_direct() -> None:
    """Forget this process's direct access (a no-op when none was built); closes what it can
    without a running loop (`aclose_direct` closes Postgres connections cleanly)."""
    if get_direct.is_built():
        get_direct().close()
    get_direct.cache_clear()


async def aclose_direct() -> None:
    """Close this process's direct access, waiting for writes in flight, and forget it."""
    if get_direct.is_built():
        direct = get_direct()
        if isinstance(direct, PostgresDirect):
            await direct.aclose()
        else:
            direct.close()
    get_direct.cache_clear()
