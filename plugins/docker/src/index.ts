import { definePlugin, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { DockerConfig, resolveConfig } from './config.ts';
import { dockerClient } from './dockerClient.ts';
import { DockerProvider } from './DockerProvider.ts';

export { cleanupOrphans, type CleanupReport } from './cleanupOrphans.ts';
export { DockerConfig, resolveConfig, type ResolvedConfig } from './config.ts';
export { DockerProvider } from './DockerProvider.ts';

/**
 * The Docker provider: each worker is a container on a Docker Engine (API 1.41+). See README.md for what it maps to
 * what, its config, and its limits.
 */
export default definePlugin({
  id: 'docker',
  version: '0.1.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  description: 'Runs each worker as a container on a Docker Engine.',
  capabilities: {
    'worker.lifecycle': '2.0.0',
    'worker.logs': '1.0.0',
    'worker.logs.follow': '1.0.0',
    'worker.exec': '1.0.0',
    'worker.pause': '1.0.0',
    'worker.restart': '1.0.0',
    'worker.portForward': '1.0.0',
    'worker.capacity': '1.0.0',
    'worker.events': '1.0.0',
    'worker.resources.memory': '1.0.0',
    'worker.resources.cpu': '1.0.0',
    'worker.resources.gpu': '1.0.0',
    'worker.image': '1.0.0',
    'worker.ports': '1.0.0',
    'worker.volumes': '1.0.0',
    'worker.network.isolation': '1.0.0',
    'worker.healthCheck': '1.0.0',
    'worker.secrets.env': '1.0.0',
    'worker.secrets.file': '1.0.0',
    'worker.secrets.refresh': '1.0.0',
  },
  configSchema: DockerConfig,
  setup(ctx) {
    // The restricted tier forbids writes: the events lease, terminate markers and secret files need them.
    if (process.permission !== undefined && !process.permission.has('fs.write', ctx.stateDir)) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'the docker provider writes its state dir and secret files: run it with isolation: trusted', {
        details: { instance: ctx.instance },
      });
    }
    const config = resolveConfig(ctx.config);
    if (config.host !== undefined && config.socketPath !== undefined) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'docker provider: set either host or socketPath, not both', { details: { instance: ctx.instance } });
    }
    return new DockerProvider(ctx, config, dockerClient(config), { watchEvents: true }).handlers();
  },
});
