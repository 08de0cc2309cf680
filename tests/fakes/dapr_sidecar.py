"""A fake Dapr sidecar: the Dapr API calls Ascent makes, served on real gRPC and HTTP ports.

`daprd` has no package on these machines, so tests run the `dapr` SDK's own client against
this. It implements exactly what `DaprClient` + the Agents SDK's `DaprSession` call:

- HTTP `GET /v1.0/healthz/outbound` (and `/v1.0/healthz`): the probe `DaprClient()` makes on
  `DAPR_HTTP_PORT` before it opens its channel. Answers 204, as daprd does.
- gRPC `dapr.proto.runtime.v1.Dapr/GetState`, `SaveState`, `DeleteState` on `DAPR_GRPC_PORT`,
  with the state-store semantics daprd's stores give:
  - every write gets a new etag (a version number, like the Redis store's);
  - a request with a non-empty etag succeeds only if it equals the stored etag (an absent key
    has none), whatever the concurrency option, as in daprd;
  - first-write concurrency without an etag creates the key only if it does not exist (the
    Redis, Postgres and DynamoDB stores all behave so); last-write without one overwrites;
  - a conflict is `ABORTED` with daprd's message ("... possible etag mismatch ...");
  - `ttlInSeconds` metadata expires a key (`-1`: never), reported back as `ttlExpireTime`;
  - an unknown store name is `INVALID_ARGUMENT` "state store X is not found".
- gRPC `PublishEvent` (what `DaprClient.publish_event` calls): recorded in `published` (pubsub
  name, topic, data, content type, metadata) in arrival order; an unknown pub/sub component is
  `INVALID_ARGUMENT` "pubsub X is not found" as in daprd. Setting `publish_failing = True`
  makes every publish fail `UNAVAILABLE` (the broker is unreachable) until it is set back;
  `pubsub.fail_next = N` makes only the next N fail so (a transient blip).

Every other Dapr method answers `UNIMPLEMENTED` (the generated servicer's default), so a new
call in our code fails loudly here until the fake learns it. `calls` counts requests per method.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from dapr.proto import api_service_v1, api_v1, common_v1
from google.protobuf import empty_pb2

_FIRST_WRITE = common_v1.StateOptions.CONCURRENCY_FIRST_WRITE
_TTL_KEY = "ttlInSeconds"


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Entry:
    value: bytes
    etag: str
    expires_at: float | None  # time.time() seconds, None = never


class StateStores:
    """The in-memory state stores behind the fake, shared by all its threads."""

    def __init__(self, names: Iterable[str]) -> None:
        """Create empty stores with these component names."""
        self.names = frozenset(names)
        self._data: dict[tuple[str, str], _Entry] = {}
        self._version = 0
        self._lock = threading.Lock()

    def _check_store(self, store: str) -> None:
        if store not in self.names:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"state store {store} is not found")

    def _live(self, store: str, key: str) -> _Entry | None:
        entry = self._data.get((store, key))
        if entry is not None and entry.expires_at is not None and entry.expires_at <= time.time():
            del self._data[(store, key)]
            return None
        return entry

    def get(self, store: str, key: str) -> _Entry | None:
        """The live entry of a key, or None (expired keys are gone)."""
        with self._lock:
            self._check_store(store)
            return self._live(store, key)

    def save(
        self,
        store: str,
        key: str,
        value: bytes,
        *,
        etag: str | None,
        first_write: bool,
        ttl_seconds: int | None,
    ) -> str:
        """Write one key under etag rules; return its new etag or raise `_Abort`."""
        with self._lock:
            self._check_store(store)
            current = self._live(store, key)
            if etag:  # daprd: a non-empty etag is always checked
                if current is None or current.etag != etag:
                    raise _Abort(
                        grpc.StatusCode.ABORTED,
                        f"failed saving state in state store {store}: possible etag mismatch. "
                        f"error from state store: etag {etag!r} does not match",
                    )
            elif first_write and current is not None:
                raise _Abort(
                    grpc.StatusCode.ABORTED,
                    f"failed saving state in state store {store}: possible etag mismatch. "
                    f"error from state store: first-write: key {key!r} exists and no etag given",
                )
            self._version += 1
            expires_at = None
            if ttl_seconds is not None and ttl_seconds >= 0:
                expires_at = time.time() + ttl_seconds
            self._data[(store, key)] = _Entry(value, str(self._version), expires_at)
            return str(self._version)

    def delete(self, store: str, key: str, *, etag: str | None) -> None:
        """Delete one key (absent keys are fine unless an etag is given)."""
        with self._lock:
            self._check_store(store)
            current = self._live(store, key)
            if etag and (current is None or current.etag != etag):
                raise _Abort(
                    grpc.StatusCode.ABORTED,
                    f"failed deleting state with key {key}: possible etag mismatch. "
                    f"error from state store: etag {etag!r} does not match",
                )
            self._data.pop((store, key), None)


def _ttl(metadata: Any) -> int | None:
    raw = metadata.get(_TTL_KEY)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _Abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"incorrect value for metadata '{_TTL_KEY}'"
        ) from None


@dataclass(frozen=True)
class Published:
    """One event the fake's pub/sub accepted."""

    pubsub_name: str
    topic: str
    data: bytes
    data_content_type: str
    metadata: dict[str, str]


