"""Assistants: versioned, per-tenant configurations of catalog agents, and their audit trail.

An assistant's row mirrors its latest version (the `version` pointer) so searches read one
table; every version is a row of `assistant_versions`. Keys lead with the tenant, so two
tenants may use the same assistant id and neither can learn that the other does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

from shared.db.models import new_id, utcnow
from shared.db.types import UTCDateTime


class Assistant(SQLModel, table=True):
    """An assistant of a tenant: its latest version's fields and the pointer to it."""

    __tablename__ = "assistants"
    __table_args__ = (Index("ix_assistants_tenant_graph", "tenant_id", "graph_id"),)
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    graph_id: str = Field(max_length=100)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class AssistantVersion(SQLModel, table=True):
    """One immutable version of an assistant; a run on the assistant records which it used.

    Deleted with its assistant (explicitly: SQLite does not enforce foreign keys here).
    """

    __tablename__ = "assistant_versions"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    assistant_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    graph_id: str = Field(max_length=100)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class AssistantAudit(SQLModel, table=True):
    """One change of an assistant (created, updated, latest set, deleted): who, when, what.

    Kept after the assistant is deleted, so its history stays readable.
    """

    __tablename__ = "assistant_audit"
    __table_args__ = (Index("ix_assistant_audit_tenant_assistant", "tenant_id", "assistant_id"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    assistant_id: str = Field(max_length=64)
    action: str = Field(max_length=20)  # created|updated|latest|deleted
    actor: str = Field(max_length=200)
    version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
