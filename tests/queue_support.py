"""Test support for the queue work: Azurite on a free port, and polling with a deadline."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from local.devhost_process import ROOT, free_port

AZURITE = ROOT / "node_modules" / ".bin" / "azurite-queue"
# Azurite's well-known development account (public, documented; not a secret).
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEADLINE = 30.0

T = TypeVar("T")


def azurite_connection_string(port: int) -> str:
    """The connection string of an Azurite queue service on a loopback port."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


@contextmanager
def azurite(workspace: Path) -> Iterator[str]:
    """Run `azurite-queue` on a free port with a temp workspace; yield its connection string."""
    if not AZURITE.exists() or shutil.which("node") is None:
        pytest.skip("azurite: run `npm install --no-save azurite` (local/test.sh does)")
    port = free_port()
    workspace.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--queuePort",
            str(port),
            "--location",
            str(workspace),
            "--skipApiVersionCheck",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("azurite did not start") from None
                time.sleep(0.05)
        yield azurite_connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Await `check` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for(check: Callable[[], T | None], what: str, deadline: float = DEADLINE) -> T:
    """Call `check` until it returns something truthy, or fail after the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