class PubSub:
    """The fake's pub/sub components: what they accepted, and a switch to make them fail."""

    def __init__(self, names: Iterable[str]) -> None:
        """Create pub/sub components with these names, accepting publishes."""
        self.names = frozenset(names)
        self.published: list[Published] = []
        self.failing = False
        self.fail_next = 0  # the next N publishes fail UNAVAILABLE, then they are accepted
        self._lock = threading.Lock()

    def publish(self, item: Published) -> None:
        """Accept one event, or raise `_Abort` (unknown component, or failing)."""
        with self._lock:
            if item.pubsub_name not in self.names:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"pubsub {item.pubsub_name} is not found"
                )
            if self.failing or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                raise _Abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"error when publish to topic {item.topic} in pubsub {item.pubsub_name}: "
                    "connection refused",
                )
            self.published.append(item)


class _DaprServicer(api_service_v1.DaprServicer):
    def __init__(self, stores: StateStores, calls: Counter[str], pubsub: PubSub) -> None:
        self._stores = stores
        self._calls = calls
        self._pubsub = pubsub

    def PublishEvent(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._calls["PublishEvent"] += 1
        try:
            self._pubsub.publish(
                Published(
                    pubsub_name=request.pubsub_name,
                    topic=request.topic,
                    data=bytes(request.data),
                    data_content_type=request.data_content_type,
                    metadata=dict(request.metadata),
                )
            )
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        return empty_pb2.Empty()

    def GetState(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._calls["GetState"] += 1
        try:
            entry = self._stores.get(request.store_name, request.key)
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        if entry is None:
            return api_v1.GetStateResponse()
        metadata = {}
        if entry.expires_at is not None:
            expire = datetime.fromtimestamp(entry.expires_at, UTC)
            metadata["ttlExpireTime"] = expire.isoformat().replace("+00:00", "Z")
        return api_v1.GetStateResponse(data=entry.value, etag=entry.etag, metadata=metadata)

    def SaveState(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._calls["SaveState"] += 1
        try:
            for item in request.states:
                self._stores.save(
                    request.store_name,
                    item.key,
                    bytes(item.value),
                    etag=item.etag.value if item.HasField("etag") else None,
                    first_write=item.HasField("options")
                    and item.options.concurrency == _FIRST_WRITE,
                    ttl_seconds=_ttl(item.metadata),
                )
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        return empty_pb2.Empty()

    def DeleteState(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._calls["DeleteState"] += 1
        try:
            self._stores.delete(
                request.store_name,
                request.key,
                etag=request.etag.value if request.HasField("etag") else None,
            )
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        return empty_pb2.Empty()


class _HealthHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/v1.0/healthz/outbound", "/v1.0/healthz"):
            self.send_response(204)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the test output is not the place for access logs."""


class FakeDaprSidecar:
    """A running fake sidecar: gRPC and HTTP on free loopback ports, stopped by `stop()`."""

    def __init__(
        self, state_stores: Iterable[str] = ("statestore",), pubsubs: Iterable[str] = ("pubsub",)
    ) -> None:
        """Start both servers now; `env()` gives the variables a client process needs."""
        self.calls: Counter[str] = Counter()
        self.stores = StateStores(state_stores)
        self.pubsub = PubSub(pubsubs)
        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=16))
        api_service_v1.add_DaprServicer_to_server(
            _DaprServicer(self.stores, self.calls, self.pubsub), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
        self._http.daemon_threads = True
        self.http_port = int(self._http.server_address[1])
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._http_thread.start()

    @property
    def published(self) -> list[Published]:
        """Events the pub/sub accepted, in arrival order (a copy)."""
        with self.pubsub._lock:
            return list(self.pubsub.published)

    @property
    def publish_failing(self) -> bool:
        """Whether every publish fails UNAVAILABLE (the broker is unreachable)."""
        return self.pubsub.failing

    @publish_failing.setter
    def publish_failing(self, value: bool) -> None:
        self.pubsub.failing = value

    def env(self) -> dict[str, str]:
        """The variables ACA sets for a Dapr-enabled app, pointing at this fake."""
        return {"DAPR_HTTP_PORT": str(self.http_port), "DAPR_GRPC_PORT": str(self.grpc_port)}

    def stop(self) -> None:
        """Stop both servers (in-flight gRPC calls get one second)."""
        self._grpc.stop(grace=1).wait()
        self._http.shutdown()
        self._http.server_close()


@contextmanager
def running_sidecar(
    state_stores: Iterable[str] = ("statestore",), pubsubs: Iterable[str] = ("pubsub",)
) -> Iterator[FakeDaprSidecar]:
    """A fake sidecar for the duration of a `with` block."""
    sidecar = FakeDaprSidecar(state_stores, pubsubs)
    try:
        yield sidecar
    finally:
        sidecar.stop()


def main() -> None:
    """Run a fake sidecar until interrupted (for trying the app against it by hand)."""
    with running_sidecar(os.environ.get("DAPR_STATE_STORE", "statestore").split(",")) as sidecar:
        print(" ".join(f"{k}={v}" for k, v in sidecar.env().items()), flush=True)  # noqa: T201
        threading.Event().wait()


if __name__ == "__main__":
    main()
