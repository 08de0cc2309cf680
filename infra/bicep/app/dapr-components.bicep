// Dapr components of the environment, rendered from the SAME definitions compose mounts into
// daprd: local/components/*.yaml give each component's name, type, version and scopes (and the
// subscription's topic, route and dead-letter topic). Only the connection metadata is cloud-specific:
// Azure Managed Redis over TLS, authenticated with the app's managed identity (no key, no password).
param environmentName string
param redisHost string
param redisPort int
@description('Client ID of the user-assigned identity Dapr authenticates to Redis with.')
param identityClientId string

var statestoreDef = loadYamlContent('../../../local/components/statestore.yaml')
var pubsubDef = loadYamlContent('../../../local/components/pubsub.yaml')
var subscriptionDef = loadYamlContent('../../../local/components/subscription.yaml')

var redisMetadata = [
  { name: 'redisHost', value: '${redisHost}:${redisPort}' }
  { name: 'enableTLS', value: 'true' }
  { name: 'useEntraID', value: 'true' }
  { name: 'azureClientId', value: identityClientId }
]

resource environment 'Microsoft.App/managedEnvironments@2025-07-01' existing = {
  name: environmentName
}

resource statestore 'Microsoft.App/managedEnvironments/daprComponents@2025-07-01' = {
  parent: environment
  name: statestoreDef.metadata.name
  properties: {
    componentType: statestoreDef.spec.type
    version: statestoreDef.spec.version
    ignoreErrors: false
    initTimeout: '30s'
    metadata: redisMetadata
    scopes: statestoreDef.scopes
  }
}

resource pubsub 'Microsoft.App/managedEnvironments/daprComponents@2025-07-01' = {
  parent: environment
  name: pubsubDef.metadata.name
  properties: {
    componentType: pubsubDef.spec.type
    version: pubsubDef.spec.version
    ignoreErrors: false
    initTimeout: '30s'
    metadata: redisMetadata
    scopes: pubsubDef.scopes
  }
}

// Declarative subscriptions exist only in preview API versions of Container Apps.
resource subscription 'Microsoft.App/managedEnvironments/daprSubscriptions@2025-02-02-preview' = {
  parent: environment
  name: subscriptionDef.metadata.name
  properties: {
    pubsubName: subscriptionDef.spec.pubsubname
    topic: subscriptionDef.spec.topic
    routes: {
      default: subscriptionDef.spec.routes.default
    }
    deadLetterTopic: subscriptionDef.spec.deadLetterTopic
    scopes: subscriptionDef.scopes
  }
  dependsOn: [pubsub]
}

output statestoreName string = statestore.name
output pubsubName string = pubsub.name
