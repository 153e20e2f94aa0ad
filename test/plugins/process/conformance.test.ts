import plugin from '@worker-manager/plugin-process';
import { createPluginHarness, runProviderConformance } from '@worker-manager/plugin-sdk/testing';

runProviderConformance({
  name: 'process (in-process harness)',
  capabilities: plugin.capabilities,
  async setup() {
    const harness = await createPluginHarness(plugin, { config: { defaultGracePeriodMs: 2_000 } });
    return { provider: harness.proxy, events: () => harness.events, teardown: () => harness.close() };
  },
  longRunningSpec: (marker) => ({ command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),
  delayedSpec: (marker, delayMs) => ({ command: ['sh', '-c', `sleep ${delayMs / 1000}; echo ${marker}; exec sleep 600`] }),
  shortSpec: (marker, exitCode) => ({ command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
  secretProbe: {
    file: (p) => ['sh', '-c', `cat "$WM_SECRETS_DIR/${p}"`],
    env: (name) => ['sh', '-c', `printf %s "$${name}"`],
  },
});
