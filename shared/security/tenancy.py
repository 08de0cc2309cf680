"""Platform administration: tenants, their API keys (issue/list/rotate/revoke) and identity config.

Admin authentication: `Authorization: Bearer <ASCENT_ADMIN_KEY>`, compared as SHA-256 digests in
constant time. When ASCENT_ADMIN_KEY is unset the admin API is disabled and answers 404 (it does
not advertise that it exists); a missing or wrong admin key is 401; a tenant API key is 403
(tenants never administer the platform). The admin key must be at least 32 characters.

Key lifecycle: a key's plaintext is returned once, at issue or rotation, and only its SHA-256 is
stored; keys are identified by their public prefix and id; listings never include secrets.
Revocation and rotation take effect at once on every instance: there is no per-process cache of
valid keys, and the shared Redis cache of key lookups (shared/security/auth.py, when REDIS_URL is
set) is invalidated - its entry deleted after the commit, before the admin call answers - so the
next
request anywhere reads the revoked row. If Redis does not answer that delete, revocation answers
503 (the key *is* revoked in the database; retrying the idempotent call clears the cache), and
rotation still returns the new key (its plaintext exists only in that response) and logs an
error: a stale entry then lives at most ASCENT_AUTH_CACHE_SECONDS.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from shared.core.settings import get_settings
from shared.db import repo
from shared.db.models import ApiKey, Tenant, utcnow
from shared.db.security_models import TenantIdentity
from shared.outbox.webhooks import rotate_webhook_secret as rotate
from shared.outbox.webhooks import webhook_secret
from shared.platform.cache import CacheUnavailable
from shared.security.auth import KEY_SCHEME, bearer_token, hash_key, invalidate_api_key, new_api_key

log = logging.getLogger(__name__)

MIN_ADMIN_KEY_CHARS = 32
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9\-]{0,62}$"


class TenantCreate(BaseModel):
    """Body of `POST /api/platform/tenants`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(None, pattern=TENANT_ID_PATTERN, description="Chosen id; else a UUID.")


class TenantOut(BaseModel):
    """A tenant as the admin API shows it."""

    id: str
    name: str
    created_at: datetime


class KeyCreate(BaseModel):
    """Body of `POST /api/platform/tenants/{tenant_id}/keys`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("default", min_length=1, max_length=200)


class KeyOut(BaseModel):
    """An API key's public description: never its secret or hash."""

    id: str
    tenant_id: str
    prefix: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedKey(KeyOut):
    """A newly issued key: the only response that ever carries the plaintext."""

    key: str


class IdentityConfig(BaseModel):
    """Body and response of `PUT /api/platform/tenants/{tenant_id}/identity`."""

    model_config = ConfigDict(extra="forbid")
    issuer: str = Field(min_length=1, max_length=500)
    audience: str = Field(min_length=1, max_length=500)
    jwks_url: str = Field(min_length=1, max_length=1000)
    entra_tenant_id: str | None = Field(None, max_length=64)


def require_admin(authorization: str | None) -> None:
    """Allow only the platform admin key: 404 when disabled, 401 when wrong, 403 for tenant keys."""
    configured = get_settings().admin_key
    if configured is None:
        raise NotFound("No such resource.")
    secret = configured.get_secret_value()
    if len(secret) < MIN_ADMIN_KEY_CHARS:
        raise ConfigError("The admin API is misconfigured.")
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("Send the platform admin key as 'Authorization: Bearer <key>'.")
    if hmac.compare_digest(hash_key(token), hash_key(secret)):
        return
    if token.startswith(f"{KEY_SCHEME}_"):
        raise Forbidden("Tenant API keys cannot use the platform admin API.")
    raise Unauthorized("The admin key is not valid.")


def key_out(key: ApiKey) -> KeyOut:
    """Describe a stored key without its hash."""
    return KeyOut(
        id=key.id,
        tenant_id=key.tenant_id,
        prefix=key.prefix,
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


async def create_tenant(*, session: AsyncSession, body: TenantCreate) -> TenantOut:
    """Create a tenant; 409 when the chosen id is taken."""
    if body.id is not None and await repo.get_tenant(session=session, tenant_id=body.id):
        raise Conflict(f"Tenant {body.id!r} already exists.")
    try:
        tenant = await repo.create_tenant(session=session, name=body.name, tenant_id=body.id)
        await session.commit()
    except IntegrityError:
        raise Conflict("The tenant already exists.") from None
    return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


async def list_tenants(*, session: AsyncSession, limit: int = 1000) -> list[TenantOut]:
    """Return tenants, oldest first (bounded)."""
    stmt = select(Tenant).order_by(col(Tenant.created_at)).limit(limit)
    return [
        TenantOut(id=t.id, name=t.name, created_at=t.created_at)
        for t in (await session.exec(stmt)).all()
    ]


async def _tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await repo.get_tenant(session=session, tenant_id=tenant_id)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_id!r}.")
    return tenant


