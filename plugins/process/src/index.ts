import { definePlugin, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { ProcessConfig, resolveConfig } from './config.ts';
import { hasProcfs } from './procfs.ts';
import { ProcessProvider } from './ProcessProvider.ts';

/**
 * The embedded default provider: each worker is a local child process (Linux). See README.md for what it supports,
 * where it keeps state, and what it cannot do.
 */
export default definePlugin({
  id: 'process',
  version: '0.1.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  description: 'Runs each worker as a local child process under the host state directory (Linux).',
  capabilities: {
    'worker.lifecycle': '2.0.0',
    'worker.logs': '1.0.0',
    'worker.logs.follow': '1.0.0',
    'worker.exec': '1.0.0',
    'worker.pause': '1.0.0',
    'worker.restart': '1.0.0',
    'worker.capacity': '1.0.0',
    'worker.events': '1.0.0',
    'worker.resources.memory': '1.0.0',
    'worker.secrets.env': '1.0.0',
    'worker.secrets.file': '1.0.0',
    'worker.secrets.refresh': '1.0.0',
  },
  configSchema: ProcessConfig,
  setup(ctx) {
    // Under the restricted tier (Node's permission model) this thread may neither start processes nor read /proc.
    if (process.permission !== undefined && !process.permission.has('child')) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'the process provider starts processes: run it with isolation: trusted', {
        details: { instance: ctx.instance },
      });
    }
    if (!hasProcfs()) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'the process provider needs Linux /proc to track its workers', {
        details: { instance: ctx.instance, platform: process.platform },
      });
    }
    return new ProcessProvider(ctx, resolveConfig(ctx.config), true).handlers();
  },
});
