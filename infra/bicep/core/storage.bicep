// Storage: the Functions host storage (AzureWebJobsStorage, reached with the managed identity)
// and the run queue. Shared keys are off: every client authenticates with Entra ID.
param location string
param tags object
param name string

@description('Queues to create: the run queue and its poison queue (the host moves a message there after maxDequeueCount).')
param queueNames array = [
  'agent-runs'
  'agent-runs-poison'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

output name string = storage.name
output queueEndpoint string = storage.properties.primaryEndpoints.queue
