"""Queue port and adapters: Azure Storage Queues (Azurite locally) and an embedded SQL queue.

Both adapters speak the Storage Queue model the Functions queue trigger relies on: a receive
hides a message for a visibility timeout, hands out a pop receipt and bumps the dequeue count;
delete and update need the current pop receipt, so a consumer whose lease lapsed cannot delete
a message another consumer has since received. Messages are stored as sent: the sender encodes
them per host.json `extensions.queues.messageEncoding` (base64 by default, as the trigger
expects), and the receiver (the Functions host, or the dev host) decodes them.

The embedded queue is a table in the SQL database (`queue_messages`), not a separate file:
on the embedded stage that database *is* the SQLite file in the data dir, and on Postgres or
CockroachDB several dev host processes share it, so one store keeps every stage consistent and
Alembic owns its schema. Claims are compare-and-set UPDATEs on the pop receipt (no locks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from sqlalchemy import Table, delete, func, insert, select, update

from shared.core.services import service
from shared.core.settings import get_settings
from shared.db import direct
from shared.db.direct import Tx
from shared.db.models import new_id, utcnow
from shared.db.queue_models import QueueMessage

ROOT = Path(__file__).resolve().parents[2]  # the app root, where host.json is

RUNS_QUEUE = "agent-runs"
POISON_SUFFIX = "-poison"
# Storage Queues keep a message seven days unless told otherwise; the longest visibility too.
MESSAGE_TTL = timedelta(days=7)
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60

Encoding = Literal["base64", "none"]


def poison_queue_name(queue: str) -> str:
    """The poison queue the Functions host moves a message to: `<queue>-poison`."""
    return queue + POISON_SUFFIX


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions host's defaults for missing keys."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: Encoding = "base64"


def parse_timespan(value: Any) -> float:
    """Seconds of a host.json timespan (`hh:mm:ss[.fff]` or `d.hh:mm:ss`), or a number."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    days = 0.0
    if text.count(":") == 2 and "." in text.split(":")[0]:
        day_text, text = text.split(".", 1)
        days = float(day_text)
    hours, minutes, seconds = text.split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


_OVERRIDE_PREFIX = "AzureFunctionsJobHost__extensions__queues__"


