import { describe } from 'node:test';
import plugin from '@worker-manager/plugin-docker';
import { createPluginHarness, runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { IMAGE, newHostId, removeOwned, secretsRoot } from './helpers.ts';

const skip = await requireDocker();

describe('docker provider (in-process harness)', { skip }, () => {
  const hostId = newHostId('conf');
  runProviderConformance({
    name: 'docker',
    capabilities: plugin.capabilities,
    async setup() {
      const h = await createPluginHarness(plugin, { config: { secretsDir: secretsRoot }, hostId });
      return {
        provider: h.proxy,
        events: () => h.events,
        async teardown() {
          await h.close();
          await removeOwned(hostId);
        },
      };
    },
    longRunningSpec: (marker) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),
    delayedSpec: (marker, delayMs) => ({ image: IMAGE, command: ['sh', '-c', `sleep ${(delayMs / 1000).toFixed(3)}; echo ${marker}; exec sleep 600`] }),
    shortSpec: (marker, exitCode) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
    secretProbe: {
      file: (p) => ['cat', `/run/secrets/${p}`],
      env: (name) => ['sh', '-c', `printf %s "$${name}"`],
    },
  });
});
