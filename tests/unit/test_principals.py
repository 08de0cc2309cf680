"""Who is tenant-wide: API keys, tenant admins by app role, and crons acting as their creator."""

from __future__ import annotations

import base64
import json

import pytest

from shared.api.openai_compat import user_thread_id
from shared.core.settings import get_settings
from shared.db.jobs_models import Cron
from shared.runs.crons import acting_principal
from shared.security.auth import Principal
from shared.security.jwt_auth import client_principal_roles, is_tenant_admin


def test_an_api_key_is_tenant_wide() -> None:
    """A principal without a user (an API key) sees every thread of its tenant."""
    assert Principal(tenant_id="t", key_id="k").tenant_wide


def test_a_user_is_not_tenant_wide() -> None:
    """A bearer-token user sees only their own and granted threads."""
    assert not Principal(tenant_id="t", key_id="user:u", user_id="u").tenant_wide


def test_a_tenant_admin_is_tenant_wide() -> None:
    """A user holding the tenant admin role sees every thread of its tenant."""
    assert Principal(tenant_id="t", key_id="user:u", user_id="u", tenant_admin=True).tenant_wide


def test_the_admin_role_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCENT_TENANT_ADMIN_ROLE names the role; the default Ascent.TenantAdmin then is not it."""
    assert is_tenant_admin(["Reader", "Ascent.TenantAdmin"])
    monkeypatch.setenv("ASCENT_TENANT_ADMIN_ROLE", "Ops.Admin")
    get_settings.cache_clear()
    assert is_tenant_admin(["Ops.Admin"])
    assert not is_tenant_admin(["Ascent.TenantAdmin", "ops.admin"])


def _header(claims: list[dict[str, str]], role_typ: str | None = None) -> str:
    data: dict[str, object] = {"auth_typ": "aad", "claims": claims}
    if role_typ is not None:
        data["role_typ"] = role_typ
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_client_principal_roles_are_every_role_claim() -> None:
    """Every claim of the principal's role_typ is a role (one claim per role)."""
    custom = "http://example.test/role"
    claims = [
        {"typ": custom, "val": "A"},
        {"typ": custom, "val": "B"},
        {"typ": "name", "val": "C"},
    ]
    assert client_principal_roles(_header(claims, role_typ=custom)) == ["A", "B"]


def test_client_principal_roles_claim_is_read_without_a_role_typ() -> None:
    """Entra's `roles` claims count even when the principal names no role_typ."""
    assert client_principal_roles(_header([{"typ": "roles", "val": "A"}])) == ["A"]


def _cron(payload: dict[str, object], user_id: str | None) -> Cron:
    return Cron(
        id="c1",
        tenant_id="t",
        user_id=user_id,
        agent="assistant",
        schedule="* * * * *",
        payload=payload,
    )


def test_a_users_cron_acts_as_that_user() -> None:
    """A cron a user created runs as that user, without tenant-wide access."""
    principal = acting_principal(_cron({"owner_id": "u", "tenant_admin": False}, "u"))
    assert (principal.user_id, principal.tenant_wide) == ("u", False)


def test_a_tenant_admins_cron_keeps_tenant_wide_access() -> None:
    """A cron a tenant admin created acts as that user, tenant-wide."""
    principal = acting_principal(_cron({"owner_id": "u", "tenant_admin": True}, "u"))
    assert (principal.user_id, principal.tenant_wide) == ("u", True)


def test_an_api_keys_cron_acts_as_the_key() -> None:
    """A cron an API key created acts as that key: no user, tenant-wide, the key's id."""
    principal = acting_principal(_cron({"owner_id": None, "tenant_admin": False}, "key-1"))
    assert (principal.key_id, principal.user_id, principal.tenant_wide) == ("key-1", None, True)


def test_a_cron_stored_before_owners_stays_tenant_wide() -> None:
    """A cron without the acting fields keeps acting as it did: its user id, tenant-wide."""
    principal = acting_principal(_cron({"input": []}, "u"))
    assert (principal.user_id, principal.tenant_wide) == ("u", True)


def test_openai_user_threads_are_per_signed_in_user() -> None:
    """The same OpenAI `user` maps to distinct threads for distinct signed-in users."""
    ids = {
        user_thread_id("t", "ada"),
        user_thread_id("t", "ada", principal_user="u1"),
        user_thread_id("t", "ada", principal_user="u2"),
    }
    assert len(ids) == 3


def test_openai_user_threads_of_api_keys_keep_their_ids() -> None:
    """Without a signed-in user the derivation is unchanged, so existing threads are found."""
    assert user_thread_id("t", "ada") == "4f549bd5-e2e5-5741-9ad2-b016970ba29e"
