"""The dev host's queue-trigger driver: runs queue-triggered functions as the Functions host does.

For each `queueTrigger` function of the app it polls the function's queue per host.json
`extensions.queues` (overridable by `AzureFunctionsJobHost__extensions__queues__<key>` app
settings, as in Azure):

- fetch up to `batchSize` messages, and fetch again when the in-flight count drops to
  `newBatchThreshold`, so up to batchSize + newBatchThreshold messages run at once (host.json:
  32 + 968 = 1000, ASCENT_MAX_IN_FLIGHT_RUNS's default; runs wait on their model, not on a CPU,
  so one instance holds many); never more than ASCENT_MAX_IN_FLIGHT_RUNS; when a queue is
  empty, back off exponentially up to `maxPollingInterval`;
- a received message is invisible for a short lease (ASCENT_QUEUE_MESSAGE_LEASE_SECONDS, 30 s;
  the Functions host's is 10 minutes) renewed every ASCENT_LEASE_HEARTBEAT_SECONDS while the
  function runs; a killed process stops renewing, so its messages reappear after the lease,
  with a higher dequeue count;
- decode the body per `messageEncoding` and call the real function with an
  `azure.functions.QueueMessage` (id, body bytes, dequeue_count, insertion/expiration/next
  visible times, pop receipt);
- delete the message on success; on failure make it visible again after `visibilityTimeout`,
  or, once it has been dequeued `maxDequeueCount` times, move it to `<queue>-poison`.

It also sweeps every ASCENT_SWEEP_INTERVAL_SECONDS (shared/runs/service.py `sweep`): runs and
pending runs whose holder stopped renewing are handed out again, so a killed host's work is
taken over within run lease + sweep interval (docs/reliability.md). Every host sweeps; the
sweep's compare-and-sets hand each stranded run out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage as WorkerQueueMessage

from shared.core.settings import get_settings
from shared.platform.queues import (
    QueueBackend,
    QueueOptions,
    ReceivedMessage,
    StaleReceipt,
    decode_message,
    get_queue_backend,
    poison_queue_name,
    queue_options,
    unwatch_queue,
    watch_queue,
)

log = logging.getLogger("ascent.devhost.queues")

MIN_POLLING_INTERVAL = 0.1


@dataclass(frozen=True)
class QueueTrigger:
    """A queue-triggered function as indexed: its name, queue, connection and parameter."""

    function_name: str
    queue_name: str
    connection: str
    arg_name: str
    user_function: Callable[..., Any]


def queue_triggers(functions: Iterable[func.Function]) -> list[QueueTrigger]:
    """The `queueTrigger` functions among an app's indexed functions."""
    found: list[QueueTrigger] = []
    for function in functions:
        trigger: Any = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "queueTrigger":
            continue
        found.append(
            QueueTrigger(
                function_name=str(function.get_function_name()),
                queue_name=str(trigger.queue_name),
                connection=str(trigger.connection),
                arg_name=str(trigger.name),
                user_function=function.get_user_function(),
            )
        )
    return found


def to_queue_message(message: ReceivedMessage, body: bytes) -> WorkerQueueMessage:
    """The QueueMessage the Python worker hands a queue-triggered function."""
    return WorkerQueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expiration_time,
        insertion_time=message.insertion_time,
        time_next_visible=message.next_visible_time,
        pop_receipt=message.pop_receipt,
    )


