import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import type { Proxied, WorkerEvent, WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { requireKube } from '../../helpers/requireKube.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { NodeAgent } from '../../k8s/nodeAgent.ts';
import { startPrivateCluster, type PrivateCluster } from '../../k8s/privateCluster.ts';
import { busybox, containerStatus, createPod, dockerExec, dockerId, isRunningAndReady, podOn, POD_WAIT_MS, startTestNode, waitForPod, type TestNode } from '../../k8s/testCluster.ts';
import { IMAGE, startKubeWorld, type KubeWorld } from './helpers.ts';

// The shared cluster must be up (it is what CI starts, and the cross-cluster test runs a pod there); the restarts happen
// on a cluster of this file's own, so the files that share the other never lose their apiserver.
const kube = await requireKube();
const dockerSkip = await requireDocker();

/** The apiserver down, a loaded machine, the informer's backoff (up to 30 s), the agent's status retry: all of it. */
const RECOVERY_MS = 240_000;

describe('kubernetes provider: an apiserver restart (a cluster of this file\'s own)', { skip: kube.skip || dockerSkip }, () => {
  let cluster: PrivateCluster | undefined;
  let world: KubeWorld | undefined;
  let t: TestHost;
  let provider: Proxied<WorkerProviderContract>;

  before(async () => {
    cluster = await startPrivateCluster('wm-k8s-restart');
    world = await startKubeWorld(cluster.kubeConfig, 'wm-k8s-restart', { kubeDir: cluster.dir });
    t = await startTestHost(`
host: { id: k8s-restart, stateDir: \${DIR}/state }
plugins:
  - name: kubernetes
    package: ${repoRoot}plugins/kubernetes
    isolation: trusted
instances:
  - name: restart
    plugin: kubernetes
    default: true
    config: ${JSON.stringify(world.config)}
`);
    provider = t.host.registry.provider('restart') as Proxied<WorkerProviderContract>;
  }, { timeout: budget(900_000) });

  after(async () => {
    await t?.stop();
    try {
      // A test that failed with the apiserver stopped must not leave the agent unable to clean up.
      await cluster?.startApiserver();
      await world?.close();
    } finally {
      await cluster?.close();
    }
  }, { timeout: budget(600_000) });

  const eventsOf = (workerId: string): WorkerEvent[] =>
    t.events.filter((e) => e.busSubject.startsWith('ci.worker.')).map((e) => e.data as WorkerEvent).filter((e) => e.workerId === workerId);

  it('a worker that exits while the apiserver is down is reported Failed with its exit code once the apiserver is back', { timeout: budget(900_000) }, async () => {
    const workerId = 'survivor';
    // Exits 3 once told to (a file appears), so the end happens exactly while the apiserver is down.
    await provider.createWorker({ workerId, spec: { image: IMAGE, command: ['sh', '-c', 'trap "exit 143" TERM; until [ -e /tmp/exit-now ]; do sleep 0.2; done; exit 3'] } });
    await waitFor(
      () => eventsOf(workerId).some((e) => e.type === 'WorkerStateChanged' && e.newState.phase === 'Running'),
      () => `the Running event of ${workerId} (events: ${JSON.stringify(eventsOf(workerId))})`,
      POD_WAIT_MS,
      100,
    );
    const core = cluster!.kubeConfig.makeApiClient(CoreV1Api);
    const [namespace, name] = (await provider.listWorkers({})).find((w) => w.workerId === workerId)!.providerRef!.split('/');
    const pod = await core.readNamespacedPod({ name: name!, namespace: namespace! });
    const containerId = dockerId(containerStatus(pod, 'worker')?.containerID);
    const container = world!.node.docker.getContainer(containerId);
    const warnings = (): number => t.logs.filter((l) => l.includes('pod watch failed, restarting')).length;
    const warningsBefore = warnings();

    await cluster!.stopApiserver();
    await assert.rejects(core.readNamespacedPod({ name: name!, namespace: namespace! }), 'the apiserver is down');
    // The informer's watch broke: it says so, and keeps trying.
    await waitFor(() => warnings() > warningsBefore, 'the provider to report its broken pod watch', RECOVERY_MS, 200);
    await dockerExec(world!.node.docker, containerId, ['touch', '/tmp/exit-now']);
    await waitFor(
      async () => {
        const state = (await container.inspect()).State;
        return !state.Running && state.ExitCode === 3;
      },
      'the worker\'s container to exit with 3',
      POD_WAIT_MS,
      200,
    );
    // Nothing can have told the provider yet: only the apiserver carries the agent's status.
    assert.ok(!eventsOf(workerId).some((e) => e.type === 'WorkerFailed' || e.type === 'WorkerTerminated'), JSON.stringify(eventsOf(workerId)));

    await cluster!.startApiserver();
    // Reported by the informer alone: no call of the test asks the apiserver for the worker before the events are in.
    const failed = await waitFor(
      () => eventsOf(workerId).find((e) => e.type === 'WorkerFailed'),
      () => `the WorkerFailed event of ${workerId} after the restart (events: ${JSON.stringify(eventsOf(workerId))}; agent: ${world!.node.agent.events.slice(-5).join(' | ')})`,
      RECOVERY_MS,
      200,
    );
    assert.equal(failed.type === 'WorkerFailed' && failed.reason, 'ExitCode3');
    const change = eventsOf(workerId).find((e) => e.type === 'WorkerStateChanged' && e.newState.phase === 'Failed');
    assert.ok(change?.type === 'WorkerStateChanged', 'a state change to Failed');
    assert.deepEqual([change.oldState.phase, change.newState], ['Running', { phase: 'Failed', reason: 'ExitCode3', exitCode: 3 }]);
    assert.deepEqual(await provider.getWorkerStatus({ workerId }), { phase: 'Failed', reason: 'ExitCode3', exitCode: 3 });
    await provider.terminateWorker({ workerId });
  });

  it('node agents of two clusters on one Docker engine leave each other\'s containers alone', { timeout: budget(600_000) }, async () => {
    // Regression: an agent's start removed every agent container whose Node its own apiserver did not know, which is
    // every container of the other cluster's agents, running ones included.
    let shared: TestNode | undefined;
    try {
      shared = await startTestNode(kube.kubeConfig, 'wm-k8s-twin');
      await createPod(shared, podOn(shared, 'twin', [busybox('main', 'sleep 3600')]));
      const sharedPod = await waitForPod(shared, 'twin', isRunningAndReady, 'Running on the shared cluster');
      const workerId = 'twin';
      await provider.createWorker({ workerId, spec: { image: IMAGE, command: ['sh', '-c', 'trap "exit 143" TERM; sleep 3600 & wait'] } });
      await waitFor(async () => (await provider.getWorkerStatus({ workerId })).phase === 'Running', `${workerId} Running on this file's cluster`, POD_WAIT_MS, 200);
      const [namespace, name] = (await provider.listWorkers({})).find((w) => w.workerId === workerId)!.providerRef!.split('/');
      const privatePod = await cluster!.kubeConfig.makeApiClient(CoreV1Api).readNamespacedPod({ name: name!, namespace: namespace! });
      const containers = [dockerId(containerStatus(sharedPod, 'main')?.containerID), dockerId(containerStatus(privatePod, 'worker')?.containerID)];

      // Each start looks for orphans: once on this file's cluster, once on the shared one.
      for (const [kubeConfig, kubeDir] of [[cluster!.kubeConfig, cluster!.dir], [kube.kubeConfig, undefined]] as const) {
        const agent = new NodeAgent({ kubeConfig, kubeDir });
        await agent.start();
        await agent.stop();
      }
      for (const id of containers) assert.equal((await shared.docker.getContainer(id).inspect()).State.Running, true, `container ${id} still runs`);
      await provider.terminateWorker({ workerId });
    } finally {
      await shared?.close();
    }
  });
});
