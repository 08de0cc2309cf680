"""A settable fake clock for the rate limiter, which also drives the `limits` storages.

`limits`' memory and redis-py storages stamp moving-window entries with `time.time()` of their own
modules and take no clock, so `follow_fake_clock` points those modules' `time` at the newest
`Clock` (each test makes its own); the limiter's own fixed windows take the `Clock` directly.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import ClassVar

import limits.aio.storage.memory
import limits.aio.storage.redis.redispy
import pytest


class Clock:
    """A settable clock; the newest one is also the time `limits`' storages see."""

    current: ClassVar[Clock | None] = None

    def __init__(self, now: float) -> None:
        """Start at `now` (seconds since the epoch) and become the current clock."""
        self.now = now
        Clock.current = self

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


def _now() -> float:
    return Clock.current.now if Clock.current is not None else time.time()


def follow_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `limits`' storages read the current `Clock` (real time until one is made)."""
    Clock.current = None
    fake = SimpleNamespace(time=_now)
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    monkeypatch.setattr(limits.aio.storage.redis.redispy, "time", fake)
