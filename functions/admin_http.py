"""Platform admin API under `/api/platform/...`: tenants, API keys, bearer-token identity,
and a tenant's settings: budgets (limits), retention and tool approval policy.

Routes live under `platform/`, not `admin/`: the Functions host reserves routes and function
names starting with `admin` (its own admin API), even behind the `api` prefix
(Azure/azure-functions-host#1781). Every route needs ASCENT_ADMIN_KEY (see shared.security.tenancy).
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api, read_json
from shared.api.openapi import documented
from shared.db.engine import db_session
from shared.security.data_policy import (
    DataPolicyOut,
    DataPolicyUpdate,
    get_data_policy,
    set_data_policy,
)
from shared.security.tenancy import (
    IdentityConfig,
    IssuedKey,
    KeyCreate,
    KeyList,
    KeyOut,
    TenantCreate,
    TenantList,
    TenantOut,
    WebhookSecretOut,
    create_tenant,
    get_webhook_secret,
    issue_key,
    list_keys,
    list_tenants,
    require_admin,
    revoke_key,
    rotate_key,
    rotate_webhook_secret,
    set_identity,
)
from shared.security.tenant_limits import (
    LimitOverrides,
    TenantLimitsOut,
    get_tenant_limits,
    set_tenant_limits,
)
from shared.security.tenant_settings import (
    RetentionOverrides,
    TenantRetentionOut,
    ToolPolicyOut,
    ToolPolicyUpdate,
    get_tenant_retention,
    get_tool_policy,
    set_tenant_retention,
    set_tool_policy,
)

bp = func.Blueprint()
_ANON = func.AuthLevel.ANONYMOUS
_TAGS = ["platform"]
_NO_STORE = {"Cache-Control": "no-store"}


def _admin(req: Request) -> None:
    require_admin(req.headers.get("authorization"))


@bp.route(route="platform/tenants", methods=["POST"], auth_level=_ANON)
@documented(
    summary="Create a tenant",
    request=TenantCreate,
    response=TenantOut,
    status=201,
    errors=[403, 404, 409],
    tags=_TAGS,
)
@api
async def platform_create_tenant(req: Request) -> Response:
    """Create a tenant (admin key required)."""
    _admin(req)
    body = await read_json(req, TenantCreate)
    async with db_session() as db:
        tenant = await create_tenant(session=db, body=body)
    return JSONResponse(tenant.model_dump(mode="json"), status_code=201)


@bp.route(route="platform/tenants", methods=["GET"], auth_level=_ANON)
@documented(summary="List tenants", response=TenantList, errors=[403, 404], tags=_TAGS)
@api
async def platform_list_tenants(req: Request) -> Response:
    """List tenants (admin key required)."""
    _admin(req)
    async with db_session() as db:
        tenants = await list_tenants(session=db)
    return JSONResponse(TenantList(tenants=tenants).model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/keys", methods=["POST"], auth_level=_ANON)
@documented(
    summary="Issue an API key (plaintext shown once)",
    request=KeyCreate,
    response=IssuedKey,
    status=201,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_issue_key(req: Request) -> Response:
    """Issue a key for the tenant; the response is the only place its plaintext appears."""
    _admin(req)
    body = await read_json(req, KeyCreate)
    async with db_session() as db:
        issued = await issue_key(session=db, tenant_id=req.path_params["tenant_id"], name=body.name)
    return JSONResponse(issued.model_dump(mode="json"), status_code=201, headers=_NO_STORE)


@bp.route(route="platform/tenants/{tenant_id}/keys", methods=["GET"], auth_level=_ANON)
@documented(summary="List a tenant's API keys", response=KeyList, errors=[403, 404], tags=_TAGS)
@api
async def platform_list_keys(req: Request) -> Response:
    """List the tenant's keys by prefix and id, never with secrets."""
    _admin(req)
    async with db_session() as db:
        keys = await list_keys(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(KeyList(keys=keys).model_dump(mode="json"))


@bp.route(
    route="platform/tenants/{tenant_id}/keys/{key_id}/rotate", methods=["POST"], auth_level=_ANON
)
@documented(
    summary="Rotate an API key (old one stops at once)",
    response=IssuedKey,
    status=201,
    errors=[403, 404, 409],
    tags=_TAGS,
)
@api
async def platform_rotate_key(req: Request) -> Response:
    """Revoke the key and issue its replacement; the old key fails on its next use anywhere."""
    _admin(req)
    async with db_session() as db:
        issued = await rotate_key(
            session=db,
            tenant_id=req.path_params["tenant_id"],
            key_id=req.path_params["key_id"],
        )
    return JSONResponse(issued.model_dump(mode="json"), status_code=201, headers=_NO_STORE)


@bp.route(route="platform/tenants/{tenant_id}/keys/{key_id}", methods=["DELETE"], auth_level=_ANON)
@documented(summary="Revoke an API key", response=KeyOut, errors=[403, 404, 503], tags=_TAGS)
@api
async def platform_revoke_key(req: Request) -> Response:
    """Revoke the key now (idempotent) and return its public description."""
    _admin(req)
    async with db_session() as db:
        key = await revoke_key(
            session=db,
            tenant_id=req.path_params["tenant_id"],
            key_id=req.path_params["key_id"],
        )
    return JSONResponse(key.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/identity", methods=["PUT"], auth_level=_ANON)
@documented(
    summary="Configure the tenant's bearer-token issuer (Entra ID / OIDC)",
    request=IdentityConfig,
    response=IdentityConfig,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_set_identity(req: Request) -> Response:
    """Create or replace the issuer, audience and JWKS URL that tenant JWTs are checked against."""
    _admin(req)
    body = await read_json(req, IdentityConfig)
    async with db_session() as db:
        saved = await set_identity(session=db, tenant_id=req.path_params["tenant_id"], body=body)
    return JSONResponse(saved.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/webhook-secret", methods=["GET"], auth_level=_ANON)
@documented(
    summary="Show the tenant's webhook signing secret (created on first use)",
    response=WebhookSecretOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_get_webhook_secret(req: Request) -> Response:
    """Return the HMAC-SHA256 key the tenant's run webhooks are signed with."""
    _admin(req)
    async with db_session() as db:
        found = await get_webhook_secret(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(found.model_dump(mode="json"), headers=_NO_STORE)


@bp.route(
    route="platform/tenants/{tenant_id}/webhook-secret/rotate", methods=["POST"], auth_level=_ANON
)
@documented(
    summary="Rotate the tenant's webhook signing secret",
    response=WebhookSecretOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_rotate_webhook_secret(req: Request) -> Response:
    """Replace the tenant's webhook secret; the next delivery is signed with the new one."""
    _admin(req)
    async with db_session() as db:
        fresh = await rotate_webhook_secret(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(fresh.model_dump(mode="json"), headers=_NO_STORE)


@bp.route(route="platform/tenants/{tenant_id}/limits", methods=["GET"], auth_level=_ANON)
@documented(
    summary="Show the tenant's budgets (overrides and effective values)",
    response=TenantLimitsOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_get_limits(req: Request) -> Response:
    """Return the tenant's budget overrides (null = default) and the budgets enforced now."""
    _admin(req)
    async with db_session() as db:
        found = await get_tenant_limits(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(found.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/limits", methods=["PUT"], auth_level=_ANON)
@documented(
    summary="Set the tenant's budgets (null = the deployment default, 0 = off)",
    request=LimitOverrides,
    response=TenantLimitsOut,
    errors=[403, 404, 503],
    tags=_TAGS,
)
@api
async def platform_set_limits(req: Request) -> Response:
    """Replace the tenant's budget overrides: at once on this instance, within 5 s on others."""
    _admin(req)
    body = await read_json(req, LimitOverrides)
    async with db_session() as db:
        saved = await set_tenant_limits(
            session=db, tenant_id=req.path_params["tenant_id"], body=body
        )
    return JSONResponse(saved.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/retention", methods=["GET"], auth_level=_ANON)
@documented(
    summary="Show the tenant's retention (overrides and effective days)",
    response=TenantRetentionOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_get_retention(req: Request) -> Response:
    """Return the tenant's retention overrides (null = default) and the days applied now."""
    _admin(req)
    async with db_session() as db:
        found = await get_tenant_retention(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(found.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/retention", methods=["PUT"], auth_level=_ANON)
@documented(
    summary="Set the tenant's retention in days (null = the default, 0 = forever)",
    request=RetentionOverrides,
    response=TenantRetentionOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_set_retention(req: Request) -> Response:
    """Replace the tenant's retention overrides; the next purge_retention run applies them."""
    _admin(req)
    body = await read_json(req, RetentionOverrides)
    async with db_session() as db:
        saved = await set_tenant_retention(
            session=db, tenant_id=req.path_params["tenant_id"], body=body
        )
    return JSONResponse(saved.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/tool-policy", methods=["GET"], auth_level=_ANON)
@documented(
    summary="Show the tools the tenant runs without approval",
    response=ToolPolicyOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_get_tool_policy(req: Request) -> Response:
    """Return the tenant's tool approval policy (null = the default) and what applies now."""
    _admin(req)
    async with db_session() as db:
        found = await get_tool_policy(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(found.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/tool-policy", methods=["PUT"], auth_level=_ANON)
@documented(
    summary="Set the write/spend tools the tenant runs without approval (null = the default)",
    request=ToolPolicyUpdate,
    response=ToolPolicyOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_set_tool_policy(req: Request) -> Response:
    """Replace or remove the tenant's tool approval policy; the next tool call follows it."""
    _admin(req)
    # Imported here to keep cold start fast; loading the catalog classifies its tools.
    from shared.agents.loading import catalog

    catalog()
    body = await read_json(req, ToolPolicyUpdate)
    async with db_session() as db:
        saved = await set_tool_policy(session=db, tenant_id=req.path_params["tenant_id"], body=body)
    return JSONResponse(saved.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/data-policy", methods=["GET"], auth_level=_ANON)
@documented(
    summary="Show the tenant's data policy (card numbers and its own patterns)",
    response=DataPolicyOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_get_data_policy(req: Request) -> Response:
    """Return the tenant's data policy (null action = the default) and the rules in force."""
    _admin(req)
    async with db_session() as db:
        found = await get_data_policy(session=db, tenant_id=req.path_params["tenant_id"])
    return JSONResponse(found.model_dump(mode="json"))


@bp.route(route="platform/tenants/{tenant_id}/data-policy", methods=["PUT"], auth_level=_ANON)
@documented(
    summary="Set the tenant's data policy: refuse, redact or off, and its own patterns",
    description=(
        "Applies to every agent and entry point before anything is stored: Luhn-valid card "
        "numbers and the tenant's patterns in any message (user or assistant) are refused "
        "(422 `guardrail-tripped`) or replaced by `[REDACTED:<rule>]`. A change applies at "
        "once on this instance and within 5 seconds on the others."
    ),
    request=DataPolicyUpdate,
    response=DataPolicyOut,
    errors=[403, 404],
    tags=_TAGS,
)
@api
async def platform_set_data_policy(req: Request) -> Response:
    """Replace the tenant's data policy; the next run follows it."""
    _admin(req)
    body = await read_json(req, DataPolicyUpdate)
    async with db_session() as db:
        saved = await set_data_policy(session=db, tenant_id=req.path_params["tenant_id"], body=body)
    return JSONResponse(saved.model_dump(mode="json"))
