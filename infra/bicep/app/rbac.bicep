// Every data-plane grant of the deployment, in one place. Each role assignment is named
// guid(scope, principal, role) so re-deploying is idempotent; each GUID carries its role's name.
// The function app and the jobs share one user-assigned identity, so it is granted once.
param identityPrincipalId string
param registryName string
param storageAccountName string
param keyVaultName string
param redisName string
param redisDatabaseName string

@description('Azure OpenAI account name; empty when MODEL_PROVIDER is not azure (no grant then).')
param openAiAccountName string = ''
@description('Application Insights (local auth disabled): the identity publishes telemetry with Entra.')
param applicationInsightsName string

@description('The signed-in developer (azd\'s AZURE_PRINCIPAL_ID), granted model access for the dev host; empty to skip.')
param developerPrincipalId string = ''
@allowed(['User', 'Group', 'ServicePrincipal'])
param developerPrincipalType string = 'User'

var roles = {
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d' // AcrPull
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd' // Cognitive Services OpenAI User
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource redis 'Microsoft.Cache/redisEnterprise@2025-07-01' existing = {
  name: redisName
}

resource redisDatabase 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' existing = {
  parent: redis
  name: redisDatabaseName
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = if (!empty(openAiAccountName)) {
  name: empty(openAiAccountName) ? 'none' : openAiAccountName
}

// Image pulls for the app and the jobs (registries[].identity).
resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Telemetry with the identity: Application Insights refuses instrumentation-key ingestion.
resource appTelemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher) // Monitoring Metrics Publisher
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identityPrincipalId, roles.acrPull)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPull) // AcrPull
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Functions host storage (AzureWebJobsStorage__*): keys, leases and blobs the host keeps.
resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner) // Storage Blob Data Owner
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The run queue and its poison queue: read, process, send and move messages.
resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor) // Storage Queue Data Contributor
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Container Apps Key Vault references (secrets[].keyVaultUrl) for the secret settings.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser) // Key Vault Secrets User
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Model calls with an Entra token (MODEL_PROVIDER=azure).
resource appOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(openAiAccountName)) {
  name: guid(openAi.id, identityPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser) // Cognitive Services OpenAI User
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The developer's dev host calls the same deployment with their azd login (AzureDeveloperCliCredential).
resource developerOpenAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(openAiAccountName) && !empty(developerPrincipalId)) {
  name: guid(openAi.id, developerPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser) // Cognitive Services OpenAI User
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// Redis data access is not Azure RBAC: Azure Managed Redis grants it with an access policy
// assignment ('default' = full data access). Its name allows letters and digits only, so the
// guid(scope, principal, role) is used without its hyphens.
resource appRedisAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-07-01' = {
  parent: redisDatabase
  name: replace(guid(redisDatabase.id, identityPrincipalId, 'default'), '-', '')
  properties: {
    accessPolicyName: 'default'
    user: { objectId: identityPrincipalId }
  }
}
