// Ascent's cloud stage. `azd up` deploys it: a resource group, then one module per deployable.
// Outputs are named exactly like the env vars the code reads (shared/core/settings.py), so
// `azd env get-values` can point a local dev host at the cloud resources.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('The signed-in principal (azd fills AZURE_PRINCIPAL_ID); granted model access for the dev host.')
param principalId string = ''
@allowed(['User', 'Group', 'ServicePrincipal'])
param principalType string = 'User'
@description('UPN of the signed-in user, made a Postgres Entra administrator; empty to skip.')
param postgresAdminPrincipalName string = ''

// Name overrides (empty = generated from abbreviations.json and the resource token).
param resourceGroupName string = ''
param functionsAppName string = ''
param containerAppsEnvironmentName string = ''

// --- What the code reads (shared/core/settings.py) ---
@allowed(['offline', 'openai', 'azure', 'compatible'])
@description('MODEL_PROVIDER. azure creates an Azure OpenAI account and deployment reached with the managed identity.')
param modelProvider string = 'azure'
@description('MODEL_NAME; with azure it is also the deployment name.')
param modelName string = 'gpt-4.1-mini'
@description('Model version deployed when MODEL_PROVIDER=azure.')
param azureOpenAiModelVersion string = '2025-04-14'
@description('OPENAI_BASE_URL for MODEL_PROVIDER=compatible (or a proxy for openai); empty otherwise.')
param openAiBaseUrl string = ''
@description('ASCENT_TRACE_EXPORT: also send the Agents SDK traces to OpenAI (only ever with MODEL_PROVIDER=openai and a key).')
param traceExport bool = false
@description('OTEL_EXPORTER_OTLP_ENDPOINT: an OTLP/HTTP collector that gets the traces too (Azure Monitor always does); empty = none.')
param otlpEndpoint string = ''
@allowed(['sql', 'redis', 'upstash', 'dapr'])
@description('SESSION_BACKEND of the function app: dapr = the sidecar state store on Azure Managed Redis. Jobs have no sidecar and use sql.')
param sessionBackend string = 'dapr'

@description('ASCENT_AGENTS: the agent modules the app serves, comma-separated (empty: the demo agents). docs/agents.md.')
param agents string = ''

@secure()
@description('Secret settings by env var name (OPENAI_API_KEY, ASCENT_DEV_API_KEY, ASCENT_ADMIN_KEY, UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, ASCENT_MCP_TOOLS_TOKEN, ASCENT_MCP_SECRETS; the UI\'s CHAINLIT_AUTH_SECRET and OAUTH_AZURE_AD_CLIENT_SECRET), filled by azd from the environment; empty values are not stored.')
param secretSettings object

// --- Compute ---
@description('The one image (app and every job); azd sets SERVICE_FUNCTIONS_IMAGE_NAME after its first deploy.')
param functionsImage string = ''
param functionsMinReplicas int = 0
param functionsMaxReplicas int = 10

// --- The UI tier (ui/, its own image and container app; docs/ui.md) ---
@description('The UI image; azd sets SERVICE_UI_IMAGE_NAME after its first deploy of `ui`.')
param uiImage string = ''
@allowed(['key', 'entra'])
@description('ASCENT_UI_AUTH: entra = Entra ID sign-in, its token sent to the API as a bearer; key = an Ascent API key as the password.')
param uiAuth string = 'entra'
@description('ASCENT_UI_API_SCOPE: the API scope the UI asks Entra for (api://<api app id>/access_as_user).')
param uiApiScope string = ''
@description('OAUTH_AZURE_AD_CLIENT_ID: the UI\'s Entra app registration.')
param uiEntraClientId string = ''

// The public Functions base image stands in until azd deploys the real one.
var placeholderImage = 'mcr.microsoft.com/azure-functions/python:4-python3.11'
var daprAppId = 'ascent'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var useAzureOpenAi = modelProvider == 'azure'
// Tunable settings (limits, timeouts, embeddings): the code's defaults unless changed there.
var tunableSettings = loadJsonContent('app/settings.json')
var tunableList = items(tunableSettings)
// The Dapr state store's name comes from the component definition both stages load.
var statestoreDef = loadYamlContent('../../local/components/statestore.yaml')
// Domain events go to this pub/sub component and topic (the subscription's), read from the same files.
var pubsubDef = loadYamlContent('../../local/components/pubsub.yaml')
var subscriptionDef = loadYamlContent('../../local/components/subscription.yaml')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
  }
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
  }
}

module registry 'core/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.containerRegistryRegistries}${resourceToken}'
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
  }
}

