"""Entra ID / OIDC bearer tokens and ACA built-in auth principals, against a live dev host."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import DevHost, start_devhost
from tests.security_support import (
    ADMIN_KEY,
    JwksServer,
    admin,
    make_token,
    new_tenant_with_key,
    public_jwk,
    rsa_key,
)

pytestmark = pytest.mark.e2e

AUDIENCE = "api://ascent-security-test"


@dataclass
class Idp:
    """The test's identity provider: its signing key, JWKS server and the tenant it maps to."""

    key: rsa.RSAPrivateKey
    kid: str
    entra_tid: str
    issuer: str
    tenant_id: str
    host: DevHost
    aca_host: DevHost

    def token(self, **overrides: object) -> str:
        """A valid token for a user of the tenant, with claims overridden as given."""
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "tid": self.entra_tid,
            "oid": "user-oid-1",
            "sub": "subject-1",
        }
        claims.update(overrides)
        return make_token(self.key, self.kid, **claims)

    def status(self, token: str, host: DevHost | None = None) -> int:
        """The status of `GET /api/agents` with this bearer token."""
        with (host or self.host).client(token) as client:
            return client.get("/agents").status_code


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    """A JWKS server on loopback, a tenant configured for it, and two hosts (one trusts ACA)."""
    key, kid, entra_tid = rsa_key(), "kid-1", str(uuid.uuid4())
    issuer = f"https://login.microsoftonline.com/{entra_tid}/v2.0"
    with JwksServer(keys=[public_jwk(key, kid)]).running() as jwks:
        data_dir: Path = tmp_path_factory.mktemp("jwt")
        host = start_devhost(data_dir, extra_env={"ASCENT_ADMIN_KEY": ADMIN_KEY})
        aca_host = start_devhost(
            data_dir,
            extra_env={
                "ASCENT_DEV_API_KEY": host.api_key,
                "ASCENT_ADMIN_KEY": ADMIN_KEY,
                "ASCENT_TRUST_ACA_AUTH": "true",
            },
        )
        try:
            tenant_id, _ = new_tenant_with_key(host.base_url)
            config = {
                "issuer": issuer,
                "audience": AUDIENCE,
                "jwks_url": jwks.url,
                "entra_tenant_id": entra_tid,
            }
            with admin(host.base_url) as client:
                saved = client.put(f"/platform/tenants/{tenant_id}/identity", json=config)
            assert saved.status_code == 200, saved.text
            yield Idp(key, kid, entra_tid, issuer, tenant_id, host, aca_host)
        finally:
            aca_host.stop()
            host.stop()


def test_valid_token_is_accepted(idp: Idp) -> None:
    """A token with the tenant's issuer, audience, tid and a JWKS signature gets 200."""
    assert idp.status(idp.token()) == 200


def test_token_user_acts_in_its_tenant(idp: Idp) -> None:
    """A token user's run creates a thread that the same user can read back."""
    token = idp.token()
    with idp.host.client(token) as client:
        run = client.post("/agents/assistant/runs", json={"input": "What is 2+2?"})
        assert run.status_code == 200, run.text
        history = client.get(f"/threads/{run.json()['thread_id']}/messages")
    assert history.status_code == 200


def test_token_users_thread_is_hidden_from_other_tenants(idp: Idp) -> None:
    """The dev tenant's key cannot read a thread created by the token user (404)."""
    with idp.host.client(idp.token()) as client:
        thread_id = client.post("/agents/assistant/runs", json={"input": "Hi"}).json()["thread_id"]
    with idp.host.client() as dev:
        assert dev.get(f"/threads/{thread_id}/messages").status_code == 404


def test_wrong_issuer_is_401(idp: Idp) -> None:
    """A token from another issuer is refused."""
    assert idp.status(idp.token(iss="https://login.microsoftonline.com/other/v2.0")) == 401


def test_wrong_audience_is_401(idp: Idp) -> None:
    """A token for another audience is refused."""
    assert idp.status(idp.token(aud="api://someone-else")) == 401


def test_wrong_signature_is_401(idp: Idp) -> None:
    """A token signed by a key the JWKS does not publish (same kid) is refused."""
    forged = make_token(
        rsa_key(), idp.kid, iss=idp.issuer, aud=AUDIENCE, tid=idp.entra_tid, oid="x"
    )
    assert idp.status(forged) == 401


def test_expired_token_is_401(idp: Idp) -> None:
    """A token that expired an hour ago is refused."""
    past = int(time.time()) - 3600
    assert idp.status(idp.token(exp=past, iat=past - 600, nbf=past - 600)) == 401


def test_wrong_entra_tenant_is_401(idp: Idp) -> None:
    """A token whose tid is not the tenant's Entra directory is refused."""
    assert idp.status(idp.token(tid=str(uuid.uuid4()))) == 401


def test_unsigned_token_is_401(idp: Idp) -> None:
    """An `alg: none` token is refused."""
    claims = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "tid": idp.entra_tid,
        "oid": "x",
        "exp": int(time.time()) + 600,
    }
    assert idp.status(jwt.encode(claims, key="", algorithm="none")) == 401


def test_symmetric_token_is_401(idp: Idp) -> None:
    """An HS256 token (algorithm confusion) is refused."""
    claims = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "tid": idp.entra_tid,
        "oid": "x",
        "exp": int(time.time()) + 600,
    }
    token = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": idp.kid})
    assert idp.status(token) == 401


def _client_principal(tid: str, oid: str) -> str:
    claims = [
        {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": tid},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid},
        {"typ": "aud", "val": AUDIENCE},
    ]
    data = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_aca_principal_is_ignored_unless_trusted(idp: Idp) -> None:
    """Without ASCENT_TRUST_ACA_AUTH, X-MS-CLIENT-PRINCIPAL authenticates nobody (401)."""
    header = {"X-MS-CLIENT-PRINCIPAL": _client_principal(idp.entra_tid, "aca-user")}
    response = httpx.get(f"{idp.host.base_url}/agents", headers=header, timeout=30)
    assert response.status_code == 401


def test_aca_principal_is_accepted_when_trusted(idp: Idp) -> None:
    """With ASCENT_TRUST_ACA_AUTH=true, the principal maps to the tenant by its tid (200)."""
    header = {"X-MS-CLIENT-PRINCIPAL": _client_principal(idp.entra_tid, "aca-user")}
    response = httpx.get(f"{idp.aca_host.base_url}/agents", headers=header, timeout=30)
    assert response.status_code == 200


def test_aca_principal_of_unknown_directory_is_401(idp: Idp) -> None:
    """A trusted principal from an unconfigured Entra directory is refused."""
    header = {"X-MS-CLIENT-PRINCIPAL": _client_principal(str(uuid.uuid4()), "aca-user")}
    response = httpx.get(f"{idp.aca_host.base_url}/agents", headers=header, timeout=30)
    assert response.status_code == 401
