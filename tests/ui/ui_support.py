"""Helpers of the UI tests: a dev host plus the real UI process, Chromium, and the chat page."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.uihost import UI_PYTHON, UiProcess, spawn_ui, wait_ready
from tests.conftest import DevHost, start_devhost
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("ASCENT_CHROMIUM", "/usr/bin/chromium")


@dataclass
class Stack:
    """A dev host (API) and the UI process pointed at it."""

    host: DevHost
    ui: UiProcess

    def stop(self) -> None:
        """Stop the UI, then the API."""
        self.ui.stop()
        self.host.stop()


def require_ui_tools(*, browser: bool) -> None:
    """Skip (fail under CI=true) when ui/.venv or Chromium is missing."""
    missing = [] if UI_PYTHON.exists() else ["ui/.venv (make ui-install)"]
    if browser and shutil.which(CHROMIUM) is None:
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "the UI tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def start_stack(data_dir: Path) -> Stack:
    """A dev host with the platform admin key (to make rate-limited tenants) and the UI."""
    host = start_devhost(data_dir, extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY})
    try:
        ui = spawn_ui(host.base_url, data_dir / "ui")
        wait_ready(ui)
    except BaseException:
        host.stop()
        raise
    return Stack(host, ui)


def rate_limited_key(base_url: str, per_minute: int) -> str:
    """A key of a new tenant whose whole budget is `per_minute` requests a minute."""
    tenant_id, issued = new_tenant_with_key(base_url)
    limits = {
        "requests_per_minute": per_minute,
        "key_requests_per_minute": None,
        "concurrent_runs": None,
        "tokens_per_day": None,
    }
    with admin(base_url) as client:
        response = client.put(f"/platform/tenants/{tenant_id}/limits", json=limits)
        assert response.status_code == 200, response.text
    return str(issued["key"])


def screenshot_path(name: str) -> str:
    """Where a test's final-state screenshot goes (test-artifacts/ui/, gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{re.sub(r'[^a-z0-9_]+', '_', name.lower())}.png")
