# azd postdeploy on Windows: the same steps as postdeploy.sh (jobs to the new image, then the
# migrate job, waited for); any failure fails `azd deploy`.
$ErrorActionPreference = 'Stop'
foreach ($var in 'SERVICE_FUNCTIONS_IMAGE_NAME', 'AZURE_RESOURCE_GROUP', 'ASCENT_JOBS', 'ASCENT_MIGRATE_JOB', 'ASCENT_MCP_TOOLS_APP') {
  if (-not (Get-Item "env:$var" -ErrorAction SilentlyContinue).Value) { throw "$var is not set" }
}
foreach ($job in $env:ASCENT_JOBS -split ' ') {
  az containerapp job update --name $job --resource-group $env:AZURE_RESOURCE_GROUP --image $env:SERVICE_FUNCTIONS_IMAGE_NAME --output none
  if ($LASTEXITCODE -ne 0) { exit 1 }
}
# The MCP tool server is the same image too (`python -m mcp_tools`).
az containerapp update --name $env:ASCENT_MCP_TOOLS_APP --resource-group $env:AZURE_RESOURCE_GROUP --image $env:SERVICE_FUNCTIONS_IMAGE_NAME --output none
if ($LASTEXITCODE -ne 0) { exit 1 }
$execution = az containerapp job start --name $env:ASCENT_MIGRATE_JOB --resource-group $env:AZURE_RESOURCE_GROUP --query name --output tsv
if ($LASTEXITCODE -ne 0) { exit 1 }
while ($true) {
  $status = az containerapp job execution show --name $env:ASCENT_MIGRATE_JOB --resource-group $env:AZURE_RESOURCE_GROUP --job-execution-name $execution --query properties.status --output tsv
  if ($status -eq 'Succeeded') { exit 0 }
  if ($status -in 'Failed', 'Stopped', 'Degraded') { Write-Error "migrate: $status"; exit 1 }
  Start-Sleep -Seconds 10
}
