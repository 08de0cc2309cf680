"""Bearer JWTs (Entra ID or any OIDC issuer) and ACA built-in auth principals, mapped to tenants.

A JWT is matched to a tenant by its `iss` (and `aud`) through the `tenant_identities` table,
then verified with the issuer's JWKS: signature (asymmetric algorithms only), issuer, audience,
expiry, and the Entra `tid` claim when the tenant pins one. The user is `oid`, else `sub`.
A user whose app roles (the token's `roles` claim, or the client principal's role claims)
include ASCENT_TENANT_ADMIN_ROLE is a tenant admin: it sees every thread of the tenant, where
other users see only their own and granted ones (shared/security/thread_access.py).

JWKS documents are fetched over HTTPS (plain HTTP only on loopback, for tests and local IdPs),
cached per URL for `JWKS_TTL_SECONDS`, and refetched when a token names an unknown `kid`
(key rotation), at most once per `JWKS_MIN_REFRESH_SECONDS` so bogus kids cannot hammer the IdP.
A fetch that fails in transit or gets 408/429/5xx is retried (shared/core/retries.py: 3 attempts,
jittered backoff) before the cache falls back to its stale keys.

`X-MS-CLIENT-PRINCIPAL` (base64 JSON set by Azure Container Apps built-in authentication) is
trusted only when ASCENT_TRUST_ACA_AUTH=true: the header proves nothing by itself, because any
client can send it; only ACA's auth proxy, which sits in front of the app and sets the header
after validating the user's session, makes it trustworthy. Enable it only when the app's ingress
is reachable solely through that proxy.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.core.errors import Unauthorized, ValidationFailed
from shared.core.retries import outbound, retryable_http
from shared.core.services import service
from shared.core.settings import get_settings
from shared.db.engine import db_session
from shared.db.security_models import TenantIdentity
from shared.security.auth import Principal, authenticate, bearer_token, looks_like_jwt

log = logging.getLogger(__name__)

ACA_PRINCIPAL_HEADER = "x-ms-client-principal"
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
LEEWAY_SECONDS = 30
JWKS_TTL_SECONDS = 3600.0
JWKS_MIN_REFRESH_SECONDS = 30.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 256 * 1024

_TID_CLAIMS = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")
_OID_CLAIMS = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")
_SUB_CLAIMS = ("sub", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier")
# Claim types that carry app roles: Entra's `roles`, and the role claim type ACA's client
# principal uses when its `role_typ` names none.
_ROLE_CLAIMS = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

Fetch = Callable[[str], Awaitable[dict[str, Any]]]


@outbound(on=retryable_http)
async def _get_jwks(url: str) -> httpx.Response:
    """One GET of the JWKS, retried on a transport failure, 429 or 5xx (a GET is idempotent)."""
    async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response


def check_jwks_url(url: str) -> str:
    """Return the URL if it is HTTPS (or HTTP on loopback); raise ValidationFailed otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return url
    raise ValidationFailed("jwks_url must be an https URL (http only on loopback).")


async def fetch_jwks(url: str) -> dict[str, Any]:
    """GET a JWKS document (no redirects, bounded size and time) and return it parsed."""
    check_jwks_url(url)
    response = await _get_jwks(url)
    if len(response.content) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    data = response.json()
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("not a JWKS document")
    return data


@dataclass
class _Entry:
    keys: dict[str | None, jwt.PyJWK]
    fetched_at: float


def _parse_keys(document: dict[str, Any]) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    for raw in document.get("keys", []):
        if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(raw)
        except jwt.PyJWTError:
            continue  # unsupported key types are skipped, not fatal
        if key.algorithm_name in ALGORITHMS:
            keys[raw.get("kid")] = key
    return keys


@dataclass
class JwksCache:
    """Signing keys per JWKS URL: cached for `ttl`, refetched on an unknown kid (rate-bounded)."""

    fetch: Fetch = fetch_jwks
    ttl: float = JWKS_TTL_SECONDS
    min_refresh: float = JWKS_MIN_REFRESH_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)

    async def _refresh(self, url: str) -> _Entry | None:
        stale = self._entries.get(url)
        try:
            document = await self.fetch(url)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch failed (%s); %s", type(exc).__name__, "keeping stale keys")
            if stale is not None:
                stale.fetched_at = self.clock()  # back off before trying again
            return stale
        entry = _Entry(keys=_parse_keys(document), fetched_at=self.clock())
        self._entries[url] = entry
        return entry

    async def signing_key(self, url: str, kid: str | None) -> jwt.PyJWK:
        """Return the key `kid` of the JWKS at `url`, refreshing when needed; else Unauthorized."""
        entry = self._entries.get(url)
        now = self.clock()
        expired = entry is None or now - entry.fetched_at >= self.ttl
        rotated = entry is not None and kid not in entry.keys
        if expired or (rotated and entry and now - entry.fetched_at >= self.min_refresh):
            entry = await self._refresh(url)
        if entry is None:
            raise Unauthorized("The token's signing keys could not be retrieved.")
        if kid is None and len(entry.keys) == 1:
            return next(iter(entry.keys.values()))
        key = entry.keys.get(kid)
        if key is None:
            raise Unauthorized("The token's signing key is not known.")
        return key


@service("jwks")
def get_jwks_cache() -> JwksCache:
    """The process-wide JWKS cache (keys are public, so sharing them across tenants is safe)."""
    return JwksCache()


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


