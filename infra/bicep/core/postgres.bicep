// Azure Database for PostgreSQL flexible server with Microsoft Entra authentication only:
// password authentication is disabled and no administrator password exists anywhere.
// The app's managed identity is made an Entra administrator so it can run the migrations.
param location string
param tags object
param name string
param databaseName string = 'ascent'

@description('The managed identity that connects as an Entra administrator (it runs the migrations).')
param identityName string
param identityPrincipalId string

@description('Optional: the signed-in developer, added as a second Entra administrator (empty to skip).')
param adminPrincipalId string = ''
@description('The developer\'s user principal name (Entra admins are named by UPN); empty to skip.')
param adminPrincipalName string = ''
@allowed(['User', 'Group', 'ServicePrincipal'])
param adminPrincipalType string = 'User'

param skuName string = 'Standard_B1ms'
param skuTier string = 'Burstable'
param version string = '16'
param storageSizeGB int = 32

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    storage: { storageSizeGB: storageSizeGB }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: { mode: 'Disabled' }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: tenant().tenantId
    }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

// 0.0.0.0 - 0.0.0.0 means "Azure services" (Container Apps on the Consumption plan have no fixed egress IP).
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

// Entra administrators are created one at a time: the server rejects concurrent changes.
resource identityAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: identityPrincipalId
  properties: {
    principalName: identityName
    principalType: 'ServicePrincipal'
    tenantId: tenant().tenantId
  }
  dependsOn: [database, allowAzure]
}

resource developerAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = if (!empty(adminPrincipalId) && !empty(adminPrincipalName)) {
  parent: server
  name: empty(adminPrincipalId) ? 'none' : adminPrincipalId
  properties: {
    principalName: adminPrincipalName
    principalType: adminPrincipalType
    tenantId: tenant().tenantId
  }
  dependsOn: [identityAdmin]
}

// pgvector: a database may only CREATE EXTENSION what the `azure.extensions` server parameter
// allow-lists (the in-database name is `vector`). With it, the migrate job's revision 0016 makes
// store_items.embedding a pgvector column with an HNSW index; without it, search is the exact scan.
// Written after the administrators: the server rejects concurrent changes (ServerIsBusy).
resource extensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: {
    value: 'VECTOR'
    source: 'user-override'
  }
  dependsOn: [identityAdmin, developerAdmin]
}

output name string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
