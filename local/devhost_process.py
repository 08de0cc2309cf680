"""Run `python -m local.devhost` as a child process: the one launcher tests and benchmarks share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# Settings a child host must not inherit from the caller's shell: the caller decides them.
SETTINGS_ENV = (
    "DATABASE_URL",
    "ASCENT_DATA_DIR",
    "ASCENT_ENV",
    "MODEL_PROVIDER",
    "MODEL_NAME",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AZURE_OPENAI_ENDPOINT",
    "ASCENT_DEV_API_KEY",
    # MCP servers change which tools the agents have: a test host declares its own.
    "ASCENT_MCP_TOOLS_URL",
    "ASCENT_MCP_SERVERS",
)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DevHostProcess:
    """A running dev host process and how to talk to it."""

    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        """The bearer header of the host's development key."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client on the host's `/api` base, sending the key as a bearer token."""
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the host's output, for error messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def spawn(
    data_dir: Path, *, env: Mapping[str, str], extra_args: Sequence[str] = ()
) -> DevHostProcess:
    """Start a dev host on a free port with its own data dir and key (not yet healthy).

    The child gets the caller's environment minus SETTINGS_ENV, then `env`; its output goes to
    `<data_dir>/devhost-<port>.log`.
    """
    port = free_port()
    api_key = f"asc_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    child_env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    child_env.update(
        ASCENT_DATA_DIR=str(data_dir), ASCENT_DEV_API_KEY=api_key, PYTHONUNBUFFERED="1"
    )
    child_env.update(env)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"devhost-{port}.log"
    command = [sys.executable, "-m", "local.devhost", "--port", str(port), "--log-level"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "warning", *extra_args],
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return DevHostProcess(process, f"http://127.0.0.1:{port}/api", api_key, log_path)


def wait_healthy(host: DevHostProcess, *, timeout: float = 60.0, poll: float = 0.02) -> None:
    """Poll /api/health until it answers 200; stop the host and raise with its log otherwise."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if host.process.poll() is not None:
                raise RuntimeError(f"dev host exited early:\n{host.log_tail()}")
            with suppress(httpx.TransportError):
                if client.get(f"{host.base_url}/health").status_code == 200:
                    return
            time.sleep(poll)
    host.stop()
    raise RuntimeError(f"dev host did not become healthy:\n{host.log_tail()}")
