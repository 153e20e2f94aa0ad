import { describe } from 'node:test';
import type { WorkerEvent } from '@worker-manager/plugin-sdk';
import { runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import dockerPlugin from '@worker-manager/plugin-docker';
import { requireDocker } from '../helpers/requireDocker.ts';
import { repoRoot, startTestHost } from '../helpers/startTestHost.ts';
import { IMAGE, newHostId, removeOwned, secretsRoot } from '../plugins/docker/helpers.ts';

const skip = await requireDocker();

// The suite the docker plugin passes in-process (test/plugins/docker), here through the real host: config, registry,
// negotiation, the piscina sandbox with two threads (so the events lease and cross-thread idempotency are exercised),
// validation on both sides, and provider events carried onto the bus.
describe('docker provider through the host sandbox', { skip }, () => {
  const hostId = newHostId('hostconf');
  runProviderConformance({
    name: 'docker (sandboxed)',
    capabilities: dockerPlugin.capabilities,
    async setup() {
      const t = await startTestHost(`
host: { id: ${hostId}, stateDir: \${DIR}/state }
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
    limits: { threads: 2 }
instances:
  - name: local
    plugin: docker
    default: true
    config: { secretsDir: ${secretsRoot} }
`);
      return {
        provider: t.host.registry.provider('local'),
        events: () =>
          t.events
            .filter((e) => e.busSubject.startsWith('ci.worker.'))
            .map((e) => {
              const { instance: _instance, ...event } = e.data as WorkerEvent & { instance: string };
              return event as WorkerEvent;
            }),
        async teardown() {
          await t.stop();
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
