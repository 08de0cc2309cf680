// The function app: a Container App of kind 'functionapp' (the native Functions-on-ACA shape),
// Dapr sidecar on, ingress on (needed for event-driven autoscale), running as the user-assigned
// identity. The Functions host reads its own storage with that identity (AzureWebJobsStorage__*),
// and KEDA scale rules come from the triggers automatically (no manual rules).
param location string
param tags object
param name string
param environmentId string
param image string
param registryServer string
param identityId string
param identityClientId string
param storageAccountName string

@description('The settings the code reads (shared/core/settings.py), built once in main.bicep for the app and the jobs.')
param env array
@description('Container Apps secrets (Key Vault references) that env entries point to with secretRef.')
param secrets array

@description('The Dapr app ID: the scope in local/components/*.yaml and daprd --app-id in compose.')
param daprAppId string

param minReplicas int = 0
param maxReplicas int = 10
param cpu string = '0.5'
param memory string = '1Gi'

// Platform settings the Functions host reads (not the code): identity-based host storage and
// telemetry auth (APPLICATIONINSIGHTS_CONNECTION_STRING is a setting of `env`: the code reads it too).
var platformEnv = [
  { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  // Application Insights has local auth disabled: the host sends telemetry with the identity.
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD;ClientId=${identityClientId}' }
]

resource app 'Microsoft.App/containerApps@2025-07-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'functions' })
  kind: 'functionapp'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    managedEnvironmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 80
        transport: 'auto'
        allowInsecure: false
      }
      dapr: {
        enabled: true
        appId: daprAppId
        appPort: 80
        appProtocol: 'http'
        logLevel: 'info'
      }
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: secrets
    }
    template: {
      containers: [
        {
          name: 'functions'
          image: image
          env: concat(platformEnv, env)
          resources: {
            cpu: json(cpu)
            memory: memory
          }
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
      }
    }
  }
}

output name string = app.name
output uri string = 'https://${app.properties.configuration.ingress.fqdn}'
