"""One registry of the process's services: each built once at first use, overridable, pinged.

A service is a getter made by `@service(name)` over its factory: calling the getter builds the
instance on first use and returns the same one after (per process, or per event loop for
clients whose connections belong to the loop that opened them). The registry, `SERVICES`, is
the one place that knows every service, so:

- a test swaps one in one line: `with SERVICES.override("engine", fake): ...` (or the getter's
  own `override`), and `SERVICES.reset()` drops every built instance;
- `/api/health` pings each configured dependency through the registry (`SERVICES.health()`),
  with the ping the service registered.

Nothing is built at import time: registering a factory only records it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# A ping answers None when the dependency is reachable, "skip" when it is not configured in this
# deployment (left out of the report), or raises when it does not answer.
Ping = Callable[[], Awaitable[str | None]]
PING_TIMEOUT_SECONDS = 3.0


@dataclass
class _Entry:
    name: str
    factory: Callable[[], Any]
    per_loop: bool
    instance: Any = None
    built: bool = False
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    overridden: list[Any] = field(default_factory=list)


class Registry:
    """The services of one process by name, their built instances and their health pings."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._pings: dict[str, Ping] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: Callable[[], Any], *, per_loop: bool = False) -> None:
        """Record a service's factory (a second registration of a name replaces the first)."""
        self._entries[name] = _Entry(name=name, factory=factory, per_loop=per_loop)

    def register_ping(self, name: str, ping: Ping) -> None:
        """Record how `/api/health` checks a dependency."""
        self._pings[name] = ping

    def names(self) -> list[str]:
        """The registered services' names."""
        return sorted(self._entries)

    def get(self, name: str) -> Any:
        """The service's instance: an override, else the one built on first use."""
        entry = self._entries[name]
        if entry.overridden:
            return entry.overridden[-1]
        if entry.per_loop:
            loop = asyncio.get_running_loop()
            if loop not in entry.by_loop:
                entry.by_loop[loop] = entry.factory()
            return entry.by_loop[loop]
        if not entry.built:
            with self._lock:  # two threads asking at once still build it once
                if not entry.built:
                    entry.instance = entry.factory()
                    entry.built = True
        return entry.instance

    def is_built(self, name: str) -> bool:
        """Whether the service has an instance in this process (or on the running loop)."""
        entry = self._entries[name]
        if entry.per_loop:
            try:
                return asyncio.get_running_loop() in entry.by_loop
            except RuntimeError:
                return False
        return entry.built

    def pop_here(self, name: str) -> Any:
        """Forget the running loop's instance of a per-loop service and return it (or None)."""
        return self._entries[name].by_loop.pop(asyncio.get_running_loop(), None)

    def reset(self, *names: str) -> None:
        """Forget the built instances of these services (all when none is named)."""
        for name in names or tuple(self._entries):
            entry = self._entries[name]
            entry.instance, entry.built = None, False
            entry.by_loop = weakref.WeakKeyDictionary()

    @contextmanager
    def override(self, name: str, value: Any) -> Iterator[Any]:
        """Serve `value` as the service inside the block (tests)."""
        entry = self._entries[name]
        entry.overridden.append(value)
        try:
            yield value
        finally:
            entry.overridden.pop()

    async def health(self) -> dict[str, str]:
        """Ping every dependency at once: `ok`, or `error: <type>` (never the error's text)."""

        async def check(ping: Ping) -> str:
            try:
                return await asyncio.wait_for(ping(), PING_TIMEOUT_SECONDS) or "ok"
            except Exception as exc:  # a health probe reports failures, it does not raise them
                return f"error: {type(exc).__name__}"

        names = sorted(self._pings)
        results = await asyncio.gather(*(check(self._pings[n]) for n in names))
        return {
            name: result for name, result in zip(names, results, strict=True) if result != "skip"
        }


SERVICES = Registry()


class Service(Generic[T]):
    """The getter of one registered service: call it for the instance."""

    def __init__(self, name: str, factory: Callable[[], T], *, per_loop: bool) -> None:
        self.name = name
        self.__doc__ = factory.__doc__
        self.__wrapped__ = factory
        SERVICES.register(name, factory, per_loop=per_loop)

    def __call__(self) -> T:
        """The instance (built on first use)."""
        result: T = SERVICES.get(self.name)
        return result

    def cache_clear(self) -> None:
        """Forget the built instance: the next call builds a new one (settings changed)."""
        SERVICES.reset(self.name)

    def is_built(self) -> bool:
        """Whether an instance exists (closing a service that was never built is a no-op)."""
        return SERVICES.is_built(self.name)

    def pop_here(self) -> T | None:
        """Forget the running loop's instance (per-loop services) and return it, to close it."""
        found: T | None = SERVICES.pop_here(self.name)
        return found

    def override(self, value: T) -> Any:
        """Serve `value` instead inside a `with` block (tests)."""
        return SERVICES.override(self.name, value)


def service(name: str, *, per_loop: bool = False) -> Callable[[Callable[[], T]], Service[T]]:
    """Register the decorated factory as the service `name` and return its getter."""

    def register(factory: Callable[[], T]) -> Service[T]:
        return Service(name, factory, per_loop=per_loop)

    return register
