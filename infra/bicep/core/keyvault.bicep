// Key Vault (RBAC mode) for the secret settings. A secret is stored only when a value was given;
// the app and the jobs read it as a Container Apps Key Vault reference with the managed identity.
// Secret names are the env var names in lower case with hyphens (OPENAI_API_KEY -> openai-api-key).
param location string
param tags object
param name string

@secure()
@description('Secret settings by env var name; a missing or empty value is not stored.')
param secretValues object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

// OPENAI_API_KEY: OPENAI_API_KEY for MODEL_PROVIDER=openai or compatible.
resource openaiApiKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?OPENAI_API_KEY ?? '')) {
  parent: vault
  name: 'openai-api-key'
  properties: { value: secretValues.OPENAI_API_KEY }
}

// ASCENT_DEV_API_KEY: the development tenant's API key.
resource ascentDevApiKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?ASCENT_DEV_API_KEY ?? '')) {
  parent: vault
  name: 'ascent-dev-api-key'
  properties: { value: secretValues.ASCENT_DEV_API_KEY }
}

// ASCENT_ADMIN_KEY: the platform admin key for /api/admin/*.
resource ascentAdminKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?ASCENT_ADMIN_KEY ?? '')) {
  parent: vault
  name: 'ascent-admin-key'
  properties: { value: secretValues.ASCENT_ADMIN_KEY }
}

// UPSTASH_REDIS_REST_URL: Upstash REST URL, for SESSION_BACKEND=upstash.
resource upstashRedisRestUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?UPSTASH_REDIS_REST_URL ?? '')) {
  parent: vault
  name: 'upstash-redis-rest-url'
  properties: { value: secretValues.UPSTASH_REDIS_REST_URL }
}

// UPSTASH_REDIS_REST_TOKEN: Upstash REST token, for SESSION_BACKEND=upstash.
resource upstashRedisRestToken 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?UPSTASH_REDIS_REST_TOKEN ?? '')) {
  parent: vault
  name: 'upstash-redis-rest-token'
  properties: { value: secretValues.UPSTASH_REDIS_REST_TOKEN }
}

// ASCENT_MCP_TOOLS_TOKEN: the key the MCP tool server requires and the agents send.
resource ascentMcpToolsToken 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?ASCENT_MCP_TOOLS_TOKEN ?? '')) {
  parent: vault
  name: 'ascent-mcp-tools-token'
  properties: { value: secretValues.ASCENT_MCP_TOOLS_TOKEN }
}

// ASCENT_MCP_SECRETS: the MCP servers' header secrets (JSON).
resource ascentMcpSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?ASCENT_MCP_SECRETS ?? '')) {
  parent: vault
  name: 'ascent-mcp-secrets'
  properties: { value: secretValues.ASCENT_MCP_SECRETS }
}

// CHAINLIT_AUTH_SECRET: signs the UI's session tokens and seals the credential they carry.
resource chainlitAuthSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?CHAINLIT_AUTH_SECRET ?? '')) {
  parent: vault
  name: 'chainlit-auth-secret'
  properties: { value: secretValues.CHAINLIT_AUTH_SECRET }
}

// OAUTH_AZURE_AD_CLIENT_SECRET: the UI's Entra app registration secret (Entra sign-in).
resource oauthAzureAdClientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(secretValues.?OAUTH_AZURE_AD_CLIENT_SECRET ?? '')) {
  parent: vault
  name: 'oauth-azure-ad-client-secret'
  properties: { value: secretValues.OAUTH_AZURE_AD_CLIENT_SECRET }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
