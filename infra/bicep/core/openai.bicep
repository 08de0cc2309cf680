// Azure OpenAI account and one model deployment, named like MODEL_NAME (the code passes
// MODEL_NAME as the model, and on Azure that is the deployment name). Keys are disabled: the app
// calls it with its managed identity (Cognitive Services OpenAI User, in app/rbac.bicep).
param location string
param tags object
param name string
param deploymentName string
param modelName string
param modelVersion string
param deploymentSkuName string = 'GlobalStandard'
@description('Capacity in thousands of tokens per minute.')
param deploymentCapacity int = 10

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: deploymentSkuName
    capacity: deploymentCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
