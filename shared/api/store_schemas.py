"""Request bodies of the Agent Protocol store endpoints (spec 0.1.6), validated with limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema

from shared.core.validation import JsonInt
from shared.memory.store import LABEL_PATTERN, MAX_KEY_CHARS, MAX_NAMESPACE_DEPTH, MAX_PAGE

MAX_TTL_MINUTES = 10 * 365 * 24 * 60
MAX_QUERY_CHARS = 2_000


# A namespace label as shared.memory.store.validate_namespace accepts it, said in the document.
Label = Annotated[str, WithJsonSchema({"type": "string", "pattern": LABEL_PATTERN})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorePutRequest(_Body):
    """`PUT /store/items`: insert or replace the item at (namespace, key)."""

    namespace: list[Label] = Field(min_length=1, max_length=MAX_NAMESPACE_DEPTH)
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    value: dict[str, Any]
    ttl: float | None = Field(
        None, gt=0, le=MAX_TTL_MINUTES, description="Minutes to live (as the LangGraph SDK)."
    )
    index: Literal[False] | list[str] | None = Field(
        None, description="Fields to embed for search; false to skip; null embeds all text."
    )


class StoreDeleteRequest(_Body):
    """`DELETE /store/items`: delete the item at (namespace, key)."""

    namespace: list[Label] = Field(min_length=1, max_length=MAX_NAMESPACE_DEPTH)
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)


class StoreSearchRequest(_Body):
    """`POST /store/items/search`: items under a prefix, by meaning (`query`) and/or filter."""

    namespace_prefix: list[str] | None = Field(None, max_length=MAX_NAMESPACE_DEPTH)
    filter: dict[str, Any] | None = None
    limit: JsonInt = Field(10, ge=1, le=MAX_PAGE)
    offset: JsonInt = Field(0, ge=0, le=100_000)
    query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    refresh_ttl: bool | None = Field(None, description="Accepted for LangGraph clients; ignored.")


class StoreListNamespacesRequest(_Body):
    """`POST /store/namespaces`: the distinct namespaces, filtered and truncated."""

    prefix: list[str] | None = Field(None, max_length=MAX_NAMESPACE_DEPTH)
    suffix: list[str] | None = Field(None, max_length=MAX_NAMESPACE_DEPTH)
    max_depth: int | None = Field(None, ge=1, le=MAX_NAMESPACE_DEPTH)
    limit: JsonInt = Field(100, ge=1, le=MAX_PAGE)
    offset: JsonInt = Field(0, ge=0, le=100_000)


class StoreGetQuery(BaseModel):
    """`GET /store/items` query: `namespace` repeated (`a&namespace=b`) or dotted (`a.b`)."""

    namespace: list[Label] = Field(min_length=1, max_length=MAX_NAMESPACE_DEPTH)
    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)


class StoreItemOut(BaseModel):
    """The Agent Protocol `Item`; `score` is present in semantic search results."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    score: float | None = Field(None, description="Cosine similarity to the search query.")


class SearchItemsResponse(BaseModel):
    """`POST /store/items/search` answer."""

    items: list[StoreItemOut]


class NamespaceList(RootModel[list[list[str]]]):
    """`POST /store/namespaces` answer: the spec's `ListNamespaceResponse`, label arrays."""
