"""API key lifecycle through the platform admin API, on two dev hosts sharing one database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, POSTGRES_URL, DevHost, start_devhost
from tests.security_support import ADMIN_KEY, admin, new_tenant_with_key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BACKENDS)
def hosts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DevHost, DevHost]]:
    """Two dev host processes on one data dir / database, both with the admin key."""
    url = POSTGRES_URL if request.param == "postgres" else None
    data_dir: Path = tmp_path_factory.mktemp("keys")
    first = start_devhost(data_dir, database_url=url, extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY})
    try:
        second = start_devhost(
            data_dir,
            database_url=url,
            extra_env={"ASCENT_DEV_API_KEY": first.api_key, "ASCENT_ADMIN_KEY": ADMIN_KEY},
        )
    except Exception:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()


def _status(host: DevHost, key: str) -> int:
    with host.client(key) as client:
        return client.get("/agents").status_code


def test_issued_key_authenticates_on_both_hosts(hosts: tuple[DevHost, DevHost]) -> None:
    """A key issued through one host works on both."""
    first, second = hosts
    _, issued = new_tenant_with_key(first.base_url)
    assert (_status(first, issued["key"]), _status(second, issued["key"])) == (200, 200)


def test_issued_key_has_public_prefix(hosts: tuple[DevHost, DevHost]) -> None:
    """The issued plaintext is asc_<prefix>_<secret> and its prefix is the listed one."""
    first, _ = hosts
    _, issued = new_tenant_with_key(first.base_url)
    assert issued["key"].startswith(f"asc_{issued['prefix']}_")


def test_key_list_never_shows_secrets(hosts: tuple[DevHost, DevHost]) -> None:
    """Listing a tenant's keys shows prefixes and ids, never the secret part."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        listing = client.get(f"/platform/tenants/{tenant_id}/keys")
    secret = issued["key"].split("_", 2)[2]
    assert listing.status_code == 200
    assert secret not in listing.text and "key_hash" not in listing.text
    assert [k["prefix"] for k in listing.json()["keys"]] == [issued["prefix"]]


def test_revoked_key_fails_at_once_on_both_hosts(hosts: tuple[DevHost, DevHost]) -> None:
    """After revocation through host one, the very next request on either host is 401."""
    first, second = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    assert (_status(first, issued["key"]), _status(second, issued["key"])) == (200, 200)
    with admin(first.base_url) as client:
        revoked = client.delete(f"/platform/tenants/{tenant_id}/keys/{issued['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (_status(second, issued["key"]), _status(first, issued["key"])) == (401, 401)


def test_rotated_key_replaces_old_one_on_both_hosts(hosts: tuple[DevHost, DevHost]) -> None:
    """Rotation through host two: the old key is 401 and the new one 200, on both hosts."""
    first, second = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    assert _status(first, issued["key"]) == 200
    with admin(second.base_url) as client:
        rotated = client.post(f"/platform/tenants/{tenant_id}/keys/{issued['id']}/rotate")
    assert rotated.status_code == 201
    new_key = rotated.json()["key"]
    old = (_status(first, issued["key"]), _status(second, issued["key"]))
    new = (_status(first, new_key), _status(second, new_key))
    assert (old, new) == ((401, 401), (200, 200))


def test_rotating_a_revoked_key_conflicts(hosts: tuple[DevHost, DevHost]) -> None:
    """A revoked key cannot be rotated (409): issue a new one instead."""
    first, _ = hosts
    tenant_id, issued = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        client.delete(f"/platform/tenants/{tenant_id}/keys/{issued['id']}")
        again = client.post(f"/platform/tenants/{tenant_id}/keys/{issued['id']}/rotate")
    assert again.status_code == 409


def test_admin_api_without_credentials_is_401(hosts: tuple[DevHost, DevHost]) -> None:
    """The admin API refuses a request with no Authorization header (401 problem+json)."""
    first, _ = hosts
    response = httpx.get(f"{first.base_url}/platform/tenants", timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_admin_api_with_wrong_admin_key_is_401(hosts: tuple[DevHost, DevHost]) -> None:
    """A wrong admin key is refused with 401."""
    first, _ = hosts
    with admin(first.base_url, key=ADMIN_KEY + "x") as client:
        assert client.get("/platform/tenants").status_code == 401


def test_admin_api_with_tenant_key_is_403(hosts: tuple[DevHost, DevHost]) -> None:
    """A tenant's own valid API key cannot administer the platform (403)."""
    first, _ = hosts
    with admin(first.base_url, key=first.api_key) as client:
        assert client.post("/platform/tenants", json={"name": "x"}).status_code == 403


def test_keys_of_another_tenant_are_not_found(hosts: tuple[DevHost, DevHost]) -> None:
    """Revoking tenant A's key id under tenant B's path is 404 and leaves the key working."""
    first, _ = hosts
    _, issued_a = new_tenant_with_key(first.base_url)
    tenant_b, _ = new_tenant_with_key(first.base_url)
    with admin(first.base_url) as client:
        response = client.delete(f"/platform/tenants/{tenant_b}/keys/{issued_a['id']}")
    assert (response.status_code, _status(first, issued_a["key"])) == (404, 200)