class QueueListener:
    """Polls one queue for one function and runs its messages with the host's semantics."""

    def __init__(
        self,
        trigger: QueueTrigger,
        *,
        backend: QueueBackend,
        options: QueueOptions,
        message_lease: float,
    ) -> None:
        """Bind the function to its queue with the host's options."""
        self.trigger = trigger
        self.backend = backend
        self.options = options
        self.message_lease = message_lease
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Poll until cancelled; in-flight invocations are cancelled with it."""
        queue = self.trigger.queue_name
        await self.backend.ensure_queue(queue)
        delay = MIN_POLLING_INTERVAL
        wake = watch_queue(queue)
        # Fetch again once no more than this many run, so a batch never passes the cap.
        limit = get_settings().max_in_flight_runs
        threshold = min(self.options.new_batch_threshold, max(0, limit - self.options.batch_size))
        try:
            while True:
                if len(self._in_flight) > threshold:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    messages = await self.backend.receive(
                        queue,
                        max_messages=self.options.batch_size,
                        visibility_timeout=self.message_lease,
                    )
                except Exception:
                    log.exception("receiving from %s failed", queue)
                    messages = []
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if messages:
                    delay = MIN_POLLING_INTERVAL
                    continue
                # Empty queue: random exponential back-off up to maxPollingInterval, cut short
                # when this process sends to the queue.
                wake.clear()
                pause = delay * random.uniform(0.8, 1.0)  # noqa: S311 (jitter)
                try:
                    await asyncio.wait_for(wake.wait(), pause)
                    delay = MIN_POLLING_INTERVAL
                except TimeoutError:
                    delay = min(delay * 2, self.options.max_polling_interval)
        finally:
            unwatch_queue(queue, wake)
            for task in list(self._in_flight):
                task.cancel()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _process(self, message: ReceivedMessage) -> None:
        queue = self.trigger.queue_name
        if message.dequeue_count > self.options.max_dequeue_count:
            # Delivered too often already (e.g. its consumers kept dying): poison it unrun.
            await self._poison(message)
            return
        holder = [message]
        renewal = asyncio.create_task(self._renew(holder))
        failed = False
        try:
            body = decode_message(message.content, self.options.message_encoding)
            arg = to_queue_message(message, body)
            result = self.trigger.user_function(**{self.trigger.arg_name: arg})
            if inspect.isawaitable(result):
                await result
        except Exception:
            failed = True
            log.exception(
                "function %s failed on message %s (dequeue count %d)",
                self.trigger.function_name,
                message.id,
                message.dequeue_count,
            )
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        current = holder[0]
        try:
            if not failed:
                await self.backend.delete(queue, current)
            elif current.dequeue_count >= self.options.max_dequeue_count:
                await self._poison(current)
            else:
                await self.backend.update_visibility(
                    queue, current, self.options.visibility_timeout
                )
        except StaleReceipt:
            log.warning("message %s was received elsewhere meanwhile", message.id)
        except Exception:
            log.exception("settling message %s failed; it reappears after its lease", message.id)

    async def _renew(self, holder: list[ReceivedMessage]) -> None:
        """Keep the message invisible while the function runs (renewed every heartbeat)."""
        every = min(get_settings().heartbeat_seconds, self.message_lease / 3)
        while True:
            await asyncio.sleep(every)
            try:
                holder[0] = await self.backend.update_visibility(
                    self.trigger.queue_name, holder[0], self.message_lease
                )
            except StaleReceipt:
                return
            except Exception:
                log.exception("renewing message %s failed", holder[0].id)

    async def _poison(self, message: ReceivedMessage) -> None:
        """Copy the message (as sent) to `<queue>-poison` and delete the original."""
        poison = poison_queue_name(self.trigger.queue_name)
        await self.backend.ensure_queue(poison)
        await self.backend.send(poison, message.content)
        await self.backend.delete(self.trigger.queue_name, message)
        log.error(
            "message %s moved to %s after %d dequeues", message.id, poison, message.dequeue_count
        )


class QueueHost:
    """All queue listeners of an app, started and stopped together on the server's loop."""

    def __init__(self, triggers: list[QueueTrigger]) -> None:
        """Remember the functions to drive (nothing starts until `start`)."""
        self.triggers = triggers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one polling task per queue-triggered function on the running loop."""
        settings = get_settings()
        backend = get_queue_backend()
        options = queue_options()
        for trigger in self.triggers:
            listener = QueueListener(
                trigger,
                backend=backend,
                options=options,
                message_lease=settings.queue_message_lease_seconds,
            )
            self._tasks.append(
                asyncio.create_task(listener.run(), name=f"queue-{trigger.queue_name}")
            )
        self._tasks.append(asyncio.create_task(sweep_forever(), name="sweep"))
        log.info(
            "driving %d queue trigger(s) on the %s queue: %s",
            len(self.triggers),
            settings.queue_backend,
            ", ".join(t.queue_name for t in self.triggers),
        )

    async def stop(self) -> None:
        """Stop polling and cancel in-flight invocations (their messages reappear later)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def sweep_forever() -> None:
    """Sweep every ASCENT_SWEEP_INTERVAL_SECONDS until cancelled (a failed sweep is retried)."""
    # Function-local: the run service loads with the first sweep, not when the host indexes.
    from shared.runs.service import sweep

    every = get_settings().sweep_every_seconds
    while True:
        await asyncio.sleep(every)
        try:
            report = await sweep()
        except Exception:
            log.exception("sweep failed; retrying in %.1fs", every)
            continue
        handed = len(report.expired) + len(report.lapsed_pending) + len(report.stale_pending)
        if handed or report.ended:
            log.warning(
                "sweep: %d run(s) handed out again, %d ended with their client",
                handed,
                len(report.ended),
            )
