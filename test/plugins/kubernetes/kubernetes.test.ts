import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetworkingV1Api, type V1Pod } from '@kubernetes/client-node';
import type { WorkerEvent, WorkerState } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import plugin from '@worker-manager/plugin-kubernetes';
import { requireKube } from '../../helpers/requireKube.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { POD_WAIT_MS, type TestNode } from '../../k8s/testCluster.ts';
import { IMAGE, startKubeWorld, trapping, type KubeWorld } from './helpers.ts';

const kube = await requireKube();

/** Fast enough to test within minutes, slow enough that a pod the loaded agent is still starting is not failed. */
const QUICK_PENDING_MS = 10_000;
const WAIT_MS = POD_WAIT_MS;
const TEST_MS = budget(300_000);

const isFinal = (s: WorkerState): boolean => s.phase === 'Terminated' || s.phase === 'Failed';

describe('kubernetes provider: Kubernetes-specific behaviour', { skip: kube.skip }, () => {
  let world: KubeWorld;
  let node: TestNode;
  /** Default pending timeout (5 min): for workers that must run. */
  let h: PluginHarness<'provider'>;
  /** A short pending timeout: for workers that must fail while Pending. */
  let quick: PluginHarness<'provider'>;
  let baseConfig: Record<string, unknown>;

  before(async () => {
    world = await startKubeWorld(kube.kubeConfig, 'wm-k8s-spec');
    node = world.node;
    baseConfig = world.config;
    h = await createPluginHarness(plugin, { config: world.config, hostId: 'k8s-spec', instance: 'main' });
    quick = await createPluginHarness(plugin, { config: { ...world.config, pendingTimeoutMs: QUICK_PENDING_MS }, hostId: 'k8s-spec', instance: 'quick' });
  });
  after(async () => {
    await h?.close();
    await quick?.close();
    await world?.close();
  });

  const status = (x: PluginHarness<'provider'>, id: string): Promise<WorkerState> => x.proxy.getWorkerStatus({ workerId: id });
  const until = (x: PluginHarness<'provider'>, id: string, ok: (s: WorkerState) => boolean, what: string): Promise<WorkerState> => {
    let last: WorkerState | undefined;
    return waitFor(
      async () => {
        last = await status(x, id);
        return ok(last) ? last : undefined;
      },
      () => `${id}: ${what} (last: ${JSON.stringify(last)})`,
      WAIT_MS,
      200,
    );
  };
  const podOf = async (x: PluginHarness<'provider'>, id: string): Promise<V1Pod> => {
    const worker = (await x.proxy.listWorkers({})).find((w) => w.workerId === id);
    assert.ok(worker?.providerRef !== undefined, `${id} is listed with its pod`);
    const [namespace, name] = worker.providerRef.split('/');
    return node.core.readNamespacedPod({ name: name!, namespace: namespace! });
  };
  const ownedObjects = async (id: string): Promise<{ pods: string[]; secrets: string[] }> => {
    const labelSelector = `worker-manager/worker-id=${id}`;
    const pods = await node.core.listNamespacedPod({ namespace: node.namespace, labelSelector });
    const secrets = await node.core.listNamespacedSecret({ namespace: node.namespace, labelSelector });
    return { pods: pods.items.map((p) => p.metadata!.name!), secrets: secrets.items.map((s) => s.metadata!.name!) };
  };
  const eventsOf = (x: PluginHarness<'provider'>, id: string): WorkerEvent[] => x.events.filter((e) => e.workerId === id);

  it('an absent image reports ErrImageNeverPull while pending, then fails with it after pendingTimeoutMs', { timeout: TEST_MS }, async () => {
    const id = 'noimage';
    const created = await quick.proxy.createWorker({ workerId: id, spec: { image: 'local/absent:latest', command: ['true'] } });
    assert.equal(created.state.phase, 'Starting', 'createWorker returns on acceptance');
    await until(quick, id, (s) => s.phase === 'Starting' && s.pendingReason === 'ErrImageNeverPull', 'pending with ErrImageNeverPull');
    const failed = await until(quick, id, isFinal, 'failed after the pending timeout');
    assert.deepEqual(failed, { phase: 'Failed', reason: 'ErrImageNeverPull' });
    const pod = await podOf(quick, id);
    const age = Date.now() - new Date(pod.metadata!.creationTimestamp!).getTime();
    assert.ok(age >= QUICK_PENDING_MS, `failed no earlier than the timeout (pod age ${age} ms)`);
    await waitFor(() => eventsOf(quick, id).find((e) => e.type === 'WorkerFailed' && e.reason === 'ErrImageNeverPull'), 'WorkerFailed ErrImageNeverPull', WAIT_MS);
    const changes = eventsOf(quick, id).flatMap((e) => (e.type === 'WorkerStateChanged' ? [e.newState] : []));
    assert.ok(changes.some((s) => s.phase === 'Starting' && s.pendingReason === 'ErrImageNeverPull'), `the pending reason was an event: ${JSON.stringify(changes)}`);
    // The failed pod is kept (its final state stays readable) until terminate removes it.
    const r = await quick.proxy.terminateWorker({ workerId: id });
    assert.deepEqual(r, { workerId: id, state: failed, alreadyGone: true });
    assert.deepEqual(await ownedObjects(id), { pods: [], secrets: [] });
  });

  it('a request larger than every node reports Unschedulable, then fails with it', { timeout: TEST_MS }, async () => {
    const id = 'toobig';
    await quick.proxy.createWorker({ workerId: id, spec: { ...trapping('sleep 600'), resources: { cpuMillicores: 64_000 } } });
    await until(quick, id, (s) => s.phase === 'Starting' && s.pendingReason === 'Unschedulable', 'pending with Unschedulable');
    assert.deepEqual(await until(quick, id, isFinal, 'failed after the pending timeout'), { phase: 'Failed', reason: 'Unschedulable' });
    assert.equal((await podOf(quick, id)).spec?.nodeName, undefined, 'the pod never reached a node');
    await quick.proxy.terminateWorker({ workerId: id });
    assert.deepEqual(await ownedObjects(id), { pods: [], secrets: [] });
  });

  it('a worker over its memory limit ends Failed with OOMKilled', { timeout: TEST_MS }, async () => {
    const id = 'oom';
    await h.proxy.createWorker({
      workerId: id,
      // The pause lets the runtime arm its OOM notifier before the limit is hit (see the docker provider's OOM test).
      spec: { image: IMAGE, command: ['sh', '-c', 'sleep 1; exec busybox awk \'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }\''], resources: { memoryMiB: 16 } },
    });
    const state = await until(h, id, isFinal, 'the OOM kill');
    assert.deepEqual(state, { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 });
    await waitFor(() => eventsOf(h, id).find((e) => e.type === 'WorkerFailed' && e.reason === 'OOMKilled'), 'WorkerFailed OOMKilled', WAIT_MS);
    const pod = await podOf(h, id);
    assert.deepEqual(pod.spec?.containers[0]?.resources?.limits, { memory: '16Mi' }, 'the quota is the limit');
    await h.proxy.terminateWorker({ workerId: id });
  });

  it('a worker past its timeoutMs ends Failed with DeadlineExceeded (activeDeadlineSeconds)', { timeout: TEST_MS }, async () => {
    const id = 'deadline';
    await h.proxy.createWorker({ workerId: id, spec: { ...trapping('echo up; sleep 600'), timeoutMs: 3_000 } });
    const pod = await podOf(h, id);
    assert.equal(pod.spec?.activeDeadlineSeconds, 3);
    await until(h, id, (s) => s.phase === 'Running' || isFinal(s), 'running');
    const state = await until(h, id, isFinal, 'the deadline');
    assert.equal(state.phase, 'Failed');
    assert.equal(state.phase === 'Failed' && state.reason, 'DeadlineExceeded');
    await waitFor(() => eventsOf(h, id).find((e) => e.type === 'WorkerFailed' && e.reason === 'DeadlineExceeded'), 'WorkerFailed DeadlineExceeded', WAIT_MS);
    // The containers are stopped, not only labelled: the pod is being deleted (kept by the finalizer for its status).
    await waitFor(async () => (await podOf(h, id)).metadata?.deletionTimestamp !== undefined, 'the pod to be stopped', WAIT_MS);
    await h.proxy.terminateWorker({ workerId: id });
    assert.deepEqual(await ownedObjects(id), { pods: [], secrets: [] });
  });

  it('a file-mounted secret is refreshed in the running pod without a restart; nothing secret leaves the Secret', { timeout: TEST_MS }, async () => {
    const id = 'rotate';
    const secret = (v: string) => [
      { strategy: 'file' as const, name: 'db-password', version: v, path: 'db/password', value: `s3cr3t-file-${v}` },
      { strategy: 'env' as const, name: 'api-token', version: v, envName: 'API_TOKEN', value: `s3cr3t-env-${v}` },
    ];
    await h.proxy.createWorker({ workerId: id, spec: trapping('sleep 600'), secrets: secret('1') }, { correlationId: 'corr-rotate-1' });
    await until(h, id, (s) => s.phase === 'Running', 'running');
    const before = await podOf(h, id);
    const cat = ['cat', '/run/secrets/db/password'];
    assert.equal((await h.proxy.executeCommand({ workerId: id, command: cat })).stdout, 's3cr3t-file-1');
    assert.equal((await h.proxy.executeCommand({ workerId: id, command: ['sh', '-c', 'printf %s "$API_TOKEN"'] })).stdout, 's3cr3t-env-1');

    // The Secret is owned by the pod (garbage collection), and the pod carries ownership, never values.
    const [secretName] = (await ownedObjects(id)).secrets;
    assert.ok(secretName !== undefined, 'one Secret for the worker');
    const stored = await node.core.readNamespacedSecret({ name: secretName, namespace: node.namespace });
    assert.deepEqual(stored.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid]), [['Pod', before.metadata!.name, before.metadata!.uid]]);
    const annotations = before.metadata?.annotations ?? {};
    assert.equal(annotations['worker-manager/correlation-id'], 'corr-rotate-1');
    assert.equal(before.metadata?.labels?.['worker-manager/worker-id'], id);
    assert.equal(before.metadata?.labels?.['worker-manager/instance'], 'main');
    const podJson = JSON.stringify(before);
    assert.ok(!podJson.includes('s3cr3t'), 'no secret value in the pod (labels, annotations, env, volumes)');
    assert.ok(!JSON.stringify(h.events).includes('s3cr3t') && !JSON.stringify(h.logs).includes('s3cr3t'), 'nor in events or logs');

    const r = await h.proxy.refreshSecrets({ workerId: id, secrets: secret('2') });
    assert.deepEqual(r, { workerId: id, updated: 1 });
    assert.equal((await h.proxy.executeCommand({ workerId: id, command: cat })).stdout, 's3cr3t-file-2', 'the worker reads the new file');
    const after = await podOf(h, id);
    assert.equal(after.metadata?.uid, before.metadata?.uid, 'same pod');
    assert.equal(after.status?.containerStatuses?.[0]?.containerID, before.status?.containerStatuses?.[0]?.containerID, 'same container: no restart');
    assert.equal(after.status?.containerStatuses?.[0]?.restartCount, 0);
    assert.equal((await h.proxy.executeCommand({ workerId: id, command: ['sh', '-c', 'printf %s "$API_TOKEN"'] })).stdout, 's3cr3t-env-1', 'env is left as it was');

    await h.proxy.terminateWorker({ workerId: id, gracePeriodMs: 2_000 });
    assert.deepEqual(await ownedObjects(id), { pods: [], secrets: [] }, 'terminate leaves no pod and no Secret');
  });

  it('Strict and Complete isolation are a NetworkPolicy owned by the pod, selecting it alone, kept across a restart and gone after terminate', { timeout: TEST_MS }, async () => {
    // The test cluster's network enforces no NetworkPolicy (no CNI): this checks the objects, not the packets.
    const networking = kube.kubeConfig.makeApiClient(NetworkingV1Api);
    const policiesOf = async (id: string) =>
      (await networking.listNamespacedNetworkPolicy({ namespace: node.namespace, labelSelector: `worker-manager/worker-id=${id}` })).items;
    await h.proxy.createWorker({
      workerId: 'strict',
      spec: { ...trapping('sleep 600'), network: { type: 'Isolated', isolation: 'Strict', accessPolicies: [{ type: 'AllowIpRange', cidr: '10.20.0.0/16' }] } },
    });
    await h.proxy.createWorker({ workerId: 'complete', spec: { ...trapping('sleep 600'), network: { type: 'Isolated', isolation: 'Complete' } } });
    await h.proxy.createWorker({ workerId: 'open', spec: trapping('sleep 600') });
    for (const id of ['strict', 'complete', 'open']) await until(h, id, (s) => s.phase === 'Running', 'running');

    const [strict] = await policiesOf('strict');
    const strictPod = await podOf(h, 'strict');
    assert.ok(strict !== undefined, 'a Strict worker has a policy');
    assert.deepEqual(strict.spec?.podSelector?.matchLabels?.['worker-manager/worker-id'], 'strict');
    assert.deepEqual(strict.spec?.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(strict.spec?.ingress ?? [], [], 'no ingress at all');
    assert.deepEqual(strict.spec?.egress?.map((r) => [r.ports?.map((p) => `${p.protocol}/${p.port}`) ?? [], r.to?.map((t) => t.ipBlock?.cidr) ?? []]), [
      [['UDP/53', 'TCP/53'], []],
      [[], ['10.20.0.0/16']],
    ]);
    assert.deepEqual(strict.metadata?.ownerReferences?.map((o) => o.uid), [strictPod.metadata?.uid]);
    const [complete] = await policiesOf('complete');
    assert.deepEqual([complete?.spec?.ingress ?? [], complete?.spec?.egress ?? []], [[], []], 'Complete: no traffic either way');
    assert.deepEqual(await policiesOf('open'), [], 'Default isolation makes no policy');

    await h.proxy.restartWorker({ workerId: 'strict' });
    const restartedPod = await podOf(h, 'strict');
    assert.notEqual(restartedPod.metadata?.uid, strictPod.metadata?.uid);
    assert.equal(restartedPod.metadata?.annotations?.['worker-manager/restart-count'], '1');
    assert.deepEqual((await policiesOf('strict')).map((p) => p.metadata?.ownerReferences?.map((o) => o.uid)), [[restartedPod.metadata?.uid]], 'the policy survives the restart, owned by the new pod');

    for (const id of ['strict', 'complete', 'open']) {
      await h.proxy.terminateWorker({ workerId: id });
      assert.deepEqual(await policiesOf(id), [], `${id}: no policy after terminate`);
      assert.deepEqual(await ownedObjects(id), { pods: [], secrets: [] });
    }
  });

  it('portForward opens a local endpoint to a port of the pod (apiserver portforward) and closes it on terminate', { timeout: TEST_MS }, async () => {
    const id = 'forward';
    // The agent dials the pod IP (not the pod's localhost): the server listens on every address, as httpd does.
    await h.proxy.createWorker({ workerId: id, spec: trapping('busybox mkdir -p /tmp/www && echo hello-$HOSTNAME > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www') });
    await until(h, id, (s) => s.phase === 'Running', 'running');
    const { endpoint } = await h.proxy.portForward({ workerId: id, remotePort: 8080 });
    assert.match(endpoint, /^127\.0\.0\.1:\d+$/);
    const body = await waitFor(
      () => fetch(`http://${endpoint}/index.html`).then((r) => (r.ok ? r.text() : undefined), () => undefined),
      'the worker\'s page through the forward',
      WAIT_MS,
      250,
    );
    assert.match(body, /^hello-/);
    assert.deepEqual(await h.proxy.portForward({ workerId: id, remotePort: 8080 }), { endpoint }, 'the same forward again');
    await h.proxy.terminateWorker({ workerId: id });
    await assert.rejects(fetch(`http://${endpoint}/index.html`), 'the endpoint is closed with the worker');
  });

  it('removes Secrets and NetworkPolicies of its instance that no pod owns and whose worker has no pod, and nothing else', { timeout: TEST_MS }, async () => {
    // The worker whose Secret must stay is made first, by a thread of the same instance with the default grace: with a
    // grace of 0 a sweep could fall between its Secret and its pod (real instances wait orphanGraceMs, a minute).
    const maker = await createPluginHarness(plugin, { config: baseConfig, hostId: 'k8s-spec', instance: 'sweeper' });
    await maker.proxy.createWorker({ workerId: 'kept', spec: trapping('sleep 600'), secrets: [{ strategy: 'env', name: 'k', version: '1', envName: 'K', value: 'v' }] });
    await maker.close();
    const sweeper = await createPluginHarness(plugin, { config: { ...baseConfig, orphanGraceMs: 0, cleanupIntervalMs: 500 }, hostId: 'k8s-spec', instance: 'sweeper' });
    try {
      const labels = (instance: string, workerId: string) => ({ 'worker-manager/host': 'k8s-spec', 'worker-manager/instance': instance, 'worker-manager/worker-id': workerId });
      const networking = kube.kubeConfig.makeApiClient(NetworkingV1Api);
      // What a create that died after its Secret and policy but before its pod leaves; and the same for another instance.
      await node.core.createNamespacedSecret({ namespace: node.namespace, body: { metadata: { name: 'ghost-secrets', labels: labels('sweeper', 'ghost') }, stringData: { a: 'b' } } });
      await networking.createNamespacedNetworkPolicy({ namespace: node.namespace, body: { metadata: { name: 'ghost-isolation', labels: labels('sweeper', 'ghost') }, spec: { podSelector: {}, policyTypes: ['Ingress'] } } });
      await node.core.createNamespacedSecret({ namespace: node.namespace, body: { metadata: { name: 'other-secrets', labels: labels('other', 'ghost') }, stringData: { a: 'b' } } });
      const names = async () => (await node.core.listNamespacedSecret({ namespace: node.namespace, labelSelector: 'worker-manager/host=k8s-spec' })).items.map((x) => x.metadata!.name!).sort();
      await waitFor(async () => !(await names()).includes('ghost-secrets'), 'the orphaned Secret to be removed', WAIT_MS, 200);
      await waitFor(
        async () => (await networking.listNamespacedNetworkPolicy({ namespace: node.namespace, labelSelector: 'worker-manager/worker-id=ghost' })).items.length === 0,
        'the orphaned NetworkPolicy to be removed',
        WAIT_MS,
        200,
      );
      const left = await names();
      assert.ok(left.includes('other-secrets'), `another instance's object is not this instance's to remove: ${left.join(', ')}`);
      assert.ok(left.some((n) => n.endsWith('-kept-secrets')), `a Secret owned by a live pod stays: ${left.join(', ')}`);
      assert.ok(sweeper.logs.some((l) => l.message.includes('removed orphaned objects')), 'the removal is reported');
      await sweeper.proxy.terminateWorker({ workerId: 'kept' });
      await node.core.deleteNamespacedSecret({ name: 'other-secrets', namespace: node.namespace });
    } finally {
      await sweeper.close();
    }
  });

  it('a worker whose namespace is deleted is reported Failed(Lost)', { timeout: TEST_MS }, async () => {
    const namespace = `${node.namespace}-lost`;
    await node.core.createNamespace({ body: { metadata: { name: namespace } } });
    // Admission refuses pods until the controller-manager has made the namespace's default ServiceAccount and token.
    await waitFor(
      () => node.core.readNamespacedServiceAccount({ name: 'default', namespace }).then((sa) => (sa.secrets ?? []).length > 0, () => false),
      `the default ServiceAccount of ${namespace}`,
      WAIT_MS,
      200,
    );
    const lost = await createPluginHarness(plugin, { config: { ...baseConfig, namespace }, hostId: 'k8s-spec', instance: 'lost' });
    try {
      await lost.proxy.createWorker({ workerId: 'orphaned', spec: trapping('sleep 600') });
      await until(lost, 'orphaned', (s) => s.phase === 'Running', 'running');
      await node.core.deleteNamespace({ name: namespace });
      const failed = await waitFor(() => eventsOf(lost, 'orphaned').find((e) => e.type === 'WorkerFailed'), 'WorkerFailed after the namespace deletion', WAIT_MS);
      assert.equal(failed.type === 'WorkerFailed' && failed.reason, 'Lost');
      assert.ok(eventsOf(lost, 'orphaned').some((e) => e.type === 'WorkerStateChanged' && e.newState.phase === 'Failed' && e.newState.reason === 'Lost'));
      // Reported Lost while the pod object is still being removed, then not at all.
      await waitFor(
        () =>
          lost.proxy.getWorkerStatus({ workerId: 'orphaned' }).then(
            (state) => assert.deepEqual(state, { phase: 'Failed', reason: 'Lost', exitCode: 143 }) === undefined && false,
            (error: Error & { code?: string }) => error.code === 'WM_ERR_NOT_FOUND',
          ),
        'the lost worker to be gone',
        WAIT_MS,
        200,
      );
      assert.equal((await lost.proxy.terminateWorker({ workerId: 'orphaned' })).alreadyGone, true);
    } finally {
      await lost.close();
    }
  });

  it('pods run with the restricted security context; a numeric spec.user becomes runAsUser and runAsNonRoot', { timeout: TEST_MS }, async () => {
    const id = 'restricted';
    await h.proxy.createWorker({ workerId: id, spec: { ...trapping('sleep 600'), user: '1000:1000', readOnlyRootFilesystem: true } });
    await until(h, id, (s) => s.phase === 'Running', 'running');
    const pod = await podOf(h, id);
    const sc = pod.spec?.containers[0]?.securityContext;
    assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.equal(sc?.runAsUser, 1000);
    assert.equal(sc?.runAsNonRoot, true);
    assert.equal(pod.spec?.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(pod.spec?.automountServiceAccountToken, false, 'no API token in a worker by default');
    assert.equal((await h.proxy.executeCommand({ workerId: id, command: ['busybox', 'id', '-u'] })).stdout.trim(), '1000');
    const write = await h.proxy.executeCommand({ workerId: id, command: ['sh', '-c', 'echo x > /probe'] });
    assert.notEqual(write.exitCode, 0, 'the root filesystem is read-only');
    await assert.rejects(h.proxy.createWorker({ workerId: 'byname', spec: { ...trapping('sleep 1'), user: 'nobody' } }), /not numeric/);
    await h.proxy.terminateWorker({ workerId: id });
  });
});
