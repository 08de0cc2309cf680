"""The stand-ins behave like what they stand in for: the fake Dapr sidecar and the Upstash front.

The Dapr tests drive the fake through the `dapr` SDK's own async gRPC client, as DaprSession
does; the Upstash tests speak raw HTTP to the front, so they pin the wire format itself.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprInternalError
from dapr.clients.grpc._state import Concurrency, StateOptions

from tests.fakes.dapr_sidecar import FakeDaprSidecar, running_sidecar
from tests.fakes.upstash_rest import UpstashRestFront, running_front

STORE = "statestore"
TOKEN = "front-token"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
FIRST_WRITE = StateOptions(concurrency=Concurrency.first_write)


@pytest.fixture(scope="module")
def sidecar() -> Iterator[FakeDaprSidecar]:
    """One fake sidecar for the module."""
    with running_sidecar() as running:
        yield running


@pytest.fixture
async def dapr(
    sidecar: FakeDaprSidecar, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[DaprClient]:
    """The dapr SDK's async client, found through the env vars ACA sets."""
    for var, value in sidecar.env().items():
        monkeypatch.setenv(var, value)
    client = DaprClient()
    yield client
    await client.close()


def _key() -> str:
    return f"k-{uuid.uuid4().hex}"


class TestFakeDaprSidecar:
    """The fake answers the SDK's state calls with daprd's etag, TTL and error semantics."""

    async def test_saved_value_reads_back_with_an_etag(self, dapr: DaprClient) -> None:
        """A saved value reads back with a non-empty etag."""
        key = _key()
        await dapr.save_state(STORE, key, "v1")
        got = await dapr.get_state(STORE, key)
        assert (got.data, bool(got.etag)) == (b"v1", True)

    async def test_missing_key_reads_empty_without_etag(self, dapr: DaprClient) -> None:
        """A key never written reads as empty data and an empty etag."""
        got = await dapr.get_state(STORE, _key())
        assert (got.data, got.etag) == (b"", "")

    async def test_stale_etag_is_refused_as_etag_mismatch(self, dapr: DaprClient) -> None:
        """A write with an etag that is no longer current fails with an etag mismatch."""
        key = _key()
        await dapr.save_state(STORE, key, "v1")
        stale = (await dapr.get_state(STORE, key)).etag
        await dapr.save_state(STORE, key, "v2", etag=stale, options=FIRST_WRITE)
        with pytest.raises(DaprInternalError, match="etag mismatch"):
            await dapr.save_state(STORE, key, "v3", etag=stale, options=FIRST_WRITE)
        assert (await dapr.get_state(STORE, key)).data == b"v2"

    async def test_first_write_without_etag_cannot_overwrite(self, dapr: DaprClient) -> None:
        """First-write with no etag only creates: an existing key is refused."""
        key = _key()
        await dapr.save_state(STORE, key, "v1", options=FIRST_WRITE)
        with pytest.raises(DaprInternalError, match="etag mismatch"):
            await dapr.save_state(STORE, key, "v2", options=FIRST_WRITE)

    async def test_last_write_without_etag_overwrites(self, dapr: DaprClient) -> None:
        """A write with no etag and default concurrency replaces the value."""
        key = _key()
        await dapr.save_state(STORE, key, "v1")
        await dapr.save_state(STORE, key, "v2")
        assert (await dapr.get_state(STORE, key)).data == b"v2"

    async def test_delete_with_stale_etag_is_refused(self, dapr: DaprClient) -> None:
        """A delete with a stale etag fails with ABORTED and leaves the value."""
        key = _key()
        await dapr.save_state(STORE, key, "v1")
        stale = (await dapr.get_state(STORE, key)).etag
        await dapr.save_state(STORE, key, "v2")
        with pytest.raises(DaprGrpcError) as raised:
            await dapr.delete_state(STORE, key, etag=stale)
        assert raised.value.code().name == "ABORTED"
        assert (await dapr.get_state(STORE, key)).data == b"v2"

    async def test_ttl_metadata_expires_the_value(self, dapr: DaprClient) -> None:
        """A value saved with ttlInSeconds reads back until the TTL passes, then is gone."""
        key = _key()
        await dapr.save_state(STORE, key, "v", state_metadata={"ttlInSeconds": "1"})
        assert (await dapr.get_state(STORE, key)).data == b"v"
        deadline = time.monotonic() + 10
        while (await dapr.get_state(STORE, key)).data:
            assert time.monotonic() < deadline, "value outlived its TTL"
            await asyncio.sleep(0.05)

    async def test_unknown_store_is_invalid_argument(self, dapr: DaprClient) -> None:
        """A store name no component has is refused, as daprd refuses it."""
        with pytest.raises(DaprGrpcError, match="state store nope is not found") as raised:
            await dapr.get_state("nope", _key())
        assert raised.value.code().name == "INVALID_ARGUMENT"

    async def test_calls_outside_the_fake_are_unimplemented(self, dapr: DaprClient) -> None:
        """A Dapr API the fake does not implement fails loudly with UNIMPLEMENTED."""
        with pytest.raises(DaprGrpcError) as raised:
            await dapr.get_bulk_state(STORE, [_key()])
        assert raised.value.code().name == "UNIMPLEMENTED"


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {REDIS_URL} (start redis-server)")


