"""Helpers of the UI tests: tool checks, rate-limited tenants, screenshot paths."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from local.uihost import UI_PYTHON
from tests.security_support import admin, new_tenant_with_key

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("ASCENT_CHROMIUM", "/usr/bin/chromium")
# The shared dev host's offline model pauses this long before each streamed text chunk, so a
# browser sees an answer grow while its run is still going (a 60-word answer takes ~0.6 s).
TOKEN_DELAY_MS = 10


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
