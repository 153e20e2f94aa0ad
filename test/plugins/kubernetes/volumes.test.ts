import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import plugin from '@worker-manager/plugin-kubernetes';
import { requireKube } from '../../helpers/requireKube.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { POD_WAIT_MS, type TestNode } from '../../k8s/testCluster.ts';
import { startKubeWorld, trapping, type KubeWorld } from './helpers.ts';

const kube = await requireKube();
const TEST_MS = budget(300_000);

describe('kubernetes provider: volumes', { skip: kube.skip }, () => {
  let world: KubeWorld;
  let node: TestNode;
  let h: PluginHarness<'provider'>;
  // The agent runs pods on this machine's Docker, so a HostPath is a folder here.
  const hostDir = path.join(os.tmpdir(), `wm-k8s-hostpath-${randomBytes(3).toString('hex')}`);

  before(async () => {
    mkdirSync(path.join(hostDir, 'cache'), { recursive: true });
    writeFileSync(path.join(hostDir, 'cache', 'seed.txt'), 'from-the-node');
    world = await startKubeWorld(kube.kubeConfig, 'wm-k8s-vol');
    node = world.node;
    h = await createPluginHarness(plugin, { config: { ...world.config, allowedHostPaths: [hostDir] }, hostId: 'k8s-vol' });
  });
  after(async () => {
    await h?.close();
    await world?.close();
    rmSync(hostDir, { recursive: true, force: true });
  });

  const until = (id: string, ok: (s: WorkerState) => boolean, what: string): Promise<WorkerState> => {
    let last: WorkerState | undefined;
    return waitFor(
      async () => {
        last = await h.proxy.getWorkerStatus({ workerId: id });
        return ok(last) ? last : undefined;
      },
      () => `${id}: ${what} (last: ${JSON.stringify(last)})`,
      POD_WAIT_MS,
      200,
    );
  };
  const run = async (id: string, script: string): Promise<string> => {
    const r = await h.proxy.executeCommand({ workerId: id, command: ['sh', '-c', script] });
    assert.equal(r.exitCode, 0, `${script}: ${r.stderr}`);
    return r.stdout;
  };

  it('mounts EmptyDir, HostPath, a ConfigMap of the namespace and a Secret volume of the worker\'s secrets; the Secret volume refreshes', { timeout: TEST_MS }, async () => {
    await node.core.createNamespacedConfigMap({ namespace: node.namespace, body: { metadata: { name: 'build-env' }, data: { 'settings.conf': 'parallelism=2\n' } } });
    const id = 'volumes';
    await h.proxy.createWorker({
      workerId: id,
      spec: {
        ...trapping('sleep 600'),
        volumes: [
          { mountPath: '/scratch', source: { type: 'EmptyDir', sizeMiB: 32 } },
          { mountPath: '/cache', source: { type: 'HostPath', path: path.join(hostDir, 'cache') } },
          { mountPath: '/etc/build', source: { type: 'ConfigMap', name: 'build-env' } },
          { mountPath: '/etc/tls', source: { type: 'Secret', secretName: 'tls' } },
        ],
      },
      secrets: [{ strategy: 'volume', name: 'tls', version: '1', path: 'cert.pem', value: 'cert-v1' }],
    });
    await until(id, (s) => s.phase === 'Running', 'running');
    assert.equal(await run(id, 'echo hi > /scratch/x && cat /scratch/x'), 'hi\n', 'EmptyDir is writable');
    assert.equal(await run(id, 'cat /cache/seed.txt'), 'from-the-node', 'HostPath shows the node folder');
    assert.equal(await run(id, 'cat /etc/build/settings.conf'), 'parallelism=2\n', 'ConfigMap files');
    assert.equal(await run(id, 'cat /etc/tls/cert.pem'), 'cert-v1', 'the secret mount, in its Secret volume');
    const worker = (await h.proxy.listWorkers({})).find((w) => w.workerId === id);
    const pod = await node.core.readNamespacedPod({ name: worker!.providerRef!.split('/')[1]!, namespace: node.namespace });
    assert.equal(pod.spec?.volumes?.find((v) => v.emptyDir !== undefined)?.emptyDir?.sizeLimit, '32Mi');

    assert.deepEqual(await h.proxy.refreshSecrets({ workerId: id, secrets: [{ strategy: 'volume', name: 'tls', version: '2', path: 'cert.pem', value: 'cert-v2' }] }), { workerId: id, updated: 1 });
    assert.equal(await run(id, 'cat /etc/tls/cert.pem'), 'cert-v2', 'refreshed in place');
    await h.proxy.terminateWorker({ workerId: id });
    const left = await node.core.listNamespacedSecret({ namespace: node.namespace, labelSelector: `worker-manager/worker-id=${id}` });
    assert.equal(left.items.length, 0);
  });

  it('refuses a HostPath outside allowedHostPaths and creates nothing', { timeout: TEST_MS }, async () => {
    await assert.rejects(
      h.proxy.createWorker({ workerId: 'escape', spec: { ...trapping('sleep 600'), volumes: [{ mountPath: '/host', source: { type: 'HostPath', path: '/etc' } }] } }),
      (error: Error & { code?: string }) => error.code === 'WM_ERR_VALIDATION' && /allowedHostPaths/.test(error.message),
    );
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'escape' }), (error: Error & { code?: string }) => error.code === 'WM_ERR_NOT_FOUND');
  });

  it('a PersistentVolume is a claim of the namespace; the pod waits while the claim cannot be mounted', { timeout: TEST_MS }, async () => {
    const id = 'claim';
    await h.proxy.createWorker({ workerId: id, spec: { ...trapping('sleep 600'), volumes: [{ mountPath: '/data', source: { type: 'PersistentVolume', claimName: 'ci-cache' }, readOnly: true }] } });
    const worker = (await h.proxy.listWorkers({})).find((w) => w.workerId === id);
    const pod = await node.core.readNamespacedPod({ name: worker!.providerRef!.split('/')[1]!, namespace: node.namespace });
    assert.deepEqual({ ...pod.spec?.volumes?.[0]?.persistentVolumeClaim }, { claimName: 'ci-cache', readOnly: true });
    // No such claim: the scheduler cannot place the pod (a real cluster says the same until the claim is bound).
    assert.deepEqual(await until(id, (s) => s.phase === 'Starting' && s.pendingReason !== 'Scheduling', 'a pending reason'), { phase: 'Starting', pendingReason: 'Unschedulable' });
    await h.proxy.terminateWorker({ workerId: id });
  });
});