async def _identity_for(session: AsyncSession, claims: Mapping[str, Any]) -> TenantIdentity:
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise Unauthorized("The bearer token is not valid.")
    stmt = select(TenantIdentity).where(TenantIdentity.issuer == issuer)
    identities = (await session.exec(stmt)).all()
    audiences = _audiences(claims)
    matches = [i for i in identities if i.audience in audiences]
    if len(matches) != 1:
        raise Unauthorized("The bearer token is not valid.")
    return matches[0]


def _first(claims: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _token_roles(claims: Mapping[str, Any]) -> list[str]:
    roles = claims.get("roles")
    if isinstance(roles, str):
        return [roles]
    if isinstance(roles, list):
        return [r for r in roles if isinstance(r, str)]
    return []


def is_tenant_admin(roles: Iterable[str]) -> bool:
    """Whether the roles include ASCENT_TENANT_ADMIN_ROLE (exact, case-sensitive match)."""
    wanted = get_settings().tenant_admin_role
    return any(role == wanted for role in roles)


async def authenticate_jwt(
    *, session: AsyncSession, token: str, cache: JwksCache | None = None
) -> Principal:
    """Verify a JWT against its tenant's issuer, audience and JWKS; return the user principal."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized("The bearer token is not valid.") from None
    identity = await _identity_for(session, unverified)
    if header.get("alg") not in ALGORITHMS:
        raise Unauthorized("The bearer token is not valid.")
    kid = header.get("kid")
    key = await (cache or get_jwks_cache()).signing_key(
        identity.jwks_url, kid if isinstance(kid, str) else None
    )
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[key.algorithm_name],
            audience=identity.audience,
            issuer=identity.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The bearer token has expired.") from None
    except jwt.PyJWTError:
        raise Unauthorized("The bearer token is not valid.") from None
    if identity.entra_tenant_id and _first(claims, _TID_CLAIMS) != identity.entra_tenant_id:
        raise Unauthorized("The bearer token is not valid.")
    user = _first(claims, _OID_CLAIMS) or _first(claims, _SUB_CLAIMS)
    if user is None:
        raise Unauthorized("The bearer token names no user (oid or sub).")
    return Principal(
        tenant_id=identity.tenant_id,
        key_id=f"user:{user}",
        user_id=user,
        tenant_admin=is_tenant_admin(_token_roles(claims)),
    )


def _client_principal_claims(value: str) -> tuple[list[tuple[str, str]], str | None]:
    """ACA's `X-MS-CLIENT-PRINCIPAL` as its (typ, val) claims and its `role_typ`."""
    try:
        data = json.loads(base64.b64decode(value, validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Unauthorized("The client principal header is not valid.") from None
    claims = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(claims, list):
        raise Unauthorized("The client principal header is not valid.")
    pairs: list[tuple[str, str]] = []
    for claim in claims:
        if isinstance(claim, dict):
            typ, val = claim.get("typ"), claim.get("val")
            if isinstance(typ, str) and isinstance(val, str):
                pairs.append((typ, val))
    role_typ = data.get("role_typ")
    return pairs, role_typ if isinstance(role_typ, str) and role_typ else None


def decode_client_principal(value: str) -> dict[str, str]:
    """Decode ACA's `X-MS-CLIENT-PRINCIPAL` (base64 JSON with a `claims` list) to a claim map."""
    result: dict[str, str] = {}
    for typ, val in _client_principal_claims(value)[0]:
        result.setdefault(typ, val)
    return result


def client_principal_roles(value: str) -> list[str]:
    """Every role of an ACA client principal: one claim per role, of its `role_typ` type."""
    pairs, role_typ = _client_principal_claims(value)
    types = _ROLE_CLAIMS | ({role_typ} if role_typ else set())
    return [val for typ, val in pairs if typ in types]


async def authenticate_aca(*, session: AsyncSession, header_value: str) -> Principal:
    """Map an ACA built-in auth principal to a tenant by its Entra `tid` (caller checks trust)."""
    claims = decode_client_principal(header_value)
    tid = _first(claims, _TID_CLAIMS)
    user = _first(claims, _OID_CLAIMS) or _first(claims, _SUB_CLAIMS)
    if tid is None or user is None:
        raise Unauthorized("The client principal has no tenant or user.")
    stmt = select(TenantIdentity).where(TenantIdentity.entra_tenant_id == tid)
    identities = (await session.exec(stmt)).all()
    if len(identities) != 1:
        raise Unauthorized("The client principal's tenant is not configured.")
    identity = identities[0]
    audiences = [claims["aud"]] if "aud" in claims else []
    if audiences and identity.audience not in audiences:
        raise Unauthorized("The client principal's audience does not match.")
    return Principal(
        tenant_id=identity.tenant_id,
        key_id=f"user:{user}",
        user_id=user,
        tenant_admin=is_tenant_admin(client_principal_roles(header_value)),
    )


async def authenticate_headers(*, headers: Mapping[str, str]) -> Principal:
    """Authenticate a request: `Authorization` first, then (only if trusted) ACA's header.

    An API key is looked up on the hot path's reader (no session); a token or an ACA principal
    reads the tenant's identity provider configuration in a session of its own.
    """
    authorization = headers.get("authorization")
    aca = headers.get(ACA_PRINCIPAL_HEADER)
    if not authorization and aca and get_settings().trust_aca_auth:
        async with db_session() as session:
            return await authenticate_aca(session=session, header_value=aca)
    token = bearer_token(authorization)
    if token is not None and looks_like_jwt(token):
        async with db_session() as session:
            return await authenticate_jwt(session=session, token=token)
    return await authenticate(authorization=authorization)
