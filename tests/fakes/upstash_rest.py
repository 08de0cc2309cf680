"""A small Upstash Redis REST front over a real Redis: the protocol `upstash-redis` speaks.

Upstash itself is a cloud service; its documented local stand-in (SRH) is a container image,
which these machines cannot run. This stdlib HTTP server implements the same subset SRH does,
proxying every command to the real Redis (default `redis://127.0.0.1:6379/0`):

- `POST /` with a JSON array (`["RPUSH", "k", "v"]`) -> `{"result": ...}`, or HTTP 400
  `{"error": "ERR ..."}` when Redis answers an error.
- `POST /pipeline` with an array of command arrays -> an array of `{"result"}` / `{"error"}`
  objects, one per command, run in order on one connection (not atomic).
- `POST /multi-exec` -> the same shape, run inside MULTI/EXEC (atomic); a command Redis refuses
  to queue aborts the whole transaction with HTTP 400 `{"error": "EXECABORT ..."}`.
- `Authorization: Bearer <token>` is required (HTTP 401 `{"error": "Unauthorized"}` otherwise).
- `Upstash-Encoding: base64` makes every string in a result base64 (the status reply `OK`
  excepted, as Upstash does); without it strings are sent as UTF-8 text.

Replies are Redis's raw RESP2 values, read by a small RESP client here, so integers stay
integers, nil is `null` and error text is Redis's own ("ERR ..."), as Upstash sends them.
Telemetry and sync-token headers are ignored.
"""

from __future__ import annotations

import base64
import hmac
import json
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class RedisError(Exception):
    """An error reply from Redis, with its text exactly as Redis sent it ("ERR ...")."""


def _encode(value: Any, b64: bool) -> Any:
    if isinstance(value, bytes):
        if value == b"OK":
            return "OK"
        if b64:
            return base64.b64encode(value).decode("ascii")
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_encode(element, b64) for element in value]
    if isinstance(value, RedisError):
        return str(value)
    return value  # int or None


def _command(raw: Any) -> list[str | int | float]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("ERR a command must be a non-empty JSON array")
    for arg in raw:
        if isinstance(arg, bool) or not isinstance(arg, str | int | float):
            raise ValueError("ERR command arguments must be strings or numbers")
    return raw


