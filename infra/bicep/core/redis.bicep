// Azure Managed Redis (the successor of Azure Cache for Redis) behind the Dapr state store and
// pub/sub components. Access keys are disabled: Dapr authenticates with the app's managed
// identity (useEntraID); the access policy assignment lives in app/rbac.bicep.
param location string
param tags object
param name string
param skuName string = 'Balanced_B0'

resource cluster 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: skuName }
  properties: {
    highAvailability: 'Disabled'
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cluster
  name: 'default'
  properties: {
    accessKeysAuthentication: 'Disabled'
    clientProtocol: 'Encrypted'
    // EnterpriseCluster exposes one endpoint, so cluster-unaware clients (Dapr's redis components) work.
    clusteringPolicy: 'EnterpriseCluster'
    evictionPolicy: 'NoEviction'
    port: 10000
  }
}

output name string = cluster.name
output databaseName string = database.name
output host string = cluster.properties.hostName
output port int = database.properties.port
