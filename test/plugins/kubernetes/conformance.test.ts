import { after, describe } from 'node:test';
import { createPluginHarness, runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import plugin from '@worker-manager/plugin-kubernetes';
import { requireKube } from '../../helpers/requireKube.ts';
import { IMAGE, startKubeWorld, trapping, type KubeWorld } from './helpers.ts';

const kube = await requireKube();

// The whole contract against the real apiserver, scheduler and controller-manager, with the test node agent running
// the pods as Docker containers: create is asynchronous (the pod is accepted before it is scheduled), states and
// events come from the informer, logs/exec go through the apiserver to the agent, secrets through a Kubernetes Secret.
describe('kubernetes provider (in-process harness)', { skip: kube.skip }, () => {
  let world: KubeWorld | undefined;
  after(async () => {
    await world?.close();
  });
  runProviderConformance({
    name: 'kubernetes',
    capabilities: plugin.capabilities,
    // Each step crosses apiserver, scheduler, informer and agent (and for a refreshed secret the agent's Secret sync):
    // three times the budgets of a single-engine provider, on top of the machine's own factor.
    timeFactor: 3 * Number(process.env['WM_TEST_TIME_FACTOR'] ?? '1'),
    async setup() {
      world = await startKubeWorld(kube.kubeConfig, 'wm-k8s-conf');
      const h = await createPluginHarness(plugin, { config: world.config, hostId: 'k8s-conf' });
      return { provider: h.proxy, events: () => h.events, teardown: () => h.close() };
    },
    longRunningSpec: (marker) => trapping(`echo ${marker}; sleep 600`),
    delayedSpec: (marker, delayMs) => trapping(`sleep ${(delayMs / 1000).toFixed(3)}; echo ${marker}; sleep 600`),
    shortSpec: (marker, exitCode) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
    secretProbe: {
      file: (p) => ['cat', `/run/secrets/${p}`],
      env: (name) => ['sh', '-c', `printf %s "$${name}"`],
    },
  });
});