module postgres 'core/postgres.bicep' = {
  name: 'postgres'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.dBforPostgreSQLServers}${resourceToken}'
    identityName: identity.outputs.name
    identityPrincipalId: identity.outputs.principalId
    adminPrincipalId: principalId
    adminPrincipalName: postgresAdminPrincipalName
    adminPrincipalType: principalType
  }
}

module redis 'core/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.cacheRedisEnterprise}${resourceToken}'
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    secretValues: secretSettings
  }
}

module openAi 'core/openai.bicep' = if (useAzureOpenAi) {
  name: 'openai'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.cognitiveServicesOpenAI}${resourceToken}'
    deploymentName: modelName
    modelName: modelName
    modelVersion: azureOpenAiModelVersion
  }
}

module environment 'app/environment.bicep' = {
  name: 'environment'
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(containerAppsEnvironmentName) ? containerAppsEnvironmentName : '${abbrs.appManagedEnvironments}${resourceToken}'
    logAnalyticsName: monitoring.outputs.logAnalyticsName
  }
}

module daprComponents 'app/dapr-components.bicep' = {
  name: 'dapr-components'
  scope: rg
  params: {
    environmentName: environment.outputs.name
    redisHost: redis.outputs.host
    redisPort: redis.outputs.port
    identityClientId: identity.outputs.clientId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    registryName: registry.outputs.name
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    redisName: redis.outputs.name
    redisDatabaseName: redis.outputs.databaseName
    openAiAccountName: useAzureOpenAi ? openAi!.outputs.name : ''
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
}

// Postgres with Entra auth: the user is the managed identity's name and there is no password.
var databaseUrl = 'postgresql://${identity.outputs.name}@${postgres.outputs.fqdn}:5432/${postgres.outputs.databaseName}?sslmode=require'
var azureOpenAiEndpoint = useAzureOpenAi ? openAi!.outputs.endpoint : ''

// Secret settings reach the containers as Key Vault references, only when a value was given.
var secretRefs = concat(
  empty(secretSettings.?OPENAI_API_KEY ?? '') ? [] : [{ name: 'openai-api-key', keyVaultUrl: '${keyVault.outputs.uri}secrets/openai-api-key', identity: identity.outputs.id }],
  empty(secretSettings.?ASCENT_DEV_API_KEY ?? '') ? [] : [{ name: 'ascent-dev-api-key', keyVaultUrl: '${keyVault.outputs.uri}secrets/ascent-dev-api-key', identity: identity.outputs.id }],
  empty(secretSettings.?ASCENT_ADMIN_KEY ?? '') ? [] : [{ name: 'ascent-admin-key', keyVaultUrl: '${keyVault.outputs.uri}secrets/ascent-admin-key', identity: identity.outputs.id }],
  empty(secretSettings.?UPSTASH_REDIS_REST_URL ?? '') ? [] : [{ name: 'upstash-redis-rest-url', keyVaultUrl: '${keyVault.outputs.uri}secrets/upstash-redis-rest-url', identity: identity.outputs.id }],
  empty(secretSettings.?UPSTASH_REDIS_REST_TOKEN ?? '') ? [] : [{ name: 'upstash-redis-rest-token', keyVaultUrl: '${keyVault.outputs.uri}secrets/upstash-redis-rest-token', identity: identity.outputs.id }],
  empty(secretSettings.?ASCENT_MCP_TOOLS_TOKEN ?? '') ? [] : [{ name: 'ascent-mcp-tools-token', keyVaultUrl: '${keyVault.outputs.uri}secrets/ascent-mcp-tools-token', identity: identity.outputs.id }],
  empty(secretSettings.?ASCENT_MCP_SECRETS ?? '') ? [] : [{ name: 'ascent-mcp-secrets', keyVaultUrl: '${keyVault.outputs.uri}secrets/ascent-mcp-secrets', identity: identity.outputs.id }]
)
var secretEnv = [
  empty(secretSettings.?OPENAI_API_KEY ?? '') ? { name: 'OPENAI_API_KEY', value: '' } : { name: 'OPENAI_API_KEY', secretRef: 'openai-api-key' }
  empty(secretSettings.?ASCENT_DEV_API_KEY ?? '') ? { name: 'ASCENT_DEV_API_KEY', value: '' } : { name: 'ASCENT_DEV_API_KEY', secretRef: 'ascent-dev-api-key' }
  empty(secretSettings.?ASCENT_ADMIN_KEY ?? '') ? { name: 'ASCENT_ADMIN_KEY', value: '' } : { name: 'ASCENT_ADMIN_KEY', secretRef: 'ascent-admin-key' }
  empty(secretSettings.?UPSTASH_REDIS_REST_URL ?? '') ? { name: 'UPSTASH_REDIS_REST_URL', value: '' } : { name: 'UPSTASH_REDIS_REST_URL', secretRef: 'upstash-redis-rest-url' }
  empty(secretSettings.?UPSTASH_REDIS_REST_TOKEN ?? '') ? { name: 'UPSTASH_REDIS_REST_TOKEN', value: '' } : { name: 'UPSTASH_REDIS_REST_TOKEN', secretRef: 'upstash-redis-rest-token' }
  empty(secretSettings.?ASCENT_MCP_TOOLS_TOKEN ?? '') ? { name: 'ASCENT_MCP_TOOLS_TOKEN', value: '' } : { name: 'ASCENT_MCP_TOOLS_TOKEN', secretRef: 'ascent-mcp-tools-token' }
  empty(secretSettings.?ASCENT_MCP_SECRETS ?? '') ? { name: 'ASCENT_MCP_SECRETS', value: '' } : { name: 'ASCENT_MCP_SECRETS', secretRef: 'ascent-mcp-secrets' }
]

// Every setting shared/core/settings.py reads is set below, for the function app and every job
// (tests/infra checks the union is exactly Settings' env vars). Empty = unset (env_ignore_empty).
var sharedEnv = [
  { name: 'ASCENT_ENV', value: 'prod' }
  { name: 'ASCENT_DATA_DIR', value: '/tmp/ascent' }
  { name: 'DATABASE_URL', value: databaseUrl }
  { name: 'DATABASE_AUTH', value: 'entra' }
  { name: 'MODEL_PROVIDER', value: modelProvider }
  { name: 'MODEL_NAME', value: modelName }
  { name: 'OPENAI_BASE_URL', value: openAiBaseUrl }
  { name: 'AZURE_OPENAI_ENDPOINT', value: azureOpenAiEndpoint }
  { name: 'AZURE_CLIENT_ID', value: identity.outputs.clientId }
  { name: 'ASCENT_TRACE_EXPORT', value: string(traceExport) }
  // OpenTelemetry (shared/platform/observability.py): Azure Monitor with the managed identity;
  // the Functions host reads the same connection string for its own telemetry.
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: monitoring.outputs.applicationInsightsConnectionString }
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: otlpEndpoint }
  { name: 'OTEL_METRICS_EXPORTER', value: 'otlp' }
  // One JSON object per log line of the jobs (with tenant, run, thread and trace ids).
  { name: 'ASCENT_LOG_FORMAT', value: 'json' }
  // Azure Managed Redis accepts Entra tokens only, which the code's Redis client cannot send yet:
  // left empty, the code uses its in-process fallbacks; Dapr reaches the same Redis with Entra ID.
  { name: 'REDIS_URL', value: '' }
  { name: 'DAPR_STATE_STORE', value: statestoreDef.metadata.name }
  { name: 'DAPR_PUBSUB_NAME', value: pubsubDef.metadata.name }
  { name: 'DAPR_TOPIC', value: subscriptionDef.spec.topic }
  // Background runs go through the `agent-runs` Storage queue of the host storage account.
  { name: 'QUEUE_BACKEND', value: 'azure' }
  // The demo agents call the shared tools on the MCP tool server (internal ingress only).
  { name: 'ASCENT_MCP_TOOLS_URL', value: mcpTools.outputs.url }
  // The agent modules served (azd env set ASCENT_AGENTS ...; empty: the demo agents).
  { name: 'ASCENT_AGENTS', value: agents }
]
var tunableEnv = [for item in tunableList: { name: item.key, value: item.value }]

