import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import type { WorkerEvent } from '@worker-manager/plugin-sdk';
import { requireKube } from '../../helpers/requireKube.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { POD_WAIT_MS, type TestNode } from '../../k8s/testCluster.ts';
import { startKubeWorld, tempDir, trapping, type KubeWorld } from './helpers.ts';

const kube = await requireKube();

// Two instances of the plugin in the real host (registry, trusted sandbox, bus), each a kubeconfig context with its
// own namespace: the namespace comes from the context, and each call reaches its instance's cluster and namespace.
// Both contexts name the one test apiserver, the closest this machine comes to two clusters.
describe('kubernetes provider through the host: one plugin, two instances (contexts and namespaces)', { skip: kube.skip }, () => {
  let world: KubeWorld;
  let node: TestNode;
  let t: TestHost;
  let east: string;
  let west: string;

  before(async () => {
    world = await startKubeWorld(kube.kubeConfig, 'wm-k8s-host');
    node = world.node;
    east = node.namespace;
    west = `${node.namespace}-west`;
    await node.core.createNamespace({ body: { metadata: { name: west } } });
    await waitFor(
      () => node.core.readNamespacedServiceAccount({ name: 'default', namespace: west }).then((sa) => (sa.secrets ?? []).length > 0, () => false),
      `the default ServiceAccount of ${west}`,
      POD_WAIT_MS,
      200,
    );
    const admin = kube.kubeConfig;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: admin.getClusters(),
      users: admin.getUsers(),
      contexts: [
        { name: 'east', cluster: admin.getCurrentCluster()!.name, user: admin.getCurrentUser()!.name, namespace: east },
        { name: 'west', cluster: admin.getCurrentCluster()!.name, user: admin.getCurrentUser()!.name, namespace: west },
      ],
      currentContext: 'east',
    });
    const file = path.join(await tempDir('wm-k8s-host-'), 'kubeconfig');
    writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
    const common = `{ kubeconfig: ${file}, nodeSelector: ${JSON.stringify(node.agent.nodeSelector)}, imagePullPolicy: Never, defaultGracePeriodMs: 2000`;
    t = await startTestHost(`
host: { id: k8s-host, stateDir: \${DIR}/state }
plugins:
  - name: kubernetes
    package: ${repoRoot}plugins/kubernetes
    isolation: trusted
instances:
  - name: east
    plugin: kubernetes
    default: true
    config: ${common}, context: east }
  - name: west
    plugin: kubernetes
    config: ${common}, context: west }
`);
  });
  after(async () => {
    await t?.stop();
    try {
      await world?.close(west);
    } finally {
      await node?.core.deleteNamespace({ name: west }).catch(() => {});
    }
  });

  it('routes each call to its instance\'s namespace, and carries its events on the bus with the instance', { timeout: budget(240_000) }, async () => {
    const report = t.report.map((r) => [r.instance, r.state]);
    assert.deepEqual(report.filter(([name]) => name === 'east' || name === 'west').map(([, state]) => state), ['running', 'running'], JSON.stringify(t.report));
    for (const [instance, namespace] of [['east', east], ['west', west]] as const) {
      const provider = t.host.registry.provider(instance);
      const worker = await provider.createWorker({ workerId: `w-${instance}`, spec: trapping(`echo from-${instance}; sleep 600`) });
      assert.equal(worker.providerRef?.split('/')[0], namespace, `${instance}'s pod is in ${namespace}`);
      await waitFor(async () => (await provider.getWorkerStatus({ workerId: `w-${instance}` })).phase === 'Running', `w-${instance} running`, POD_WAIT_MS, 200);
      const other = t.host.registry.provider(instance === 'east' ? 'west' : 'east');
      await assert.rejects(other.getWorkerStatus({ workerId: `w-${instance}` }), (error: Error & { code?: string }) => error.code === 'WM_ERR_NOT_FOUND', 'the other instance does not see it');
    }
    const workerEvents = () => t.events.filter((e) => e.busSubject.startsWith('ci.worker.')).map((e) => e.data as WorkerEvent & { instance: string });
    await waitFor(
      () => ['east', 'west'].every((i) => workerEvents().some((e) => e.workerId === `w-${i}` && e.instance === i && e.type === 'WorkerStateChanged' && e.newState.phase === 'Running')),
      'Running events of both workers, each with its instance',
      POD_WAIT_MS,
      200,
    );
    for (const instance of ['east', 'west']) {
      const r = await t.host.registry.provider(instance).terminateWorker({ workerId: `w-${instance}` });
      assert.equal(r.state.phase, 'Terminated');
    }
  });
});
