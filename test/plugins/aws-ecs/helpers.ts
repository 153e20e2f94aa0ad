import { ECSClient } from '@aws-sdk/client-ecs';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import plugin from '@worker-manager/plugin-aws-ecs';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { startEcsDouble, type EcsDouble, type EcsDoubleOptions } from '../../doubles/awsEcs.ts';
import { dockerClient, removeDoubleContainers } from '../../doubles/awsEcsContainers.ts';

/** The image every test task runs (imported locally; no registry is reachable). */
export const IMAGE = 'local/busybox:latest';

/** The key pair the tests' plugin instances sign with (granted to the plugin as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
export const TEST_KEYS = { accessKeyId: 'AKIAWMECSTEST0000001', secretAccessKey: 'wm-ecs-test-secret/000000000000000000000' };

/**
 * The environment a host would grant the plugin: static keys for the SDK's provider chain and nothing that sends it
 * to a profile or the instance metadata service. Each test file runs in its own process.
 */
export function grantTestEnv(): void {
  for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_REGION', 'AWS_DEFAULT_REGION']) {
    delete process.env[k];
  }
  process.env['AWS_ACCESS_KEY_ID'] = TEST_KEYS.accessKeyId;
  process.env['AWS_SECRET_ACCESS_KEY'] = TEST_KEYS.secretAccessKey;
  process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
  process.env['AWS_CONFIG_FILE'] = '/nonexistent/wm-test-aws-config';
  process.env['AWS_SHARED_CREDENTIALS_FILE'] = '/nonexistent/wm-test-aws-credentials';
}

export const CLUSTER = 'wm-test';

/** A double that knows the test keys and the test cluster. */
export function startDouble(options: EcsDoubleOptions = {}): Promise<EcsDouble> {
  return startEcsDouble({ principals: [TEST_KEYS], clusters: [CLUSTER, 'default'], ...options });
}

/** Retries fast enough for tests; the shipped defaults start at 200 ms. */
export const FAST_RETRY = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 40 };

/** Plugin config pointing both clients at the double: a Fargate cluster with one subnet, as an operator would set it. */
export function configFor(d: EcsDouble, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    region: d.region,
    endpoint: d.url,
    logsEndpoint: d.url,
    cluster: CLUSTER,
    launchType: 'FARGATE',
    subnets: ['subnet-0a1b2c3d'],
    securityGroups: ['sg-0a1b2c3d'],
    executionRoleArn: `arn:aws:iam::${d.accountId}:role/ecsTaskExecutionRole`,
    logGroup: '/wm/test-workers',
    logStreamPrefix: 'wm',
    // SIGTERM ends the init-wrapped `sleep` at once; the timeout bounds a worker that ignores it.
    stopTimeoutSeconds: 5,
    pollIntervalMs: 200,
    retry: FAST_RETRY,
    ...extra,
  };
}

/** The plugin on the double; threads of one instance share `stateDir` (without it the harness makes its own). */
export async function harness(d: EcsDouble, extra: Record<string, unknown> = {}, hostId = 'ecs-test-host', stateDir?: string): Promise<PluginHarness<'provider'>> {
  return createPluginHarness(plugin, { config: configFor(d, extra), hostId, ...(stateDir === undefined ? {} : { stateDir }) });
}

export function ecsClient(d: EcsDouble, credentials = TEST_KEYS): ECSClient {
  return new ECSClient({ region: d.region, endpoint: d.url, credentials, maxAttempts: 1 });
}

export function logsClient(d: EcsDouble): CloudWatchLogsClient {
  return new CloudWatchLogsClient({ region: d.region, endpoint: d.url, credentials: TEST_KEYS, maxAttempts: 1 });
}

/** Removes every container any ECS double of this test run left (a crashed test, a killed process). */
export async function removeAllDoubleContainers(): Promise<void> {
  await removeDoubleContainers(dockerClient());
}
