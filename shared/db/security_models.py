"""Security tables kept apart from models.py: per-tenant identity provider and budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Integer, String
from sqlmodel import Field, SQLModel

from shared.db.models import utcnow
from shared.db.types import UTCDateTime


class TenantIdentity(SQLModel, table=True):
    """How a tenant's users prove who they are with bearer tokens (Entra ID or any OIDC issuer).

    A JWT is accepted for the tenant when its `iss` equals `issuer`, its `aud` contains
    `audience`, its signature verifies with a key from `jwks_url`, and (when set) its `tid`
    equals `entra_tenant_id`. ACA built-in auth principals are mapped by `entra_tenant_id`.
    """

    __tablename__ = "tenant_identities"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    issuer: str = Field(index=True, max_length=500)
    audience: str = Field(max_length=500)
    jwks_url: str = Field(max_length=1000)
    entra_tenant_id: str | None = Field(default=None, index=True, max_length=64)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class TenantLimits(SQLModel, table=True):
    """A tenant's own budgets; a NULL column means the deployment default (ASCENT_* setting).

    0 turns that budget off for the tenant, as it does for the settings.
    """

    __tablename__ = "tenant_limits"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    requests_per_minute: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    key_requests_per_minute: int | None = Field(
        default=None, sa_column=Column(Integer, nullable=True)
    )
    concurrent_runs: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    tokens_per_day: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class TenantDataPolicy(SQLModel, table=True):
    """A tenant's data policy (shared/security/data_policy.py): its action (NULL: the
    deployment default, ASCENT_DATA_POLICY) and its own patterns, `[{name, regex}]`."""

    __tablename__ = "tenant_data_policies"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=64)
    action: str | None = Field(default=None, sa_column=Column(String(10), nullable=True))
    patterns: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
