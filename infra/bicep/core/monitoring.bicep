// Log Analytics (the Container Apps environment's logs) and Application Insights (the Functions host's telemetry).
param location string
param tags object
param logAnalyticsName string
param applicationInsightsName string

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // No instrumentation-key ingestion: telemetry is accepted only with an Entra token (the
    // app's managed identity, APPLICATIONINSIGHTS_AUTHENTICATION_STRING in app/functions.bicep,
    // granted Monitoring Metrics Publisher in app/rbac.bicep).
    DisableLocalAuth: true
  }
}

output logAnalyticsName string = logAnalytics.name
output applicationInsightsName string = applicationInsights.name
output applicationInsightsConnectionString string = applicationInsights.properties.ConnectionString
