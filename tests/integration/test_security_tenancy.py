"""Platform admin authentication and key lifecycle, in process on an embedded database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import function_app
from shared.api.openapi import app_functions
from shared.core.errors import ConfigError, Forbidden, NotFound, Unauthorized
from shared.db.engine import db_session, get_engine
from shared.db.migrate import migrate
from shared.security.auth import authenticate
from shared.security.tenancy import (
    KeyCreate,
    TenantCreate,
    create_tenant,
    issue_key,
    require_admin,
    revoke_key,
    rotate_key,
)
from tests.security_support import ADMIN_KEY


@pytest.fixture
def admin_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Configure ASCENT_ADMIN_KEY for the test."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_ADMIN_KEY", ADMIN_KEY)
    get_settings.cache_clear()
    return ADMIN_KEY


@pytest.fixture
async def schema() -> AsyncIterator[None]:
    """The schema on this test's own SQLite file."""
    await migrate(get_engine())
    yield
    await get_engine().dispose()


def test_admin_api_is_disabled_without_setting() -> None:
    """With no ASCENT_ADMIN_KEY the admin API answers 404, even to a plausible key."""
    with pytest.raises(NotFound):
        require_admin(f"Bearer {ADMIN_KEY}")


def test_short_admin_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin key under 32 characters disables the API with a 500 config error."""
    from shared.core.settings import get_settings

    monkeypatch.setenv("ASCENT_ADMIN_KEY", "short")
    get_settings.cache_clear()
    with pytest.raises(ConfigError):
        require_admin("Bearer short")


def test_admin_key_is_accepted(admin_key: str) -> None:
    """The configured admin key passes."""
    require_admin(f"Bearer {admin_key}")


def test_missing_admin_key_is_401(admin_key: str) -> None:
    """No Authorization header is 401."""
    with pytest.raises(Unauthorized):
        require_admin(None)


def test_wrong_admin_key_is_401(admin_key: str) -> None:
    """A different secret is 401."""
    with pytest.raises(Unauthorized):
        require_admin(f"Bearer {admin_key[:-1]}")


def test_tenant_key_on_admin_api_is_403(admin_key: str) -> None:
    """A tenant API key is 403 on the admin API."""
    with pytest.raises(Forbidden):
        require_admin("Bearer asc_0123456789ab_secretsecretsecret")


async def test_revoked_key_fails_on_the_next_request(schema: None) -> None:
    """Authentication reads the key row every time: a revoked key fails immediately."""
    async with db_session() as db:
        tenant = await create_tenant(session=db, body=TenantCreate(name="T", id="t-revoke"))
        issued = await issue_key(session=db, tenant_id=tenant.id, name=KeyCreate().name)
    async with db_session() as db:
        await authenticate(session=db, authorization=f"Bearer {issued.key}")
        await revoke_key(session=db, tenant_id=tenant.id, key_id=issued.id)
    async with db_session() as db:
        with pytest.raises(Unauthorized):
            await authenticate(session=db, authorization=f"Bearer {issued.key}")


async def test_rotation_keeps_the_key_name(schema: None) -> None:
    """A rotated key's replacement carries the same name and a new prefix."""
    async with db_session() as db:
        await create_tenant(session=db, body=TenantCreate(name="T", id="t-rotate"))
        issued = await issue_key(session=db, tenant_id="t-rotate", name="ci")
        rotated = await rotate_key(session=db, tenant_id="t-rotate", key_id=issued.id)
    assert (rotated.name, rotated.prefix != issued.prefix) == ("ci", True)


def test_no_route_collides_with_host_reserved_paths() -> None:
    """No function route or name starts with `admin` or `runtime` (reserved by the host)."""
    clashes = []
    for function in app_functions(function_app.app):
        trigger = function.get_trigger()
        route = str(getattr(trigger, "route", "") or "")
        for text in (route.lower(), str(function.get_function_name()).lower()):
            if text.startswith(("admin", "runtime")):
                clashes.append(text)
    assert clashes == []
