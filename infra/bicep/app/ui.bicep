// The UI tier (ui/, Chainlit): its own image (azd service `ui`, built from ui/Dockerfile), public
// ingress, stateless (any replica opens any session: they share CHAINLIT_AUTH_SECRET). It reaches
// the Ascent API over HTTPS only, as a third-party client would (ASCENT_API_URL).
param location string
param tags object
param name string
param environmentId string
@description('The environment\'s default domain: the UI\'s URL is known before the app exists.')
param environmentDomain string
@description('The UI image azd built (SERVICE_UI_IMAGE_NAME); empty = a placeholder until the first deploy.')
param image string
param registryServer string
param identityId string

@description('ASCENT_API_URL: the API base URL, ending in /api.')
param apiUrl string
@allowed(['key', 'entra'])
@description('ASCENT_UI_AUTH: entra = Entra ID sign-in (the token goes to the API as a bearer); key = an Ascent API key as the password.')
param auth string = 'entra'
@description('ASCENT_UI_API_SCOPE: the API scope the UI asks Entra for, e.g. api://<api app id>/access_as_user.')
param apiScope string = ''
@description('OAUTH_AZURE_AD_CLIENT_ID: the UI app registration (its redirect URI: <UI URL>/auth/oauth/azure-ad/callback).')
param entraClientId string = ''
@description('Key Vault references (Container Apps secrets): chainlit-auth-secret, and with Entra oauth-azure-ad-client-secret.')
param secrets array

// Chainlit's port (ui/Dockerfile).
param port int = 8000
param cpu string = '0.5'
param memory string = '1Gi'
param minReplicas int = 0
param maxReplicas int = 5

// Until azd's first deploy of `ui`, a placeholder that answers on the same port and path. azd
// then swaps the image only (not the env, port or probes), so both must already be the UI's.
var placeholderImage = 'mcr.microsoft.com/dotnet/samples:aspnetapp'
var deployed = !empty(image)
var hasClientSecret = length(filter(secrets, s => s.name == 'oauth-azure-ad-client-secret')) > 0
// Chainlit builds its OAuth redirect URI from CHAINLIT_URL, the UI's public URL.
var url = 'https://${name}.${environmentDomain}'

var baseEnv = [
  { name: 'ASCENT_API_URL', value: apiUrl }
  { name: 'ASCENT_UI_AUTH', value: auth }
  { name: 'CHAINLIT_AUTH_SECRET', secretRef: 'chainlit-auth-secret' }
  { name: 'CHAINLIT_URL', value: url }
]
var entraEnv = [
  { name: 'ASCENT_UI_API_SCOPE', value: apiScope }
  { name: 'OAUTH_AZURE_AD_CLIENT_ID', value: entraClientId }
  { name: 'OAUTH_AZURE_AD_TENANT_ID', value: tenant().tenantId }
  // Only accounts of this tenant sign in (the API trusts this tenant's tokens).
  { name: 'OAUTH_AZURE_AD_ENABLE_SINGLE_TENANT', value: 'true' }
]
var clientSecretEnv = [{ name: 'OAUTH_AZURE_AD_CLIENT_SECRET', secretRef: 'oauth-azure-ad-client-secret' }]
// The placeholder's port setting; harmless to the UI, and gone at the next provision.
var placeholderEnv = [{ name: 'ASPNETCORE_HTTP_PORTS', value: string(port) }]
var env = concat(
  baseEnv,
  auth == 'entra' ? entraEnv : [],
  auth == 'entra' && hasClientSecret ? clientSecretEnv : [],
  deployed ? [] : placeholderEnv
)

resource app 'Microsoft.App/containerApps@2025-07-01' = {
  name: name
  location: location
  // azd deploys the `ui` service (its own image) to the app with this tag.
  tags: union(tags, { 'azd-service-name': 'ui' })
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
        targetPort: port
        transport: 'auto'
        allowInsecure: false
        // Chainlit's websocket (socket.io) must come back to the replica that holds it.
        stickySessions: { affinity: 'sticky' }
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
          name: 'ui'
          image: deployed ? image : placeholderImage
          env: env
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          probes: [
            {
              type: 'Readiness'
              httpGet: { path: '/', port: port }
            }
          ]
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