// The app has a Dapr sidecar (ACA serves it on these ports); jobs have none.
var appOnlyEnv = [
  { name: 'SESSION_BACKEND', value: sessionBackend }
  { name: 'DAPR_HTTP_PORT', value: '3500' }
  { name: 'DAPR_GRPC_PORT', value: '50001' }
  { name: 'ASCENT_EVENTS_PUBLISH', value: 'auto' }
]
var jobOnlyEnv = [
  { name: 'SESSION_BACKEND', value: sessionBackend == 'dapr' ? 'sql' : sessionBackend }
  { name: 'DAPR_HTTP_PORT', value: '' }
  { name: 'DAPR_GRPC_PORT', value: '' }
  // No sidecar: the drain_outbox job delivers webhooks and leaves pub/sub to the app.
  { name: 'ASCENT_EVENTS_PUBLISH', value: 'off' }
]
var appEnv = concat(sharedEnv, secretEnv, tunableEnv, appOnlyEnv)
var jobEnv = concat(sharedEnv, secretEnv, tunableEnv, jobOnlyEnv)

module functions 'app/functions.bicep' = {
  name: 'functions'
  scope: rg
  params: {
    location: location
    tags: tags
    name: !empty(functionsAppName) ? functionsAppName : '${abbrs.appContainerApps}functions-${resourceToken}'
    environmentId: environment.outputs.id
    image: !empty(functionsImage) ? functionsImage : placeholderImage
    registryServer: registry.outputs.loginServer
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    env: appEnv
    secrets: secretRefs
    daprAppId: daprAppId
    minReplicas: functionsMinReplicas
    maxReplicas: functionsMaxReplicas
  }
  // Roles first: the first revision pulls with AcrPull and resolves Key Vault references.
  dependsOn: [rbac, daprComponents]
}

