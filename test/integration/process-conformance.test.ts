import { describe } from 'node:test';
import type { WorkerEvent } from '@worker-manager/plugin-sdk';
import { runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import processPlugin from '@worker-manager/plugin-process';
import { repoRoot, startTestHost } from '../helpers/startTestHost.ts';

// The same suite the process plugin passes in-process (test/plugins/process), here through everything the host puts
// between a caller and a plugin: config, registry, negotiation, the piscina sandbox, validation on both sides, the
// thread protocol, and provider events carried over each thread's own channel onto the bus.
describe('process provider through the host sandbox', () => {
  runProviderConformance({
    name: 'process (sandboxed)',
    capabilities: processPlugin.capabilities,
    async setup() {
      const t = await startTestHost(`
host: { id: conformance, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
    limits: { threads: 2 }
instances:
  - { name: local, plugin: process, default: true }
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
        teardown: () => t.stop(),
      };
    },
    longRunningSpec: (marker) => ({ command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),
    delayedSpec: (marker, delayMs) => ({ command: ['sh', '-c', `sleep ${(delayMs / 1000).toFixed(3)}; echo ${marker}; exec sleep 600`] }),
    shortSpec: (marker, exitCode) => ({ command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
    secretProbe: {
      file: (p) => ['sh', '-c', `cat "$WM_SECRETS_DIR/${p}"`],
      env: (name) => ['sh', '-c', `printf %s "$${name}"`],
    },
  });
});
