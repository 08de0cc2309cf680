"""The Azure Postgres server allow-lists pgvector, so revision 0011 can create the extension."""

from __future__ import annotations

from typing import Any

from tests.infra.infra_helpers import resources


def _allow_list() -> dict[str, Any]:
    found = [
        r
        for r in resources("core/postgres.bicep").values()
        if r["type"] == "Microsoft.DBforPostgreSQL/flexibleServers/configurations"
        and r["body"]["name"] == "azure.extensions"
    ]
    assert len(found) == 1, "one azure.extensions configuration (a second would overwrite it)"
    return found[0]


def test_the_server_allow_lists_vector() -> None:
    """`azure.extensions` on the flexible server names VECTOR, as a user override."""
    config = _allow_list()
    assert config["body"]["parent"] == "server"
    assert config["api_version"] == resources("core/postgres.bicep")["server"]["api_version"]
    properties = config["body"]["properties"]
    assert "VECTOR" in [name.strip().upper() for name in properties["value"].split(",")]
    assert properties["source"] == "user-override"


def test_the_allow_list_waits_for_the_administrators() -> None:
    """Written after the Entra administrators: the server refuses concurrent changes."""
    assert set(_allow_list()["body"]["dependsOn"]) == {"identityAdmin", "developerAdmin"}
