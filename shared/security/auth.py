"""API keys and principals: keys are shown once, stored as SHA-256, compared in constant time.

Key lookups are cached in Redis (shared/platform/cache.py) when REDIS_URL is set: the stored row's
tenant id, key id, SHA-256 and revoked flag - never the plaintext or its secret part - under
`ascent:apikey:<prefix>` for ASCENT_AUTH_CACHE_SECONDS. The presented key is still hashed and
compared in constant time against the cached hash. Revocation and rotation
(shared/security/tenancy.py) delete the entry after their commit, before they answer, so the next
request on any instance
reads the database again. Without REDIS_URL nothing is cached (see shared/platform/cache.py for
why).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from functools import partial
from typing import Final

from sqlalchemy import Table, bindparam, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import Unauthorized
from shared.core.settings import get_settings
from shared.db import direct, repo
from shared.db.direct import Tx
from shared.db.models import ApiKey
from shared.platform import cache as cache_mod

_KEYS: Final[Table] = ApiKey.__table__  # type: ignore[attr-defined]
KEY_SCHEME = "asc"
APIKEY_CACHE_PREFIX = f"{cache_mod.NAMESPACE}apikey:"
# The api_keys.prefix column's length: a longer prefix cannot exist, so it is never cached.
MAX_PREFIX_CHARS = 32


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every query is scoped to, and the key that proved it."""

    tenant_id: str
    key_id: str
    user_id: str | None = None  # set for bearer-token (JWT / ACA auth) principals
    # The user holds ASCENT_TENANT_ADMIN_ROLE (or is a cron acting for a tenant-wide creator).
    tenant_admin: bool = False

    @property
    def tenant_wide(self) -> bool:
        """Whether it sees every thread of its tenant: no user (API keys) or a tenant admin.

        Other principals are users, who see the threads they own and those granted to them
        (shared/security/thread_access.py).
        """
        return self.user_id is None or self.tenant_admin


def hash_key(key: str) -> str:
    """Return the hex SHA-256 of a key (keys are 256-bit random, so no salt or KDF is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """Return a fresh key `asc_<prefix>_<secret>` and its public prefix."""
    prefix = secrets.token_hex(6)
    return f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(key: str) -> str | None:
    """Return the public prefix of a well-formed key, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        return None
    return parts[1]


def bearer_token(authorization: str | None) -> str | None:
    """Extract the token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def issue_api_key(*, session: AsyncSession, tenant_id: str, name: str = "default") -> str:
    """Create and store a key for the tenant; return the plaintext, which is never stored."""
    key, prefix = new_api_key()
    await repo.add_api_key(
        session=session, tenant_id=tenant_id, prefix=prefix, key_hash=hash_key(key), name=name
    )
    return key


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What authentication needs of a stored key row: safe to cache (a hash, not the key)."""

    tenant_id: str
    key_id: str
    key_hash: str
    revoked: bool

    def dumps(self) -> str:
        """Serialize for the cache."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str) -> StoredKey | None:
        """Parse a cached entry; None when it is not one (the lookup then reads the database)."""
        try:
            data = json.loads(raw)
            return cls(
                tenant_id=str(data["tenant_id"]),
                key_id=str(data["key_id"]),
                key_hash=str(data["key_hash"]),
                revoked=bool(data["revoked"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def apikey_cache_key(prefix: str) -> str:
    """The cache key of a key prefix: namespaced, and built from the public prefix only."""
    return f"{APIKEY_CACHE_PREFIX}{prefix}"


_READ_KEY = select(_KEYS.c.tenant_id, _KEYS.c.id, _KEYS.c.key_hash, _KEYS.c.revoked_at).where(
    _KEYS.c.prefix == bindparam("prefix")
)


def _read_key(tx: Tx, prefix: str) -> StoredKey | None:
    row = tx.conn.execute(_READ_KEY, {"prefix": prefix}).first()
    if row is None:
        return None
    return StoredKey(
        tenant_id=row.tenant_id,
        key_id=row.id,
        key_hash=row.key_hash,
        revoked=row.revoked_at is not None,
    )


async def _lookup_key(prefix: str) -> StoredKey | None:
    """The stored key with this prefix (revoked ones too), from the cache or the database.

    Unknown prefixes are not cached: callers cannot make the service write arbitrary entries.
    The database read is the hot path's (shared/db/direct.py): every request makes one.
    """
    ttl = get_settings().auth_cache_seconds
    cache = cache_mod.get_cache() if ttl > 0 and len(prefix) <= MAX_PREFIX_CHARS else None
    if cache is not None:
        raw = await cache.get(apikey_cache_key(prefix))
        hit = StoredKey.loads(raw) if raw is not None else None
        if hit is not None:
            return hit
    stored = await direct.read(partial(_read_key, prefix=prefix))
    if stored is None:
        return None
    if cache is not None:
        await cache.set(apikey_cache_key(prefix), stored.dumps(), ttl)
    return stored


async def invalidate_api_key(prefix: str) -> None:
    """Delete the prefix's cache entry now (no-op without a cache); raise CacheUnavailable.

    Call it after the revocation or rotation has committed, so a concurrent lookup cannot put
    the old row back. It runs even when ASCENT_AUTH_CACHE_SECONDS is 0 here, because another
    instance may have cached the entry under a different setting.
    """
    cache = cache_mod.get_cache()
    if cache is not None:
        await cache.delete(apikey_cache_key(prefix))


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (three dot-separated parts) rather than an API key."""
    return token.count(".") == 2 and not token.startswith(f"{KEY_SCHEME}_")


async def authenticate(
    *, authorization: str | None, session: AsyncSession | None = None
) -> Principal:
    """Resolve a bearer API key, or raise Unauthorized (JWTs: shared/security/jwt_auth.py).

    `session` is accepted for callers that hold one; the lookup reads on its own.
    """
    token = bearer_token(authorization)
    prefix = key_prefix(token) if token else None
    if token is None or prefix is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
    stored = await _lookup_key(prefix)
    # Hash and compare before looking at the revoked flag, so both failures take the same time.
    matches = stored is not None and hmac.compare_digest(stored.key_hash, hash_key(token))
    if stored is None or not matches or stored.revoked:
        raise Unauthorized("The API key is not valid.")
    return Principal(tenant_id=stored.tenant_id, key_id=stored.key_id)
