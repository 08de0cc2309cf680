"""Long-term memory tables: the Agent Protocol store, one row per (tenant, namespace, key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from shared.db.models import utcnow
from shared.db.types import UTCDateTime

# Namespace segments are joined with the ASCII unit separator: it cannot be typed by accident,
# every database stores it in a text column, and the store refuses it inside a segment.
NAMESPACE_SEPARATOR = "\x1f"


class StoreItem(SQLModel, table=True):
    """A stored memory: a JSON document at (namespace, key) for a tenant, with its embedding.

    The embedding, tagged with the model that produced it so a search never compares vectors of
    different models, is the column `embedding` (EMBEDDING, below), which the ORM does not map:
    its type depends on what the database can do, and shared/memory/vector_search.py reads and
    writes it.
    """

    __tablename__ = "store_items"
    __table_args__ = (
        Index("ix_store_items_tenant_updated", "tenant_id", "updated_at"),
        Index("ix_store_items_expires_at", "expires_at"),
    )
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    namespace: str = Field(primary_key=True, max_length=512)
    key: str = Field(primary_key=True, max_length=256)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    embedding_model: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


# `store_items.embedding`: float32 little-endian bytes (sqlite-vec's own format) on SQLite, and
# on Postgres without pgvector and CockroachDB; `vector(EMBEDDINGS_DIMENSIONS)` on Postgres with
# pgvector (migrations/versions/0016_native_vectors.py). Declared here as bytes so the table is
# complete, but left out of the ORM mapping (appended after the class is mapped): every write
# and read goes through shared/memory/vector_search.py with the type the database really has.
EMBEDDING = Column("embedding", LargeBinary, nullable=True)
StoreItem.__table__.append_column(EMBEDDING)  # type: ignore[attr-defined]
