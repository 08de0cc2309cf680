"""Every data-plane access has its grant, all grants live in app/rbac.bicep, named from guid()."""

from __future__ import annotations

import re

import pytest

from tests.infra.infra_helpers import BICEP_DIR, accessor, bicep, bicep_files, resources

ROLE_TYPE = "Microsoft.Authorization/roleAssignments"
KNOWN_ROLES = {
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Cognitive Services OpenAI User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RBAC = BICEP_DIR / "app" / "rbac.bicep"


def _assignments() -> dict[str, dict[str, object]]:
    return {k: v for k, v in resources("app/rbac.bicep").items() if v["type"] == ROLE_TYPE}


def _grant(symbol: str) -> tuple[str, str, str]:
    """(scope symbol, principal, role key) of one assignment."""
    body = _assignments()[symbol]["body"]
    role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    return body["scope"], body["properties"]["principalId"], accessor(role).split(".")[-1]


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_role_assignments_live_only_in_rbac(path: object) -> None:
    """No file but app/rbac.bicep declares a role assignment."""
    if path == RBAC:
        return
    assert ROLE_TYPE not in path.read_text()  # type: ignore[attr-defined]


def test_every_role_guid_is_named_in_a_comment() -> None:
    """Each role GUID in rbac.bicep sits on a line whose comment names that role."""
    lines = [line for line in RBAC.read_text().splitlines() if GUID.search(line)]
    assert lines
    for line in lines:
        guid = GUID.search(line).group(0)  # type: ignore[union-attr]
        assert guid in KNOWN_ROLES, guid
        assert f"// {KNOWN_ROLES[guid]}" in line, line


def test_every_role_definition_carries_the_role_name() -> None:
    """Each roleDefinitionId line names its role in a comment too."""
    for line in RBAC.read_text().splitlines():
        if "roleDefinitionId:" in line:
            assert re.search(r"// \S", line), line


def test_assignment_names_are_guid_of_scope_principal_role() -> None:
    """Each assignment is named guid(<scope>.id, <principal>, roles.<role>)."""
    assert _assignments()
    for symbol, resource in _assignments().items():
        body = resource["body"]
        guid = body["name"]["function"]
        assert guid["type"] == "guid", symbol
        params = guid["parameters"]
        assert accessor(params["base_string"]) == f"{body['scope']}.id", symbol
        assert params["extra_string_1"] == body["properties"]["principalId"], symbol
        assert accessor(params["extra_string_2"]) == accessor(
            body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        ), symbol
        assert body["properties"]["principalType"] in {"ServicePrincipal", "developerPrincipalType"}


@pytest.mark.parametrize(
    ("scope", "role"),
    [
        ("registry", "acrPull"),
        ("storage", "storageBlobDataOwner"),
        ("storage", "storageQueueDataContributor"),
        ("vault", "keyVaultSecretsUser"),
        ("openAi", "cognitiveServicesOpenAIUser"),
        ("appInsights", "monitoringMetricsPublisher"),
    ],
)
def test_the_identity_has_each_data_plane_grant(scope: str, role: str) -> None:
    """The app/jobs identity holds the role on the resource it reaches."""
    grants = {_grant(symbol) for symbol in _assignments()}
    assert (scope, "identityPrincipalId", role) in grants


def test_the_openai_grant_follows_the_azure_provider() -> None:
    """Model access is granted only when an Azure OpenAI account exists (MODEL_PROVIDER=azure)."""
    main = bicep("main.bicep")
    assert main["variables"]["useAzureOpenAi"]["value"] == {
        "operator": {
            "type": "equals",
            "operands": {"operand_1": "modelProvider", "operand_2": "azure"},
        }
    }
    assert main["modules"]["openAi"]["config"]["condition"] == "useAzureOpenAi"
    assert "useAzureOpenAi" in str(main["modules"]["rbac"]["config"]["params"]["openAiAccountName"])


def test_redis_access_is_granted_to_the_identity() -> None:
    """Azure Managed Redis data access is an access policy assignment for the identity."""
    policy = resources("app/rbac.bicep")["appRedisAccess"]["body"]
    assert policy["properties"]["user"] == {"objectId": "identityPrincipalId"}
    assert policy["properties"]["accessPolicyName"] == "default"


def test_rbac_gets_the_identity_principal() -> None:
    """main.bicep wires the identity's principal ID into rbac.bicep."""
    params = bicep("main.bicep")["modules"]["rbac"]["config"]["params"]
    assert accessor(params["identityPrincipalId"]) == "identity.outputs.principalId"


def test_compute_waits_for_the_grants() -> None:
    """The app and the jobs deploy after the role assignments (first pull, Key Vault refs)."""
    modules = bicep("main.bicep")["modules"]
    for name in ("functions", "jobs"):
        assert "rbac" in modules[name]["config"]["dependsOn"], name


def test_telemetry_goes_through_the_identity() -> None:
    """Application Insights disables local auth; the host authenticates with the identity."""
    insights = resources("core/monitoring.bicep")["applicationInsights"]["body"]
    assert insights["properties"]["DisableLocalAuth"] is True
    platform = bicep("app/functions.bicep")["variables"]["platformEnv"]["value"]
    (auth,) = (e for e in platform if e["name"] == "APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
    assert "Authorization=AAD;ClientId=" in str(auth["value"])
    assert "identityClientId" in str(auth["value"])
