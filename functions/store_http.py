"""The Agent Protocol store (spec 0.1.6): `/api/store/items`, `/items/search`, `/namespaces`.

Long-term memory shared across threads, scoped to the caller's tenant (shared/memory/store.py).
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.store_schemas import (
    NamespaceList,
    SearchItemsResponse,
    StoreDeleteRequest,
    StoreGetQuery,
    StoreItemOut,
    StoreListNamespacesRequest,
    StorePutRequest,
    StoreSearchRequest,
)
from shared.core.errors import NotFound, ValidationFailed
from shared.memory import store as memory

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def _query_namespace(req: Request) -> list[str]:
    """`?namespace=a&namespace=b` (the spec's array) or `?namespace=a.b` (LangGraph SDK)."""
    return [label for value in req.query_params.getlist("namespace") for label in value.split(".")]


@bp.route(route="store/items", methods=["PUT"], auth_level=ANON)
@documented(summary="Put a store item", request=StorePutRequest, status=204, tags=["store"])
@api
async def put_store_item(req: Request) -> Response:
    """Insert or replace an item; `ttl` is in minutes, `index` picks the fields to embed."""
    principal = await principal_of(req)
    body = await read_json(req, StorePutRequest)
    await memory.put(
        tenant_id=principal.tenant_id,
        namespace=body.namespace,
        key=body.key,
        value=body.value,
        ttl_seconds=body.ttl * 60 if body.ttl is not None else None,
        index=body.index,
    )
    return Response(status_code=204)


@bp.route(route="store/items", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get a store item",
    query=StoreGetQuery,
    response=StoreItemOut,
    errors=[404, 422],
    tags=["store"],
)
@api
async def get_store_item(req: Request) -> Response:
    """Return the item at `?namespace=...&key=...`, or 404."""
    principal = await principal_of(req)
    key = req.query_params.get("key")
    if not key:
        raise ValidationFailed("The query parameter 'key' is required.")
    namespace = _query_namespace(req)
    item = await memory.get(tenant_id=principal.tenant_id, namespace=namespace, key=key)
    if item is None:
        raise NotFound("No item at that namespace and key.")
    return JSONResponse(item.to_api())


@bp.route(route="store/items", methods=["DELETE"], auth_level=ANON)
@documented(
    summary="Delete a store item",
    request=StoreDeleteRequest,
    status=204,
    errors=[404],
    tags=["store"],
)
@api
async def delete_store_item(req: Request) -> Response:
    """Delete the item at (namespace, key); 404 when there is none."""
    principal = await principal_of(req)
    body = await read_json(req, StoreDeleteRequest)
    found = await memory.delete(
        tenant_id=principal.tenant_id, namespace=body.namespace, key=body.key
    )
    if not found:
        raise NotFound("No item at that namespace and key.")
    return Response(status_code=204)


@bp.route(route="store/items/search", methods=["POST"], auth_level=ANON)
@documented(
    summary="Search store items",
    request=StoreSearchRequest,
    response=SearchItemsResponse,
    tags=["store"],
)
@api
async def search_store_items(req: Request) -> Response:
    """Search items under a namespace prefix by meaning (`query`) and value `filter`."""
    principal = await principal_of(req)
    body = await read_json(req, StoreSearchRequest)
    items = await memory.search(
        tenant_id=principal.tenant_id,
        namespace_prefix=body.namespace_prefix or [],
        query=body.query,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
    )
    return JSONResponse({"items": [i.to_api() for i in items]})


@bp.route(route="store/namespaces", methods=["POST"], auth_level=ANON)
@documented(
    summary="List store namespaces",
    request=StoreListNamespacesRequest,
    response=NamespaceList,
    tags=["store"],
)
@api
async def list_store_namespaces(req: Request) -> Response:
    """List namespaces (the spec's `ListNamespaceResponse`: an array of label arrays)."""
    principal = await principal_of(req)
    body = await read_json(req, StoreListNamespacesRequest)
    namespaces = await memory.list_namespaces(
        tenant_id=principal.tenant_id,
        prefix=body.prefix or [],
        suffix=body.suffix or [],
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return JSONResponse(memory.namespaces_as_lists(namespaces))
