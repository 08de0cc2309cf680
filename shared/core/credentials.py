"""Keyless auth from one credential factory: the managed identity first, then `azd auth login`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.core.services import service
from shared.core.settings import get_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

# Entra scope for Azure Database for PostgreSQL (the token is the connection's password).
POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"


@service("credential")
def sync_credential() -> TokenCredential:
    """The process-wide synchronous credential (tokens are cached and refreshed by it)."""
    from azure.identity import (
        AzureDeveloperCliCredential,
        ChainedTokenCredential,
        ManagedIdentityCredential,
    )

    client_id = get_settings().azure_client_id
    return ChainedTokenCredential(
        ManagedIdentityCredential(client_id=client_id), AzureDeveloperCliCredential()
    )


@service("async_credential")
def async_credential() -> AsyncTokenCredential:
    """The process-wide asynchronous credential, for async SDK clients (Azure OpenAI)."""
    from azure.identity.aio import (
        AzureDeveloperCliCredential,
        ChainedTokenCredential,
        ManagedIdentityCredential,
    )

    client_id = get_settings().azure_client_id
    return ChainedTokenCredential(
        ManagedIdentityCredential(client_id=client_id), AzureDeveloperCliCredential()
    )


def postgres_token() -> str:
    """An Entra access token to use as the Postgres password (valid about an hour)."""
    return sync_credential().get_token(POSTGRES_SCOPE).token