@pytest.fixture(scope="module")
def front() -> Iterator[UpstashRestFront]:
    """One REST front over the real Redis for the module."""
    _redis_or_skip()
    with running_front(TOKEN, REDIS_URL) as running:
        yield running


def _post(front: UpstashRestFront, path: str, body: object, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.post(f"{front.url}{path}", json=body, headers={**auth, **headers}, timeout=10)


class TestUpstashRestFront:
    """The front speaks Upstash's REST protocol and runs commands on the real Redis."""

    def test_wrong_token_is_unauthorized(self, front: UpstashRestFront) -> None:
        """A request with another bearer token gets 401 and runs nothing."""
        key = _key()
        response = httpx.post(
            front.url, json=["SET", key, "v"], headers={"Authorization": "Bearer nope"}
        )
        assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"})
        assert _post(front, "", ["EXISTS", key]).json() == {"result": 0}

    def test_command_result_is_plain_json(self, front: UpstashRestFront) -> None:
        """Without an encoding header, strings come back as text and integers as numbers."""
        key = _key()
        assert _post(front, "", ["RPUSH", key, "a", "b"]).json() == {"result": 2}
        assert _post(front, "", ["LRANGE", key, 0, -1]).json() == {"result": ["a", "b"]}
        _post(front, "", ["DEL", key])

    def test_base64_encoding_encodes_strings_but_not_ok(self, front: UpstashRestFront) -> None:
        """With Upstash-Encoding: base64, bulk strings are base64 and the OK status is not."""
        key = _key()
        b64 = {"Upstash-Encoding": "base64"}
        assert _post(front, "", ["SET", key, "héllo", "EX", 60], **b64).json() == {"result": "OK"}
        encoded = _post(front, "", ["GET", key], **b64).json()["result"]
        assert base64.b64decode(encoded).decode() == "héllo"

    def test_redis_error_is_400_with_message(self, front: UpstashRestFront) -> None:
        """A command Redis rejects answers 400 with Redis's own error text ("ERR ...")."""
        response = _post(front, "", ["NOSUCHCOMMAND"])
        assert response.status_code == 400
        assert response.json()["error"].startswith("ERR unknown command")

    def test_pipeline_reports_each_command(self, front: UpstashRestFront) -> None:
        """/pipeline answers one result-or-error object per command, in order."""
        key = _key()
        body = [["SET", key, "1", "EX", 60], ["INCR", key], ["LPUSH", key, "x"]]
        outcomes = _post(front, "/pipeline", body).json()
        assert outcomes[:2] == [{"result": "OK"}, {"result": 2}]
        assert "WRONGTYPE" in outcomes[2]["error"]

    def test_multi_exec_aborts_whole_transaction(self, front: UpstashRestFront) -> None:
        """/multi-exec with a command Redis will not queue applies none of the commands."""
        key = _key()
        response = _post(front, "/multi-exec", [["SET", key, "v", "EX", 60], ["GET"]])
        assert response.status_code == 400
        assert "EXECABORT" in response.json()["error"]
        assert _post(front, "", ["EXISTS", key]).json() == {"result": 0}