async def _key(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    stmt = select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    key = (await session.exec(stmt)).first()
    if key is None:
        raise NotFound(f"No key {key_id!r} for tenant {tenant_id!r}.")
    return key


async def _issue(session: AsyncSession, tenant_id: str, name: str) -> IssuedKey:
    plaintext, prefix = new_api_key()
    stored = await repo.add_api_key(
        session=session, tenant_id=tenant_id, prefix=prefix, key_hash=hash_key(plaintext), name=name
    )
    return IssuedKey(**key_out(stored).model_dump(), key=plaintext)


async def issue_key(*, session: AsyncSession, tenant_id: str, name: str) -> IssuedKey:
    """Issue a key for the tenant; the plaintext is in this response only."""
    await _tenant(session, tenant_id)
    issued = await _issue(session, tenant_id, name)
    await session.commit()
    return issued


async def list_keys(*, session: AsyncSession, tenant_id: str) -> list[KeyOut]:
    """Return the tenant's keys (active and revoked), newest first, without secrets."""
    await _tenant(session, tenant_id)
    stmt = (
        select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(col(ApiKey.created_at).desc())
    )
    return [key_out(k) for k in (await session.exec(stmt)).all()]


async def revoke_key(*, session: AsyncSession, tenant_id: str, key_id: str) -> KeyOut:
    """Revoke a key now (idempotent): the next request with it fails on every instance.

    The cache entry is deleted after the commit even when the key was already revoked, so a
    retry after a 503 (Redis did not answer) finishes the invalidation.
    """
    key = await _key(session, tenant_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        await session.commit()
    try:
        await invalidate_api_key(key.prefix)
    except CacheUnavailable:
        raise ServiceUnavailable(
            "The key is revoked, but the authentication cache did not answer; retry to make "
            "sure every instance refuses it at once."
        ) from None
    return key_out(key)


async def rotate_key(*, session: AsyncSession, tenant_id: str, key_id: str) -> IssuedKey:
    """Revoke an active key and issue its replacement (same name) in one transaction.

    The old key's cache entry is deleted after the commit; if Redis does not answer, the new
    key is still returned (its plaintext exists nowhere else) and the failure is logged.
    """
    key = await _key(session, tenant_id, key_id)
    if key.revoked_at is not None:
        raise Conflict("The key is already revoked; issue a new one instead.")
    key.revoked_at = utcnow()
    session.add(key)
    issued = await _issue(session, tenant_id, key.name)
    old_prefix = key.prefix
    await session.commit()
    try:
        await invalidate_api_key(old_prefix)
    except CacheUnavailable:
        log.error(
            "rotated key %s, but the auth cache did not answer; the old key may work for up "
            "to ASCENT_AUTH_CACHE_SECONDS on instances that cached it",
            old_prefix,
        )
    return issued


async def set_identity(
    *, session: AsyncSession, tenant_id: str, body: IdentityConfig
) -> IdentityConfig:
    """Create or replace the tenant's bearer-token identity provider configuration."""
    # Function-local for cold start: the JWT stack loads on the first admin call that needs it.
    from shared.security.jwt_auth import check_jwks_url

    await _tenant(session, tenant_id)
    check_jwks_url(body.jwks_url)
    identity = await session.get(TenantIdentity, tenant_id)
    if identity is None:
        identity = TenantIdentity(tenant_id=tenant_id, **body.model_dump())
    else:
        for name, value in body.model_dump().items():
            setattr(identity, name, value)
        identity.updated_at = utcnow()
    session.add(identity)
    await session.commit()
    return body


class TenantList(BaseModel):
    """Response of `GET /api/platform/tenants`."""

    tenants: list[TenantOut]


class KeyList(BaseModel):
    """Response of `GET /api/platform/tenants/{tenant_id}/keys` (never secrets)."""

    keys: list[KeyOut]


class WebhookSecretOut(BaseModel):
    """A tenant's webhook signing secret, `whsec_...` (see shared.outbox.webhooks)."""

    tenant_id: str
    secret: str


async def get_webhook_secret(*, session: AsyncSession, tenant_id: str) -> WebhookSecretOut:
    """The tenant's webhook secret, generated on first use."""
    await _tenant(session, tenant_id)
    return WebhookSecretOut(tenant_id=tenant_id, secret=await webhook_secret(tenant_id))


async def rotate_webhook_secret(*, session: AsyncSession, tenant_id: str) -> WebhookSecretOut:
    """Replace the tenant's webhook secret; deliveries from now on are signed with the new one."""
    await _tenant(session, tenant_id)
    return WebhookSecretOut(tenant_id=tenant_id, secret=await rotate(tenant_id))
