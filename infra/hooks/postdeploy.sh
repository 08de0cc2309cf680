#!/bin/sh
# azd postdeploy: point every ACA job at the image azd just built and deployed for `functions`
# (the one build), then run the migrate job and wait for it. Any failure fails `azd deploy`.
# Needs the Azure CLI signed in (`az login`, or azure/login in CI). Safe to re-run: migrate is
# idempotent and safe when two revisions run it at once.
set -eu
: "${SERVICE_FUNCTIONS_IMAGE_NAME:?azd sets it after deploying the functions service}"
: "${AZURE_RESOURCE_GROUP:?}"
: "${ASCENT_JOBS:?run azd provision first}"
: "${ASCENT_MIGRATE_JOB:?run azd provision first}"
: "${ASCENT_MCP_TOOLS_APP:?run azd provision first}"

for job in $ASCENT_JOBS; do
  az containerapp job update --name "$job" --resource-group "$AZURE_RESOURCE_GROUP" \
    --image "$SERVICE_FUNCTIONS_IMAGE_NAME" --output none
done
# The MCP tool server is the same image too (`python -m mcp_tools`).
az containerapp update --name "$ASCENT_MCP_TOOLS_APP" --resource-group "$AZURE_RESOURCE_GROUP" \
  --image "$SERVICE_FUNCTIONS_IMAGE_NAME" --output none

execution=$(az containerapp job start --name "$ASCENT_MIGRATE_JOB" \
  --resource-group "$AZURE_RESOURCE_GROUP" --query name --output tsv)
echo "migrate: execution $execution started"
# An execution ends Succeeded, Failed, Stopped or Degraded; replicaTimeout bounds the wait.
while :; do
  status=$(az containerapp job execution show --name "$ASCENT_MIGRATE_JOB" \
    --resource-group "$AZURE_RESOURCE_GROUP" --job-execution-name "$execution" \
    --query properties.status --output tsv)
  case "$status" in
    Succeeded) echo "migrate: succeeded"; exit 0 ;;
    Failed|Stopped|Degraded) echo "migrate: $status" >&2; exit 1 ;;
  esac
  sleep 10
done