class _Connection:
    """One RESP2 connection to Redis; replies are parsed raw, errors kept verbatim."""

    def __init__(self, redis_url: str) -> None:
        url = urlsplit(redis_url)
        self._sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379))
        self._reader = self._sock.makefile("rb")
        if url.password:
            self.call(
                ["AUTH", *([unquote(url.username)] if url.username else []), unquote(url.password)]
            )
        db = url.path.strip("/")
        if db and db != "0":
            self.call(["SELECT", db])

    def send(self, command: list[str | int | float]) -> None:
        """Send one command as a RESP array of bulk strings."""
        parts = [f"*{len(command)}\r\n".encode()]
        for arg in command:
            data = arg.encode() if isinstance(arg, str) else repr(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))

    def read(self) -> Any:
        """Read one reply: bytes, int, None, a list, or a RedisError (not raised)."""
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RedisError(rest.decode("utf-8", errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._reader.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.read() for _ in range(size)]
        raise ConnectionError(f"unexpected RESP reply {line!r}")

    def call(self, command: list[str | int | float]) -> Any:
        """Send a command and read its reply."""
        self.send(command)
        return self.read()

    def close(self) -> None:
        """Close the socket."""
        self._reader.close()
        self._sock.close()


def _outcome(reply: Any) -> dict[str, Any]:
    return {"error": str(reply)} if isinstance(reply, RedisError) else {"result": reply}


class _Proxy:
    """Runs commands on pooled connections to the real Redis, returning raw replies."""

    def __init__(self, redis_url: str) -> None:
        self._url = redis_url
        self._idle: queue.LifoQueue[_Connection] = queue.LifoQueue()

    @contextmanager
    def _connection(self) -> Iterator[_Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = _Connection(self._url)
        try:
            yield conn
        except BaseException:
            conn.close()  # a half-read reply must not go back to the pool
            raise
        self._idle.put(conn)

    def one(self, command: list[str | int | float]) -> dict[str, Any]:
        """One command: its reply or its error."""
        with self._connection() as conn:
            return _outcome(conn.call(command))

    def pipeline(self, commands: list[list[str | int | float]]) -> list[dict[str, Any]]:
        """Commands in order on one connection, each with its own reply or error."""
        with self._connection() as conn:
            for command in commands:
                conn.send(command)
            return [_outcome(conn.read()) for _ in commands]

    def multi_exec(self, commands: list[list[str | int | float]]) -> list[dict[str, Any]]:
        """Commands in one MULTI/EXEC; raises RedisError when Redis aborts the transaction."""
        with self._connection() as conn:
            for command in (["MULTI"], *commands, ["EXEC"]):
                conn.send(command)
            queued = [conn.read() for _ in range(len(commands) + 1)]
            replies = conn.read()
            if isinstance(replies, RedisError):
                reasons = "; ".join(str(r) for r in queued if isinstance(r, RedisError))
                raise RedisError(f"{replies} ({reasons})" if reasons else str(replies))
            if replies is None:
                raise RedisError("EXECABORT transaction aborted")
            return [_outcome(reply) for reply in replies]

    def close(self) -> None:
        """Close the idle connections."""
        while not self._idle.empty():
            self._idle.get_nowait().close()


class UpstashRestFront:
    """A running REST front on a free loopback port; `url` and `token` are what clients need."""

    def __init__(self, token: str, redis_url: str = DEFAULT_REDIS_URL) -> None:
        """Start serving now; stop with `stop()`."""
        self.token = token
        self.proxy = _Proxy(redis_url)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as two writes: without this, Nagle + delayed ACK
                # add ~40 ms to every keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                if not hmac.compare_digest(auth.encode(), f"Bearer {front.token}".encode()):
                    self._reply(401, {"error": "Unauthorized"})
                    return
                b64 = self.headers.get("Upstash-Encoding", "").lower() == "base64"
                path = self.path.split("?", 1)[0].rstrip("/")
                try:
                    payload = json.loads(body)
                    if path == "":
                        outcome = front.proxy.one(_command(payload))
                        status = 400 if "error" in outcome else 200
                        self._reply(status, _encode_outcome(outcome, b64))
                    elif path in ("/pipeline", "/multi-exec"):
                        if not isinstance(payload, list) or not payload:
                            raise ValueError("ERR a pipeline must be a non-empty JSON array")
                        commands = [_command(c) for c in payload]
                        run = (
                            front.proxy.pipeline if path == "/pipeline" else front.proxy.multi_exec
                        )
                        outcomes = run(commands)
                        self._reply(200, [_encode_outcome(o, b64) for o in outcomes])
                    else:
                        self._reply(404, {"error": "ERR path-style commands are not supported"})
                except (ValueError, RedisError) as exc:
                    self._reply(400, {"error": str(exc)})

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: the test output is not the place for access logs."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """The variables `Redis.from_env()` (and Ascent's settings) read."""
        return {"UPSTASH_REDIS_REST_URL": self.url, "UPSTASH_REDIS_REST_TOKEN": self.token}

    def stop(self) -> None:
        """Stop serving and close the Redis connections."""
        self._server.shutdown()
        self._server.server_close()
        self.proxy.close()


def _encode_outcome(outcome: dict[str, Any], b64: bool) -> dict[str, Any]:
    if "error" in outcome:
        return outcome
    return {"result": _encode(outcome["result"], b64)}


@contextmanager
def running_front(token: str, redis_url: str = DEFAULT_REDIS_URL) -> Iterator[UpstashRestFront]:
    """A REST front for the duration of a `with` block."""
    front = UpstashRestFront(token, redis_url)
    try:
        yield front
    finally:
        front.stop()
