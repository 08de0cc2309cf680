"""Background runs through the queue, end to end on dev host processes: crash, poison, scale.

A slow model is a real wire-level stand-in: a loopback HTTP server speaking Chat Completions
that holds requests until the test releases them, so a run is observably in progress when its
worker is killed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local.devhost_process import free_port
from tests.conftest import POSTGRES_URL, DevHost, start_devhost
from tests.queue_support import azurite, wait_for

ANSWER = "Answer from the stand-in model."
FAST: dict[str, str] = {
    "ASCENT_RUN_LEASE_SECONDS": "1",
    "ASCENT_QUEUE_MESSAGE_LEASE_SECONDS": "1",
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.2",
    "ASCENT_RATE_LIMIT_PER_MINUTE": "0",
    "ASCENT_KEY_RATE_LIMIT_PER_MINUTE": "0",
    "ASCENT_MAX_CONCURRENT_RUNS": "0",
}


class StandInModel:
    """A Chat Completions server on loopback that holds requests until released."""

    def __init__(self) -> None:
        """Start serving on a free port."""
        self.release = threading.Event()
        self.received = 0
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                model.received += 1
                model.release.wait(60)
                chunks: list[dict[str, Any]] = [
                    {"delta": {"role": "assistant", "content": ANSWER}, "finish_reason": None},
                    {"delta": {}, "finish_reason": "stop"},
                ]
                body = b""
                for choice in chunks:
                    data = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": "stand-in",
                        "choices": [{"index": 0, **choice}],
                    }
                    body += f"data: {json.dumps(data)}\n\n".encode()
                body += b"data: [DONE]\n\n"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the worker that asked was killed

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        """Release held requests and stop serving."""
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def stand_in() -> Iterator[StandInModel]:
    """A stand-in model server for one test."""
    model = StandInModel()
    yield model
    model.close()


def _sqlite_rows(data_dir: Path, sql: str, *args: Any) -> list[Any]:
    with sqlite3.connect(data_dir / "ascent.db") as conn:
        return list(conn.execute(sql, args).fetchall())


def test_killed_worker_mid_run_still_finishes_exactly_once(
    tmp_path: Path, stand_in: StandInModel
) -> None:
    """kill -9 of the worker inside a model call: another worker finishes it once."""
    data = tmp_path / "data"
    env = {
        **FAST,
        "MODEL_PROVIDER": "compatible",
        "OPENAI_BASE_URL": stand_in.base_url,
        "OPENAI_API_KEY": "stand-in",
        "MODEL_NAME": "stand-in",
    }
    first = start_devhost(data, extra_env=env)
    second: DevHost | None = None
    try:
        with first.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run_id = client.post(
                f"/threads/{thread_id}/runs", json={"agent_id": "assistant", "input": "ping"}
            ).json()["run_id"]
        wait_for(lambda: stand_in.received >= 1, "the first worker to call the model")
        first.process.kill()
        first.process.wait(10)
        stand_in.release.set()
        second = start_devhost(data, extra_env={**env, "ASCENT_DEV_API_KEY": first.api_key})
        with second.client(key=first.api_key) as client:
            wait_for(
                lambda: client.get(f"/runs/{run_id}").json()["status"] in ("success", "error"),
                "the run to finish on the second worker",
            )
            run = client.get(f"/runs/{run_id}").json()
            assert run["status"] == "success", run
        ends = _sqlite_rows(
            data, "SELECT count(*) FROM run_events WHERE run_id = ? AND event = 'end'", run_id
        )
        assert ends == [(1,)]
        conv = _sqlite_rows(
            data,
            "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id",
            f"dev:{thread_id}",
        )
        texts = [json.dumps(json.loads(m)) for (m,) in conv]
        assert sum("ping" in t and '"user"' in t for t in texts) == 1
        assert sum(ANSWER in t for t in texts) == 1
        tables = {n for (n,) in _sqlite_rows(data, "SELECT name FROM sqlite_master")}
        if "outbox_events" in tables:
            completed = _sqlite_rows(
                data,
                "SELECT count(*) FROM outbox_events WHERE subject = ? AND type LIKE '%completed'",
                run_id,
            )
            assert completed == [(1,)]
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_always_failing_run_message_is_poisoned_and_its_run_errors(tmp_path: Path) -> None:
    """A run whose execution always fails (session store down) is dead-lettered, then `error`."""
    dead = free_port()
    env = {
        **FAST,
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "3",
        "SESSION_BACKEND": "upstash",
        "UPSTASH_REDIS_REST_URL": f"http://127.0.0.1:{dead}",
        "UPSTASH_REDIS_REST_TOKEN": "unused",
    }
    host = start_devhost(tmp_path / "data", extra_env=env)
    try:
        with host.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run_id = client.post(f"/threads/{thread_id}/runs", json={"input": "fail"}).json()[
                "run_id"
            ]
            wait_for(
                lambda: client.get(f"/runs/{run_id}").json()["status"] == "error",
                "the run to be marked error",
                deadline=60,
            )
            run = client.get(f"/runs/{run_id}").json()
        assert "agent-runs-poison" in str(run["error"])
        log = host.log_path.read_text()
        assert log.count("failed on message") == 3
    finally:
        host.stop()


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_500_background_runs_on_two_hosts_each_succeed_once(tmp_path: Path) -> None:
    """Two dev hosts on one Postgres and one Azurite: 500 background runs, each one success."""
    assert POSTGRES_URL is not None
    name = f"ascent_q_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    hosts: list[DevHost] = []
    try:
        with azurite(tmp_path / "azurite") as connection:
            env = {**FAST, "QUEUE_BACKEND": "azure", "AzureWebJobsStorage": connection}
            env["ASCENT_RUN_LEASE_SECONDS"] = "30"
            env["ASCENT_QUEUE_MESSAGE_LEASE_SECONDS"] = "30"
            hosts.append(start_devhost(tmp_path / "a", database_url=url, extra_env=env))
            key = hosts[0].api_key
            env["ASCENT_DEV_API_KEY"] = key
            hosts.append(start_devhost(tmp_path / "b", database_url=url, extra_env=env))

            def create(i: int) -> str:
                with hosts[i % 2].client(key=key) as client:
                    response = client.post("/runs", json={"input": f"run {i}"})
                    assert response.status_code == 200, response.text
                    return str(response.json()["run_id"])

            with ThreadPoolExecutor(16) as pool:
                run_ids = set(pool.map(create, range(500)))
            assert len(run_ids) == 500

            def statuses() -> dict[str, int]:
                with psycopg.connect(url) as conn:
                    rows = conn.execute("SELECT status, count(*) FROM runs GROUP BY status")
                    return {str(s): int(n) for s, n in rows.fetchall()}

            wait_for(lambda: statuses().get("success") == 500, "500 successes", deadline=240)
            with psycopg.connect(url) as conn:
                ends = conn.execute(
                    "SELECT run_id, count(*) FROM run_events WHERE event = 'end' GROUP BY run_id"
                ).fetchall()
            assert len(ends) == 500 and {n for _, n in ends} == {1}
            assert statuses() == {"success": 500}
    finally:
        for host in hosts:
            host.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
