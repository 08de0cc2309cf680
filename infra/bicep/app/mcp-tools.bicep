// The MCP tool server: the app's image running `python -m mcp_tools` (stateless streamable HTTP
// on port 8080, path /mcp), internal ingress only, so only apps of the environment reach it.
param location string
param tags object
param name string
param environmentId string
param image string
param registryServer string
param identityId string

@description('Its settings: ASCENT_MCP_TOOLS_TOKEN (empty, or a Key Vault secretRef).')
param env array
@description('Container Apps secrets (Key Vault references) that env entries point to with secretRef.')
param secrets array

param port int = 8080
param cpu string = '0.25'
param memory string = '0.5Gi'

resource app 'Microsoft.App/containerApps@2025-07-01' = {
  name: name
  location: location
  // Not an azd service: it runs the one image, which the postdeploy hook moves it to.
  tags: union(tags, { 'ascent-app': 'mcp_tools' })
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
        external: false
        targetPort: port
        transport: 'http'
        allowInsecure: false
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
          name: 'mcp-tools'
          image: image
          command: ['python', '-m', 'mcp_tools', '--host', '0.0.0.0', '--port', string(port)]
          env: env
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Readiness'
              httpGet: { path: '/health', port: port }
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: 5
      }
    }
  }
}

output name string = app.name
output url string = 'https://${app.properties.configuration.ingress.fqdn}/mcp'
