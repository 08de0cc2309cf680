"""A full session on a dev host at debug log level leaves no key or secret in its logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from local.devhost_process import ROOT, SETTINGS_ENV, free_port
from tests.security_support import ADMIN_KEY

pytestmark = pytest.mark.e2e


def _start_debug_host(
    data_dir: Path, env_extra: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    """Start the dev host with --log-level debug, logs (stderr) to devhost.log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    env.update(ASCENT_DATA_DIR=str(data_dir), ASCENT_ENV="test", PYTHONUNBUFFERED="1", **env_extra)
    stderr = (data_dir / "devhost.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.devhost", "--port", str(port), "--log-level", "debug"],
        cwd=ROOT,
        env=env,
        stdout=(data_dir / "stdout.txt").open("w"),
        stderr=stderr,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError((data_dir / "devhost.log").read_text())


def test_debug_logs_hold_no_secrets(tmp_path: Path) -> None:
    """Dev key, issued key, wrong keys, admin key and secrets in user input never reach the log."""
    dev_key = f"asc_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}DEVSECRET"
    wrong_key = f"asc_{uuid.uuid4().hex[:12]}_WRONGSECRET{uuid.uuid4().hex}"
    in_input = f"asc_{uuid.uuid4().hex[:12]}_INPUTSECRET{uuid.uuid4().hex}"
    url_password = "PWSECRET" + uuid.uuid4().hex[:8]
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.JWTSECRETSIGNATURE"
    process, base = _start_debug_host(
        tmp_path, {"ASCENT_DEV_API_KEY": dev_key, "ASCENT_ADMIN_KEY": ADMIN_KEY}
    )
    try:
        dev = {"Authorization": f"Bearer {dev_key}"}
        message = f"my key is {in_input} and db is postgresql://u:{url_password}@db/x"
        run = httpx.post(
            f"{base}/agents/assistant/runs", json={"input": message}, headers=dev, timeout=30
        )
        assert run.status_code == 200, run.text
        for token in (wrong_key, jwt_like, ADMIN_KEY + "x"):
            refused = httpx.get(
                f"{base}/agents", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert refused.status_code == 401
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        issued = httpx.post(
            f"{base}/platform/tenants/dev/keys", json={"name": "n"}, headers=admin, timeout=30
        ).json()["key"]
    finally:
        process.terminate()
        process.wait(10)
    log = (tmp_path / "devhost.log").read_text()
    assert "DEBUG" in log  # the log really is at debug level
    secrets = {
        "dev key": dev_key.split("_", 2)[2],
        "wrong key": wrong_key.split("_", 2)[2],
        "key in input": in_input.split("_", 2)[2],
        "url password": url_password,
        "jwt": "JWTSECRETSIGNATURE",
        "admin key": ADMIN_KEY,
        "issued key": issued.split("_", 2)[2],
    }
    assert [name for name, value in secrets.items() if value in log] == []
