"""Start the UI (Chainlit, in its own virtualenv `ui/.venv`) as a child process.

`python -m local.uihost` is what `make dev` runs: the API dev host and the UI together, both
URLs printed, both stopped on Ctrl-C. Tests start the UI through `spawn_ui` against their own
dev host. The UI reaches the API over HTTP only (ASCENT_API_URL); nothing here imports it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from local.devhost_process import ROOT, SETTINGS_ENV, free_port

UI_DIR = ROOT / "ui"
UI_PYTHON = UI_DIR / ".venv" / "bin" / "python"


@dataclass
class UiProcess:
    """A running UI process and its URL."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The end of the UI's output, for error messages."""
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


def auth_secret(data_dir: Path) -> str:
    """The development CHAINLIT_AUTH_SECRET, made once and kept (0600) in the data dir."""
    path = data_dir / "ui_auth_secret"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def spawn_ui(
    api_url: str,
    data_dir: Path,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
) -> UiProcess:
    """Start `chainlit run` on the UI app against `api_url` (not yet ready)."""
    if not UI_PYTHON.exists():
        raise RuntimeError("ui/.venv is missing: run `make ui-install` (make dev and test do)")
    port = port or free_port()
    # The API's settings stay with the API. DATABASE_URL above all: Chainlit would take it as
    # its own data layer's database, and the UI keeps no state.
    child_env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    child_env.update(
        ASCENT_API_URL=api_url,
        CHAINLIT_AUTH_SECRET=os.environ.get("CHAINLIT_AUTH_SECRET") or auth_secret(data_dir),
        PYTHONPATH=str(UI_DIR),
        PYTHONUNBUFFERED="1",
        # Chainlit's files (uploads) go under the data dir, not the source tree.
        CHAINLIT_FILES_DIRECTORY=str(data_dir / "ui-files"),
    )
    child_env.update(env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"ui-{port}.log"
    command = [
        str(UI_PYTHON), "-m", "chainlit", "run", "ascent_ui/app.py",
        "--headless", "--host", host, "--port", str(port),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command, cwd=UI_DIR, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
    return UiProcess(process, f"http://{host}:{port}", log_path)


def wait_ready(ui: UiProcess, *, timeout: float = 90.0, poll: float = 0.05) -> None:
    """Poll the UI's page until it answers 200; stop it and raise with its log otherwise."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if ui.process.poll() is not None:
                raise RuntimeError(f"UI exited early:\n{ui.log_tail()}")
            with suppress(httpx.TransportError):
                if client.get(ui.url).status_code == 200:
                    return
            time.sleep(poll)
    ui.stop()
    raise RuntimeError(f"UI did not become ready:\n{ui.log_tail()}")


def main(argv: list[str] | None = None) -> int:
    """`make dev`: the API dev host and the UI together; print both URLs; stop both on exit."""
    parser = argparse.ArgumentParser(prog="python -m local.uihost", description=__doc__)
    parser.add_argument("--api-port", type=int, default=7071)
    parser.add_argument("--ui-port", type=int, default=8000)
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("ASCENT_DATA_DIR") or ROOT / ".ascent")
    api = subprocess.Popen(  # noqa: S603 - a fixed command line
        [sys.executable, "-m", "local.devhost", "--port", str(args.api_port)], cwd=ROOT
    )
    api_url = f"http://127.0.0.1:{args.api_port}/api"
    ui = spawn_ui(api_url, data_dir, port=args.ui_port)
    try:
        wait_ready(ui)
        print(f"Ascent UI on {ui.url}  (sign in: any name, the development API key as password)")
        print(f"Ascent API on {api_url}")
        api.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ui.stop()
        if api.poll() is None:
            api.terminate()
            api.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
