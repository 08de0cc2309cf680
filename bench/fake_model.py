"""A loopback OpenAI-compatible model with a configurable latency, for benchmarks.

Run it as a process with `.venv/bin/python -m bench.fake_model --port P --latency 1.0`: it
binds 127.0.0.1 only, prints its root URL (`http://127.0.0.1:P`) on one line once it accepts
connections, and serves until SIGTERM/SIGINT. From Python, `running_fake_model(latency=...)`
starts it as a child process on a free port, waits until `GET /v1/models` answers, yields the
root URL and stops it afterwards. A dev host uses it with `MODEL_PROVIDER=compatible`,
`OPENAI_BASE_URL=<root URL>/v1`, `OPENAI_API_KEY=unused` (the Agents SDK's
`OpenAIProvider(use_responses=False, ...)`: Chat Completions). Nothing is fetched from the
network.

What it speaks:

- `POST /v1/chat/completions`: whatever the messages, a plain assistant answer (ANSWER, no tool
  call) with `usage` estimated from the request (about 4 characters a token). `stream: true`
  answers SSE `chat.completion.chunk` objects: the role, the answer in a few deltas, an empty
  delta with `finish_reason: stop`, then (with `stream_options.include_usage`) a chunk with no
  choices and the usage, then `data: [DONE]`.
- `GET /v1/models`: one model, plus whatever model a request named since the start.
- `GET /stats`: JSON counters: `requests` (all paths), `completions` (chat completions
  answered or started), `streamed`, `disconnected` (the client left before the end),
  `in_flight` (chat completions now between their request and their last byte) and
  `max_in_flight` (the most seen at once: how many model calls were really concurrent).
  `POST /stats/reset` zeroes the counters (max_in_flight restarts from the current in_flight)
  and answers the counters as they were, so a bench can read one phase's figures.

Latency: `--latency SECONDS` (default 1.0) passes between the request and the first byte of
the answer (status line included), an `asyncio.sleep`, so any number of requests wait at once;
`--token-interval SECONDS` (default 0) passes between streamed deltas. A client that leaves
during the wait is noticed (the request stops counting as in flight).

Built for well over 1,000 concurrent connections on loopback: a raw ASGI app on uvicorn
(uvloop and httptools when installed), a listen backlog of 4096, no concurrency limit, no
access log, and the open-files limit raised to its hard limit at start.

`python -m bench.fake_model --check` starts the server in-process on a free port and runs
one `Runner.run` and one `Runner.run_streamed` of an Agents SDK agent through
`OpenAIProvider(use_responses=False, base_url=..., api_key="unused")` against it, printing
their output and usage (tracing off); it exits 1 if either does not come back as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from local.devhost_process import free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_MODEL = "gpt-4.1-mini"
PROMPT = "Hello there, how are you today?"  # for --check
ANSWER = "I'm doing well, thank you for asking! How can I help you today?"
# The answer split into this many streamed content deltas (at word boundaries).
DELTAS = 6
BACKLOG = 4096

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _deltas(text: str, count: int) -> list[str]:
    """`text` in at most `count` pieces split at spaces (later pieces keep their leading space)."""
    words = text.split(" ")
    count = max(1, min(count, len(words)))
    bounds = [round(i * len(words) / count) for i in range(count + 1)]
    pieces = [" ".join(words[a:b]) for a, b in itertools.pairwise(bounds)]
    return [pieces[0]] + [" " + piece for piece in pieces[1:]]


def _tokens(text: str) -> int:
    """A rough token count: about 4 characters a token, at least 1."""
    return max(1, round(len(text) / 4))


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Estimate a request's prompt tokens from its messages and tool schemas."""
    total = 0
    for message in body.get("messages") or []:
        total += 4  # per-message framing, as OpenAI counts it
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += _tokens(content)
        elif isinstance(content, list):
            total += sum(
                _tokens(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    if body.get("tools"):
        total += _tokens(json.dumps(body["tools"]))
    return max(1, total)


@dataclass
class Stats:
    """What the server has seen since its start or the last reset."""

    requests: int = 0
    completions: int = 0
    streamed: int = 0
    disconnected: int = 0
    bad_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        in_flight = self.in_flight
        for name, value in asdict(Stats()).items():
            setattr(self, name, value)
        self.in_flight = self.max_in_flight = in_flight


class FakeModel:
    """The ASGI app: an OpenAI-compatible Chat Completions endpoint with a fixed latency."""

    def __init__(self, latency: float = 1.0, token_interval: float = 0.0) -> None:
        self.latency = latency
        self.token_interval = token_interval
        self.stats = Stats()
        self.models: dict[str, None] = {DEFAULT_MODEL: None}
        self.started = time.time()
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        self.stats.requests += 1
        method, path = scope["method"], scope["path"].rstrip("/")
        if path == "/v1/chat/completions" and method == "POST":
            await self._completion(receive, send)
        elif path == "/v1/models" and method == "GET":
            created = int(self.started)
            data = [
                {"id": name, "object": "model", "created": created, "owned_by": "bench"}
                for name in self.models
            ]
            await _json(send, 200, {"object": "list", "data": data})
        elif path == "/stats" and method == "GET":
            await _json(send, 200, self._stats_json())
        elif path == "/stats/reset" and method == "POST":
            before = self._stats_json()
            self.stats.reset()
            await _json(send, 200, before)
        else:
            await _json(send, 404, _error(f"No route {method} {path}", "not_found"))

    def _stats_json(self) -> dict[str, Any]:
        return {
            **asdict(self.stats),
            "latency": self.latency,
            "token_interval": self.token_interval,
        }

    async def _completion(self, receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("messages must be a list")
        except ValueError as exc:
            self.stats.bad_requests += 1
            await _json(send, 400, _error(f"Invalid request: {exc}", "invalid_request_error"))
            return
        model = str(body.get("model") or DEFAULT_MODEL)
        self.models.setdefault(model, None)
        stream = bool(body.get("stream"))
        stats = self.stats
        stats.completions += 1
        stats.streamed += stream
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        # The client leaving ends the request early; receive() says so once the body is read.
        left = asyncio.ensure_future(receive())
        try:
            if await _sleep_unless(left, self.latency):
                stats.disconnected += 1
                return
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            usage = _usage(_prompt_tokens(body), _tokens(ANSWER))
            if not stream:
                await _json(send, 200, _completion_json(completion_id, created, model, usage))
                return
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if not await self._stream(
                send, left, completion_id, created, model, usage, include_usage
            ):
                stats.disconnected += 1
        finally:
            left.cancel()
            # A reset during the request set in_flight to a count that includes this one.
            stats.in_flight = max(0, stats.in_flight - 1)

    async def _stream(
        self,
        send: Send,
        left: asyncio.Future[Message],
        completion_id: str,
        created: int,
        model: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> bool:
        """Send the SSE answer; False if the client left before its end."""
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", f"req_{next(self._ids)}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [chunk({"content": piece}, None) for piece in _deltas(ANSWER, DELTAS)]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**chunk({}, None), "choices": [], "usage": usage})
        for i, event in enumerate(events):
            if i > 1 and self.token_interval > 0 and await _sleep_unless(left, self.token_interval):
                return False
            data = b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        return True


async def _sleep_unless(left: asyncio.Future[Message], seconds: float) -> bool:
    """Sleep `seconds`; True at once if the client disconnected meanwhile (or had already)."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(left), seconds)
    return left.done() and not left.cancelled() and left.result()["type"] == "http.disconnect"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion_json(
    completion_id: str, created: int, model: str, usage: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": ANSWER,
        "refusal": None,
        "annotations": [],
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


def raise_open_files_limit() -> None:
    """Lift the soft open-files limit to the hard one: each connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server_for(app: FakeModel, port: int) -> uvicorn.Server:
    """A uvicorn server for the app on 127.0.0.1:port (0: any free port), not yet started."""
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        backlog=BACKLOG,
        limit_concurrency=None,
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=60,
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


async def serve(server: uvicorn.Server) -> None:
    """Serve until a signal stops the server; print the root URL once it accepts connections."""
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            await task  # raises what made it fail (e.g. the port is taken)
            raise SystemExit("the fake model server stopped before it started")
        await asyncio.sleep(0.01)
    print(f"http://{HOST}:{bound_port(server)}", flush=True)
    await task


@contextlib.contextmanager
def running_fake_model(
    latency: float = 1.0,
    port: int | None = None,
    *,
    token_interval: float = 0.0,
    timeout: float = 30.0,
) -> Iterator[str]:
    """A fake model child process for the duration of the block; yields its root URL.

    The OpenAI base URL is the yielded URL + "/v1". The child is stopped afterwards (SIGTERM,
    then SIGKILL), whatever happens; its stderr is shown if it fails to start.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "bench.fake_model", "--port", str(port)]
    command += ["--latency", str(latency), "--token-interval", str(token_interval)]
    base_url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env=os.environ.copy()
        )
        try:
            _wait_ready(process, base_url, timeout, log)
            yield base_url
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{base_url}/v1/models").status_code == 200:
                    return
            time.sleep(0.02)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise RuntimeError(f"fake model at {base_url} did not start:\n{output}")


def stats(base_url: str, *, reset: bool = False) -> dict[str, Any]:
    """The server's counters (GET /stats); with reset, as they were just before zeroing them."""
    with httpx.Client(timeout=10.0) as client:
        if reset:
            response = client.post(f"{base_url}/stats/reset")
        else:
            response = client.get(f"{base_url}/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


# --------------------------------------------------------------------------------------------
# --check: the real Agents SDK against the server, in-process
# --------------------------------------------------------------------------------------------


async def check(latency: float, token_interval: float) -> int:
    """Runner.run and Runner.run_streamed through OpenAIProvider(use_responses=False)."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIProvider,
        RunConfig,
        Runner,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    app = FakeModel(latency, token_interval)
    server = server_for(app, 0)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    base_url = f"http://{HOST}:{bound_port(server)}"
    failures: list[str] = []
    try:
        provider = OpenAIProvider(base_url=f"{base_url}/v1", api_key="unused", use_responses=False)
        config = RunConfig(model_provider=provider, tracing_disabled=True)
        agent = Agent(name="check", instructions="Answer briefly.", model=DEFAULT_MODEL)

        started = time.perf_counter()
        result = await Runner.run(agent, PROMPT, run_config=config)
        usage = result.context_wrapper.usage
        print(
            f"Runner.run          {time.perf_counter() - started:.3f} s  "
            f"output={result.final_output!r}  usage in/out/total="
            f"{usage.input_tokens}/{usage.output_tokens}/{usage.total_tokens}"
        )
        if result.final_output != ANSWER or usage.total_tokens <= 0:
            failures.append("Runner.run")

        # For a base URL other than api.openai.com the SDK sends no `stream_options` unless the
        # model settings ask for usage: then the answer carries none, as a real server's would.
        for include_usage in (None, True):
            settings = ModelSettings(include_usage=include_usage)
            streaming_agent = agent.clone(model_settings=settings)
            started = time.perf_counter()
            streamed = Runner.run_streamed(streaming_agent, PROMPT, run_config=config)
            deltas: list[str] = []
            async for event in streamed.stream_events():
                if (
                    event.type == "raw_response_event"
                    and event.data.type == "response.output_text.delta"
                ):
                    deltas.append(event.data.delta)
            usage = streamed.context_wrapper.usage
            print(
                f"Runner.run_streamed {time.perf_counter() - started:.3f} s  "
                f"include_usage={include_usage}  output={streamed.final_output!r}  "
                f"{len(deltas)} text deltas  usage in/out/total="
                f"{usage.input_tokens}/{usage.output_tokens}/{usage.total_tokens}"
            )
            expect_usage = bool(include_usage)
            if (
                streamed.final_output != ANSWER
                or "".join(deltas) != ANSWER
                or (usage.total_tokens > 0) != expect_usage
            ):
                failures.append(f"Runner.run_streamed include_usage={include_usage}")

        async with httpx.AsyncClient(base_url=base_url) as client:
            print(f"/stats              {(await client.get('/stats')).json()}")
    finally:
        server.should_exit = True
        await task
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print("ok: the Agents SDK accepts both answers")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fake_model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--latency", type=float, default=1.0, help="seconds before the first byte of an answer"
    )
    parser.add_argument(
        "--token-interval", type=float, default=0.0, help="seconds between streamed deltas"
    )
    parser.add_argument(
        "--check", action="store_true", help="run the Agents SDK against it in-process, then exit"
    )
    args = parser.parse_args(argv)
    if args.latency < 0 or args.token_interval < 0:
        parser.error("--latency and --token-interval must be >= 0")
    raise_open_files_limit()
    server = server_for(FakeModel(args.latency, args.token_interval), args.port)
    # uvicorn's own loop choice: uvloop when installed.
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        if args.check:
            return runner.run(check(args.latency, args.token_interval))
        runner.run(serve(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