// The MCP tool server (`python -m mcp_tools`): stateless, reachable inside the environment only.
module mcpTools 'app/mcp-tools.bicep' = {
  name: 'mcp-tools'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.appContainerApps}mcp-tools-${resourceToken}'
    environmentId: environment.outputs.id
    // The one image (as every job): the postdeploy hook moves it to the image azd built.
    image: !empty(functionsImage) ? functionsImage : placeholderImage
    registryServer: registry.outputs.loginServer
    identityId: identity.outputs.id
    env: filter(secretEnv, e => e.name == 'ASCENT_MCP_TOOLS_TOKEN')
    secrets: filter(secretRefs, s => s.name == 'ascent-mcp-tools-token')
  }
  dependsOn: [rbac]
}

// The UI's secrets: the session-signing secret (the preprovision hook makes one when the azd
// environment has none) and, for Entra sign-in, the UI registration's client secret.
var uiSecretRefs = concat(
  [{ name: 'chainlit-auth-secret', keyVaultUrl: '${keyVault.outputs.uri}secrets/chainlit-auth-secret', identity: identity.outputs.id }],
  empty(secretSettings.?OAUTH_AZURE_AD_CLIENT_SECRET ?? '') ? [] : [{ name: 'oauth-azure-ad-client-secret', keyVaultUrl: '${keyVault.outputs.uri}secrets/oauth-azure-ad-client-secret', identity: identity.outputs.id }]
)

// The UI (Chainlit): public, stateless, a client of the function app's public API.
module ui 'app/ui.bicep' = {
  name: 'ui'
  scope: rg
  params: {
    location: location
    tags: tags
    name: '${abbrs.appContainerApps}ui-${resourceToken}'
    environmentId: environment.outputs.id
    environmentDomain: environment.outputs.defaultDomain
    image: uiImage
    registryServer: registry.outputs.loginServer
    identityId: identity.outputs.id
    apiUrl: '${functions.outputs.uri}/api'
    auth: uiAuth
    apiScope: uiApiScope
    entraClientId: uiEntraClientId
    secrets: uiSecretRefs
  }
  // Roles first: the first revision pulls with AcrPull and resolves Key Vault references.
  dependsOn: [rbac]
}

module jobs 'app/jobs.bicep' = {
  name: 'jobs'
  scope: rg
  params: {
    location: location
    tags: tags
    environmentId: environment.outputs.id
    registryServer: registry.outputs.loginServer
    identityId: identity.outputs.id
    resourceToken: resourceToken
    abbreviation: abbrs.appJobs
    // The jobs run the app's image (built once by azd); the postdeploy hook moves them to each
    // newly deployed image before it runs the migrate job.
    image: !empty(functionsImage) ? functionsImage : placeholderImage
    env: jobEnv
    secrets: secretRefs
  }
  dependsOn: [rbac]
}

// azd conventions (read by azd itself and by the postdeploy hook).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output SERVICE_FUNCTIONS_NAME string = functions.outputs.name
output SERVICE_FUNCTIONS_URI string = functions.outputs.uri
output ASCENT_MIGRATE_JOB string = jobs.outputs.names[0]
output ASCENT_JOBS string = join(jobs.outputs.names, ' ')
output ASCENT_MCP_TOOLS_APP string = mcpTools.outputs.name
output SERVICE_UI_NAME string = ui.outputs.name
output SERVICE_UI_URI string = ui.outputs.uri

// Settings the code reads, for a local dev host pointed at the cloud (never secrets).
output DATABASE_URL string = databaseUrl
output MODEL_PROVIDER string = modelProvider
output MODEL_NAME string = modelName
output AZURE_OPENAI_ENDPOINT string = azureOpenAiEndpoint
output OPENAI_BASE_URL string = openAiBaseUrl