def read_queue_options(host_json: Path = ROOT / "host.json") -> QueueOptions:
    """Read `extensions.queues` from host.json, overridden by app settings as the host does.

    The Functions host lets an app setting `AzureFunctionsJobHost__extensions__queues__<key>`
    replace a host.json value; the dev host and the tests use that to shorten timeouts.
    """
    config: dict[str, Any] = {}
    if host_json.exists():
        config = dict(json.loads(host_json.read_text()).get("extensions", {}).get("queues", {}))
    lowered = {k.lower(): v for k, v in config.items()}
    for name, value in os.environ.items():
        if name.lower().startswith(_OVERRIDE_PREFIX.lower()):
            lowered[name[len(_OVERRIDE_PREFIX) :].lower()] = value
    batch = min(32, max(1, int(lowered.get("batchsize", 16))))
    encoding = str(lowered.get("messageencoding", "base64")).lower()
    return QueueOptions(
        batch_size=batch,
        new_batch_threshold=int(lowered.get("newbatchthreshold", batch // 2)),
        max_polling_interval=max(0.1, parse_timespan(lowered.get("maxpollinginterval", 60))),
        visibility_timeout=parse_timespan(lowered.get("visibilitytimeout", 0)),
        max_dequeue_count=max(1, int(lowered.get("maxdequeuecount", 5))),
        message_encoding="none" if encoding == "none" else "base64",
    )


@service("queue_options")
def queue_options() -> QueueOptions:
    """The app's queue options, read once per process."""
    return read_queue_options()


def encode_message(text: str, encoding: Encoding) -> str:
    """The wire text of a message: base64 of its UTF-8 bytes, or the text itself."""
    if encoding == "base64":
        return base64.b64encode(text.encode()).decode("ascii")
    return text


def decode_message(wire: str, encoding: Encoding) -> bytes:
    """The body bytes the trigger hands the function (ValueError on bad base64)."""
    if encoding == "base64":
        return base64.b64decode(wire.encode("ascii"), validate=True)
    return wire.encode()


@dataclass(frozen=True)
class ReceivedMessage:
    """A received message: its wire text, pop receipt and Storage Queue metadata."""

    id: str
    pop_receipt: str
    content: str
    dequeue_count: int
    insertion_time: datetime | None
    expiration_time: datetime | None
    next_visible_time: datetime | None


class QueueBackend(Protocol):
    """The Storage Queue operations the dispatcher and the dev host's trigger driver use."""

    async def ensure_queue(self, queue: str) -> None:
        """Create the queue if it does not exist."""

    async def send(self, queue: str, content: str, *, delay_seconds: int = 0) -> None:
        """Append a message given as wire text (already encoded), invisible for a delay."""

    async def receive(
        self, queue: str, *, max_messages: int, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Receive up to `max_messages` visible messages, hiding them for the timeout."""

    async def update_visibility(
        self, queue: str, message: ReceivedMessage, visibility_timeout: float
    ) -> ReceivedMessage:
        """Hide a received message for another `visibility_timeout` (new pop receipt)."""

    async def delete(self, queue: str, message: ReceivedMessage) -> None:
        """Delete a received message (raises when its pop receipt is stale)."""

    async def count(self, queue: str) -> int:
        """How many messages the queue holds, visible or not (approximate on Azure)."""

    async def peek_all(self, queue: str) -> list[str]:
        """The wire text of the queue's visible messages (up to 32; for tests and tools)."""

    async def close(self) -> None:
        """Release connections."""


class StaleReceipt(Exception):
    """The message was received again by another consumer, or deleted."""


class SqlQueue:
    """The embedded queue: Storage Queue semantics on the `queue_messages` table.

    Every operation is one unit of the process's batched writer (shared/db/direct.py), so a
    thousand runs in flight share its transactions instead of each opening a session.
    """

    async def ensure_queue(self, queue: str) -> None:
        """Queues exist implicitly (rows carry their queue's name)."""

    async def send(self, queue: str, content: str, *, delay_seconds: int = 0) -> None:
        """Insert the message, visible after `delay_seconds`."""
        await direct.write(partial(_send, queue=queue, content=content, delay=delay_seconds))

    async def receive(
        self, queue: str, *, max_messages: int, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Claim visible messages one compare-and-set UPDATE each (a lost race skips one)."""
        return await direct.write(
            partial(_receive, queue=queue, limit=max_messages, timeout=visibility_timeout)
        )

    async def update_visibility(
        self, queue: str, message: ReceivedMessage, visibility_timeout: float
    ) -> ReceivedMessage:
        """Move the message's visibility (only with its current pop receipt)."""
        receipt = new_id()
        visible = utcnow() + timedelta(seconds=visibility_timeout)
        moved = await direct.write(
            partial(_move, message=message, receipt=receipt, visible=visible)
        )
        if not moved:
            raise StaleReceipt(message.id)
        return ReceivedMessage(
            id=message.id,
            pop_receipt=receipt,
            content=message.content,
            dequeue_count=message.dequeue_count,
            insertion_time=message.insertion_time,
            expiration_time=message.expiration_time,
            next_visible_time=visible,
        )

    async def delete(self, queue: str, message: ReceivedMessage) -> None:
        """Delete the message (only with its current pop receipt)."""
        if not await direct.write(partial(_delete, message=message)):
            raise StaleReceipt(message.id)

    async def count(self, queue: str) -> int:
        """Messages in the queue, visible or not."""
        found = select(func.count()).select_from(QUEUE).where(QUEUE.c.queue == queue)
        counted: int | None = await direct.read(lambda tx: tx.conn.scalar(found))
        return int(counted or 0)

    async def peek_all(self, queue: str) -> list[str]:
        """The wire text of up to 32 visible messages, oldest first."""

        def peek(tx: Tx) -> list[str]:
            visible = QUEUE.c.visible_at <= utcnow()
            rows = select(QUEUE.c.content).where(QUEUE.c.queue == queue, visible)
            return list(tx.conn.scalars(rows.order_by(QUEUE.c.inserted_at).limit(32)))

        return await direct.read(peek)

    async def close(self) -> None:
        """Nothing to release: the queue uses the process-wide writer."""


QUEUE: Final[Table] = QueueMessage.__table__  # type: ignore[attr-defined]


def _send(tx: Tx, *, queue: str, content: str, delay: int) -> None:
    now = utcnow()
    tx.conn.execute(
        insert(QUEUE).values(
            id=new_id(),
            queue=queue,
            content=content,
            dequeue_count=0,
            inserted_at=now,
            visible_at=now + timedelta(seconds=max(0, delay)),
            expires_at=now + MESSAGE_TTL,
        )
    )


def _receive(tx: Tx, *, queue: str, limit: int, timeout: float) -> list[ReceivedMessage]:
    now = utcnow()
    hidden_until = now + timedelta(seconds=timeout)
    visible = (QUEUE.c.queue == queue, QUEUE.c.visible_at <= now, QUEUE.c.expires_at > now)
    candidates = tx.conn.execute(
        select(QUEUE.c.id, QUEUE.c.pop_receipt)
        .where(*visible)
        .order_by(QUEUE.c.visible_at, QUEUE.c.inserted_at)
        .limit(limit)
    ).all()
    claimed: list[str] = []
    for message_id, receipt in candidates:
        same = QUEUE.c.pop_receipt.is_(None) if receipt is None else QUEUE.c.pop_receipt == receipt
        result = tx.conn.execute(
            update(QUEUE)
            .where(QUEUE.c.id == message_id, same, QUEUE.c.visible_at <= now)
            .values(
                pop_receipt=new_id(),
                visible_at=hidden_until,
                dequeue_count=QUEUE.c.dequeue_count + 1,
            )
        )
        if result.rowcount == 1:
            claimed.append(message_id)
    if not claimed:
        return []
    rows = tx.conn.execute(select(QUEUE).where(QUEUE.c.id.in_(claimed)))
    return [
        ReceivedMessage(
            id=row.id,
            pop_receipt=row.pop_receipt or "",
            content=row.content,
            dequeue_count=row.dequeue_count,
            insertion_time=row.inserted_at,
            expiration_time=row.expires_at,
            next_visible_time=row.visible_at,
        )
        for row in rows
    ]


def _move(tx: Tx, *, message: ReceivedMessage, receipt: str, visible: datetime) -> bool:
    result = tx.conn.execute(
        update(QUEUE)
        .where(QUEUE.c.id == message.id, QUEUE.c.pop_receipt == message.pop_receipt)
        .values(pop_receipt=receipt, visible_at=visible)
    )
    return result.rowcount == 1


def _delete(tx: Tx, *, message: ReceivedMessage) -> bool:
    result = tx.conn.execute(
        delete(QUEUE).where(QUEUE.c.id == message.id, QUEUE.c.pop_receipt == message.pop_receipt)
    )
    return result.rowcount == 1


class AzureQueue:
    """Azure Storage Queues through azure-storage-queue's async client (Azurite locally).

    Connection as the Functions host resolves `connection="AzureWebJobsStorage"`: a connection
    string in `AzureWebJobsStorage` (Azurite: `UseDevelopmentStorage=true` or an explicit
    string), else identity-based with `AzureWebJobsStorage__queueServiceUri` and the managed
    identity (`AzureWebJobsStorage__clientId` for a user-assigned one).
    """

    def __init__(self, *, encoding: Encoding) -> None:
        """Build the service client from settings (no I/O until the first call)."""
        from azure.storage.queue import TextBase64EncodePolicy
        from azure.storage.queue.aio import QueueServiceClient

        self._encode_policy = TextBase64EncodePolicy() if encoding == "base64" else None
        self._encoding = encoding
        self._service: QueueServiceClient
        connection = storage_connection()
        if isinstance(connection, str):
            self._service = QueueServiceClient.from_connection_string(connection)
        else:
            account_url, client_id = connection
            self._service = QueueServiceClient(
                account_url=account_url, credential=_storage_credential(client_id)
            )
        self._clients: dict[tuple[str, bool], Any] = {}

    def _client(self, queue: str, *, encoded: bool = False) -> Any:
        key = (queue, encoded)
        client = self._clients.get(key)
        if client is None:
            # `encoded`: TextBase64EncodePolicy when host.json says base64 (what the trigger
            # expects) for plain text from the dispatcher; otherwise the wire text goes as is,
            # and receives apply no decode policy: the receiver decodes per messageEncoding.
            policy = self._encode_policy if encoded else None
            client = self._service.get_queue_client(queue, message_encode_policy=policy)
            self._clients[key] = client
        return client

    async def ensure_queue(self, queue: str) -> None:
        """Create the queue unless it exists."""
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self._client(queue).create_queue()

    async def send(self, queue: str, content: str, *, delay_seconds: int = 0) -> None:
        """Send a message whose wire text is `content` (already encoded)."""
        await self._client(queue).send_message(
            content, visibility_timeout=max(0, delay_seconds) or None
        )

    async def send_text(self, queue: str, text: str, *, delay_seconds: int = 0) -> None:
        """Send plain text, encoded by the SDK's TextBase64EncodePolicy (messageEncoding base64)."""
        await self._client(queue, encoded=True).send_message(
            text, visibility_timeout=max(0, delay_seconds) or None
        )

    async def receive(
        self, queue: str, *, max_messages: int, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Receive up to `max_messages` (Storage caps at 32), hidden for whole seconds."""
        pager = self._client(queue).receive_messages(
            messages_per_page=min(32, max_messages),
            max_messages=min(32, max_messages),
            visibility_timeout=max(1, int(visibility_timeout + 0.999)),
        )
        out: list[ReceivedMessage] = []
        async for message in pager:
            out.append(_azure_received(message))
        return out

    async def update_visibility(
        self, queue: str, message: ReceivedMessage, visibility_timeout: float
    ) -> ReceivedMessage:
        """Move the message's visibility; a stale pop receipt raises StaleReceipt."""
        from azure.core.exceptions import HttpResponseError

        try:
            updated = await self._client(queue).update_message(
                message.id,
                pop_receipt=message.pop_receipt,
                visibility_timeout=max(0, int(visibility_timeout + 0.999)),
            )
        except HttpResponseError as exc:
            raise StaleReceipt(message.id) from exc
        return ReceivedMessage(
            id=message.id,
            pop_receipt=str(updated.pop_receipt),
            content=message.content,
            dequeue_count=message.dequeue_count,
            insertion_time=message.insertion_time,
            expiration_time=message.expiration_time,
            next_visible_time=updated.next_visible_on,
        )

    async def delete(self, queue: str, message: ReceivedMessage) -> None:
        """Delete the message; a stale pop receipt raises StaleReceipt."""
        from azure.core.exceptions import HttpResponseError

        try:
            await self._client(queue).delete_message(message.id, pop_receipt=message.pop_receipt)
        except HttpResponseError as exc:
            raise StaleReceipt(message.id) from exc

    async def count(self, queue: str) -> int:
        """The queue's approximate message count."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            properties = await self._client(queue).get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)

    async def peek_all(self, queue: str) -> list[str]:
        """The wire text of up to 32 visible messages."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            peeked = await self._client(queue).peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []
        return [str(m.content) for m in peeked]

    async def close(self) -> None:
        """Close the queue clients and the service client."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._service.close()


def storage_connection(prefix: str = "AzureWebJobsStorage") -> str | tuple[str, str | None]:
    """Resolve a Functions `connection` as the host does: a connection string, or identity.

    `<prefix>` holds a connection string (Azurite: `UseDevelopmentStorage=true`); otherwise
    `<prefix>__queueServiceUri` (or `<prefix>__accountName`, giving
    https://<name>.queue.core.windows.net) with the managed identity, `<prefix>__clientId`
    naming a user-assigned one. Returns the string, or (queue service URL, client id).
    """
    env = os.environ
    value = env.get(prefix)
    if value:
        return value
    client_id = env.get(f"{prefix}__clientId") or None
    uri = env.get(f"{prefix}__queueServiceUri")
    if not uri and env.get(f"{prefix}__accountName"):
        uri = f"https://{env[f'{prefix}__accountName']}.queue.core.windows.net"
    if not uri:
        raise RuntimeError(
            f"QUEUE_BACKEND=azure needs {prefix} (a connection string), or "
            f"{prefix}__queueServiceUri / {prefix}__accountName (identity-based)"
        )
    return uri, client_id


def _storage_credential(client_id: str | None) -> Any:
    # Function-local for cold start: azure-identity loads only for identity-based Storage.
    from shared.core.credentials import async_credential

    if client_id:
        from azure.identity.aio import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    return async_credential()


def _azure_received(message: Any) -> ReceivedMessage:
    return ReceivedMessage(
        id=str(message.id),
        pop_receipt=str(message.pop_receipt),
        content=str(message.content),
        dequeue_count=int(message.dequeue_count or 0),
        insertion_time=message.inserted_on,
        expiration_time=message.expires_on,
        next_visible_time=message.next_visible_on,
    )


# One backend per event loop: the Azure client's connections belong to the loop that made them.
@service("queue", per_loop=True)
def get_queue_backend() -> QueueBackend:
    """This loop's queue backend for QUEUE_BACKEND (embedded for `inline` too, for tools)."""
    if get_settings().queue_backend == "azure":
        return AzureQueue(encoding=queue_options().message_encoding)
    return SqlQueue()


async def close_queue_backend() -> None:
    """Close this loop's backend (the dev host and jobs call it before their loop ends)."""
    backend = get_queue_backend.pop_here()
    if backend is not None:
        await backend.close()


def reset_queue_backends() -> None:
    """Forget every cached backend without closing them (tests switch settings)."""
    get_queue_backend.cache_clear()
    queue_options.cache_clear()


async def send_text(queue: str, text: str, *, delay_seconds: int = 0) -> None:
    """Send a plain-text message, encoded per host.json messageEncoding, to a queue."""
    backend = get_queue_backend()
    if isinstance(backend, AzureQueue):
        await backend.send_text(queue, text, delay_seconds=delay_seconds)
    else:
        encoded = encode_message(text, queue_options().message_encoding)
        await backend.send(queue, encoded, delay_seconds=delay_seconds)
    if delay_seconds <= 0:
        notify_local_listeners(queue)


# Like the WebJobs SDK's shared queue watcher: a listener in this process polls at once when
# this process writes to its queue, instead of waiting out its back-off.
_WATCHERS: dict[str, set[asyncio.Event]] = {}


def watch_queue(queue: str) -> asyncio.Event:
    """An event set whenever this process sends to `queue` (a listener waits on it)."""
    event = asyncio.Event()
    _WATCHERS.setdefault(queue, set()).add(event)
    return event


def unwatch_queue(queue: str, event: asyncio.Event) -> None:
    """Stop notifying `event` of sends to `queue`."""
    _WATCHERS.get(queue, set()).discard(event)


def notify_local_listeners(queue: str) -> None:
    """Wake this process's listeners of `queue`."""
    for event in _WATCHERS.get(queue, ()):
        event.set()
