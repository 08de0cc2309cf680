"""Outbound retries with stamina (shared/core/retries.py): JWKS fetch and embeddings.

A loopback HTTP server answers queued statuses, then a good document; stamina runs in its
testing mode (no waits, the same attempts). Dapr publish retries are in test_events_publish.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import stamina
from openai import AsyncOpenAI

from shared.core.errors import UpstreamModelError
from shared.core.retries import ATTEMPTS, retry_counts
from shared.memory.embeddings import OpenAIEmbedder
from shared.security.jwt_auth import fetch_jwks

JWKS = {"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}
EMBEDDINGS = {
    "object": "list",
    "model": "m",
    "data": [{"object": "embedding", "index": 0, "embedding": [3.0, 4.0]}],
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}


@dataclass
class Upstream:
    """What the server answers (queued statuses, then `body` with 200) and how often it was hit."""

    statuses: list[int] = field(default_factory=list)
    body: dict[str, object] = field(default_factory=dict)
    hits: int = 0
    url: str = ""


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    """One loopback server for the module; each test sets what it answers."""
    state = Upstream()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.hits += 1
                code = state.statuses.pop(0) if state.statuses else 200
            payload = json.dumps(state.body if code == 200 else {"error": "busy"}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_retry_waits(upstream: Upstream) -> Iterator[None]:
    """stamina's testing mode, and a fresh upstream script for each test."""
    upstream.statuses, upstream.hits = [], 0
    stamina.set_testing(True, attempts=ATTEMPTS)
    yield
    stamina.set_testing(False)


def _retries(fragment: str) -> int:
    return sum(n for name, n in retry_counts().items() if fragment in name)


async def test_a_jwks_fetch_is_retried_past_a_503(upstream: Upstream) -> None:
    """Two 503s from the IdP are retried (and counted); the third attempt's keys are returned."""
    upstream.statuses, upstream.body = [503, 503], JWKS
    before = _retries("_get_jwks")
    assert await fetch_jwks(f"{upstream.url}/jwks") == JWKS
    assert upstream.hits == 3
    assert _retries("_get_jwks") == before + 2


async def test_a_jwks_fetch_gives_up_after_the_bounded_attempts(upstream: Upstream) -> None:
    """An IdP that keeps failing is asked ATTEMPTS times, then the error surfaces."""
    upstream.statuses = [503] * 10
    with pytest.raises(httpx.HTTPStatusError):
        await fetch_jwks(f"{upstream.url}/jwks")
    assert upstream.hits == ATTEMPTS


async def test_a_jwks_404_is_not_retried(upstream: Upstream) -> None:
    """A 404 is the request's fault: one attempt only."""
    upstream.statuses = [404]
    with pytest.raises(httpx.HTTPStatusError):
        await fetch_jwks(f"{upstream.url}/jwks")
    assert upstream.hits == 1


def _embedder(upstream: Upstream) -> OpenAIEmbedder:
    # The client's default retries are left on: the embedder must turn them off (no 3x3 attempts).
    client = AsyncOpenAI(api_key="unused", base_url=f"{upstream.url}/v1")
    return OpenAIEmbedder(client, "m", 2)


async def test_embeddings_are_retried_past_a_429(upstream: Upstream) -> None:
    """A throttled embeddings call is retried once (counted) and returns the vectors."""
    upstream.statuses, upstream.body = [429], EMBEDDINGS
    before = _retries("_create")
    assert await _embedder(upstream).embed(["hello"]) == [pytest.approx([0.6, 0.8])]
    assert upstream.hits == 2
    assert _retries("_create") == before + 1


async def test_embeddings_give_up_after_the_bounded_attempts(upstream: Upstream) -> None:
    """A provider that keeps answering 503 is asked ATTEMPTS times in all, not more."""
    upstream.statuses = [503] * 20
    with pytest.raises(UpstreamModelError):
        await _embedder(upstream).embed(["hello"])
    assert upstream.hits == ATTEMPTS


async def test_an_embeddings_400_is_not_retried(upstream: Upstream) -> None:
    """A rejected embeddings request fails at once as UpstreamModelError."""
    upstream.statuses = [400]
    with pytest.raises(UpstreamModelError):
        await _embedder(upstream).embed(["hello"])
    assert upstream.hits == 1
