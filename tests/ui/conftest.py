"""The UI tests' shared processes: ONE dev host for the client and browser tests, one UI process.

Package-scoped, so `pytest tests/ui` starts each once (under xdist's `--dist loadfile` a worker
that gets only one of the two modules starts only what that module uses).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.devhost_process import wait_healthy
from local.uihost import UiProcess, spawn_ui
from tests.conftest import DevHost, spawn_devhost
from tests.security_support import ADMIN_KEY
from tests.ui.ui_support import TOKEN_DELAY_MS, require_ui_tools


@pytest.fixture(scope="package")
def api_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """The API, started (not yet healthy): the platform admin key (for rate-limited tenants)
    and an offline model that streams at a watchable pace (ASCENT_OFFLINE_TOKEN_DELAY_MS)."""
    require_ui_tools(browser=False)
    env = {"ASCENT_ADMIN_KEY": ADMIN_KEY, "ASCENT_OFFLINE_TOKEN_DELAY_MS": str(TOKEN_DELAY_MS)}
    started = spawn_devhost(tmp_path_factory.mktemp("ui-api"), extra_env=env)
    yield started
    started.stop()


@pytest.fixture(scope="package")
def host(api_process: DevHost) -> DevHost:
    """The API once /api/health answers."""
    wait_healthy(api_process, poll=0.1)
    return api_process


@pytest.fixture(scope="package")
def ui_process(
    api_process: DevHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiProcess]:
    """The real UI process against the API, started while the API starts (not yet ready: the
    browser fixture waits for it); it calls the API only when someone signs in."""
    require_ui_tools(browser=True)
    started = spawn_ui(api_process.base_url, tmp_path_factory.mktemp("ui-app"))
    yield started
    started.stop()
