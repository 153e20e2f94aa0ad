import { readFileSync } from 'node:fs';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { ECSClient } from '@aws-sdk/client-ecs';
import { definePlugin, egressAgent, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { AwsCaller } from './AwsCaller.ts';
import { AwsEcsConfig, resolveConfig } from './config.ts';
import { EcsProvider } from './EcsProvider.ts';

export { AwsEcsConfig, resolveConfig, type ResolvedConfig } from './config.ts';
export { stateOfTask, STOP_REASON_PREFIX } from './taskState.ts';

/**
 * The AWS ECS provider: each worker is one ECS task (Fargate or EC2) of the configured cluster, its output the task's
 * awslogs stream in CloudWatch Logs. See README.md for the mapping of states and errors and the IAM it needs.
 */
export default definePlugin({
  id: 'aws-ecs',
  version: '0.1.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  description: 'Runs each worker as an AWS ECS task; logs come from CloudWatch Logs.',
  capabilities: {
    'worker.lifecycle': '2.0.0',
    'worker.logs': '1.0.0',
    'worker.logs.follow': '1.0.0',
    'worker.capacity': '1.0.0',
    'worker.image': '1.0.0',
    'worker.resources.memory': '1.0.0',
    'worker.resources.cpu': '1.0.0',
  },
  configSchema: AwsEcsConfig,
  setup(ctx) {
    const config = resolveConfig(ctx.config);
    // The SDK's own retries are off so that AwsCaller counts and logs each one; a restricted instance reaches AWS only
    // through the host's egress proxy (HTTPS_PROXY), which egressAgent tunnels through (direct without one).
    const common = {
      ...(config.region === undefined ? {} : { region: config.region }),
      maxAttempts: 1,
      requestHandler: { httpsAgent: egressAgent({ keepAlive: true, ...(config.caFile === undefined ? {} : { ca: [...rootCertificates, readCa(ctx.stateDir, config.caFile)] }) }) },
    };
    const ecs = new ECSClient({ ...common, ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }) });
    const logs = new CloudWatchLogsClient({ ...common, ...(config.logsEndpoint === undefined ? {} : { endpoint: config.logsEndpoint }) });
    const provider = new EcsProvider(ctx, config, ecs, logs, new AwsCaller(config, ctx.logger));
    return {
      ...provider.handlers(),
      close() {
        ecs.destroy();
        logs.destroy();
      },
    };
  },
});

/** The extra CA certificates; `ca` replaces Node's trust store, so the caller adds them to the public roots. */
function readCa(stateDir: string, file: string): string {
  const where = path.resolve(stateDir, file);
  try {
    return readFileSync(where, 'utf8');
  } catch (error) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `caFile '${file}' cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { details: { caFile: file } });
  }
}
