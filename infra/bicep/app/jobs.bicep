// One Container Apps job per entry of jobs.json, which mirrors aca_jobs.JOBS (tests/infra checks
// they agree): a cron schedule becomes a Schedule trigger, no schedule a Manual trigger. Every job
// runs the app's image with the command `python -m aca_jobs <name>`. Jobs get no Dapr sidecar
// (unsupported for jobs), so they reach the stores directly with the same settings as the app.
param location string
param tags object
param environmentId string
param registryServer string
param identityId string
param resourceToken string
param abbreviation string

@description('The app\'s image (azd builds it once, for the functions service); every job runs it.')
param image string

@description('The settings the code reads, the same list the function app gets.')
param env array
param secrets array

param cpu string = '0.5'
param memory string = '1Gi'

var jobDefs = loadJsonContent('jobs.json')

resource jobs 'Microsoft.App/jobs@2025-07-01' = [
  for job in jobDefs: {
    // ACA job names allow lowercase letters, digits and '-': registry names use '_'.
    name: '${take('${abbreviation}${replace(job.name, '_', '-')}', 18)}-${take(resourceToken, 13)}'
    location: location
    // Not an azd service (azd builds the one image for `functions`): the postdeploy hook finds
    // the jobs through the ASCENT_JOBS output.
    tags: union(tags, { 'ascent-job': job.name })
    identity: {
      type: 'UserAssigned'
      userAssignedIdentities: { '${identityId}': {} }
    }
    properties: {
      environmentId: environmentId
      workloadProfileName: 'Consumption'
      configuration: {
        triggerType: job.schedule == null ? 'Manual' : 'Schedule'
        replicaTimeout: job.replicaTimeout
        replicaRetryLimit: 1
        scheduleTriggerConfig: job.schedule == null ? null : {
          cronExpression: job.schedule
          parallelism: 1
          replicaCompletionCount: 1
        }
        manualTriggerConfig: job.schedule == null ? {
          parallelism: 1
          replicaCompletionCount: 1
        } : null
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
            name: replace(job.name, '_', '-')
            image: image
            command: job.command
            env: env
            resources: {
              cpu: json(cpu)
              memory: memory
            }
          }
        ]
      }
    }
  }
]

output names array = [for (job, i) in jobDefs: jobs[i].name]
