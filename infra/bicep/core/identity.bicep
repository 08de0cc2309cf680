// The one user-assigned identity the function app and every job run as (ACR pull, storage,
// Key Vault references, Postgres, Redis and Azure OpenAI). User-assigned, so every role can be
// granted before the app exists (no second deployment, unlike a system-assigned identity).
param location string
param tags object
param name string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
