import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import plugin from '@worker-manager/plugin-azure-aci';
import { isWorkerManagerError, type LogChunk, type WorkerState } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import type { AzureAciDouble } from '../../doubles/azureAci.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { IMAGE, longSpec, newClientSecret, newHostId, pluginConfig, RESOURCE_GROUP, sdkClient, startDouble, writePluginFiles, type PluginFiles } from './helpers.ts';

const skip = await requireDocker();

type Harness = PluginHarness<'provider'>;

async function readAll(h: Harness, workerId: string): Promise<string> {
  let text = '';
  for await (const chunk of (await h.proxy.getLogs({ workerId })) as AsyncIterable<LogChunk>) text += chunk.data;
  return text;
}

const untilState = (h: Harness, workerId: string, done: (s: WorkerState) => boolean, what: string): Promise<WorkerState> =>
  waitFor(async () => {
    const s = await h.proxy.getWorkerStatus({ workerId });
    return done(s) ? s : undefined;
  }, () => `${workerId} to be ${what}`);

describe('azure-aci provider: operations and faults through the ARM double', { skip, timeout: 600_000 }, () => {
  const secret = newClientSecret();
  let double: AzureAciDouble;
  let files: PluginFiles;
  let client: ContainerInstanceManagementClient;
  const harnesses: Harness[] = [];
  const hostId = newHostId('ops');
  const open = async (extra: Record<string, unknown> = {}, instance = 'aci-a'): Promise<Harness> => {
    const h = await createPluginHarness(plugin, { config: pluginConfig(double, files, extra), hostId, instance });
    harnesses.push(h);
    return h;
  };
  /** The ARM name of a worker's group, from its providerRef (the resource id). */
  const groupOf = (providerRef: string | undefined): string => providerRef!.split('/').at(-1)!;

  before(async () => {
    double = await startDouble(secret, { provisioningDelayMs: 300 });
    files = writePluginFiles(double, secret);
    client = sdkClient(double, secret);
  });
  after(async () => {
    for (const h of harnesses) {
      for (const w of await h.proxy.listWorkers({}).catch(() => [])) await h.proxy.terminateWorker({ workerId: w.workerId }).catch(() => {});
      await h.close();
    }
    await double?.close();
    files?.dispose();
  });

  it('creates a worker that is accepted Starting, runs, logs and is terminated; the group carries owner and label tags', async () => {
    const h = await open();
    const worker = await h.proxy.createWorker({ workerId: 'ops-run', spec: { ...longSpec('hello-ops'), labels: { 'team/name': 'ci' } } });
    assert.equal(worker.state.phase, 'Starting', 'ARM accepted the group; it is still provisioning');
    assert.match(worker.providerRef ?? '', /\/providers\/Microsoft\.ContainerInstance\/containerGroups\/wm-[0-9a-f]{24}$/);
    assert.equal(worker.labels['team/name'], 'ci');
    assert.equal(worker.labels['worker-manager/instance'], 'aci-a');
    await untilState(h, 'ops-run', (s) => s.phase === 'Running', 'Running');
    await waitFor(async () => (await readAll(h, 'ops-run')).includes('hello-ops'), 'the marker in the logs');
    const group = await client.containerGroups.get(RESOURCE_GROUP, groupOf(worker.providerRef));
    assert.equal(group.tags?.['wm-worker-id'], 'ops-run');
    assert.equal(group.tags?.['wm-host'], hostId);
    assert.equal(group.restartPolicy, 'Never');
    const t = await h.proxy.terminateWorker({ workerId: 'ops-run' });
    assert.deepEqual(t, { workerId: 'ops-run', state: { phase: 'Terminated' }, alreadyGone: false });
    await assert.rejects(client.containerGroups.get(RESOURCE_GROUP, groupOf(worker.providerRef)), (e: { statusCode?: number }) => e.statusCode === 404);
  });

  it('reports a non-zero exit as Failed ExitCode<n> with the exit code', async () => {
    const h = await open();
    await h.proxy.createWorker({ workerId: 'ops-exit', spec: { image: IMAGE, command: ['sh', '-c', 'exit 7'] } });
    assert.deepEqual(await untilState(h, 'ops-exit', (s) => s.phase === 'Failed' || s.phase === 'Terminated', 'ended'), { phase: 'Failed', reason: 'ExitCode7', exitCode: 7 });
    assert.deepEqual(await h.proxy.terminateWorker({ workerId: 'ops-exit' }), { workerId: 'ops-exit', state: { phase: 'Failed', reason: 'ExitCode7', exitCode: 7 }, alreadyGone: true });
  });

  it('a new plugin thread of the same instance adopts the worker by its tags; another instance does not see it', async () => {
    const first = await open();
    await first.proxy.createWorker({ workerId: 'ops-adopt', spec: longSpec('adopt') });
    await first.close();
    const second = await open();
    const listed = await second.proxy.listWorkers({});
    assert.deepEqual(listed.filter((w) => w.workerId === 'ops-adopt').length, 1, 'the restarted thread lists it');
    await untilState(second, 'ops-adopt', (s) => s.phase === 'Running', 'Running');
    const other = await open({}, 'aci-b');
    assert.equal((await other.proxy.listWorkers({})).some((w) => w.workerId === 'ops-adopt'), false, 'another instance does not own it');
    await assert.rejects(other.proxy.getWorkerStatus({ workerId: 'ops-adopt' }), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_NOT_FOUND');
    assert.equal((await second.proxy.terminateWorker({ workerId: 'ops-adopt' })).alreadyGone, false);
  });

  it('restartWorker runs the container again, and with env secrets starts it on the new values', async () => {
    const h = await open();
    const spec = { image: IMAGE, command: ['sh', '-c', 'echo "run token=$TOKEN"; exec sleep 600'] };
    const v1 = `v1-${newClientSecret()}`;
    const v2 = `v2-${newClientSecret()}`;
    await h.proxy.createWorker({ workerId: 'ops-restart', spec, secrets: [{ strategy: 'env', name: 'tok', version: '1', envName: 'TOKEN', value: v1 }] });
    await untilState(h, 'ops-restart', (s) => s.phase === 'Running', 'Running');
    await waitFor(async () => (await readAll(h, 'ops-restart')).includes(`token=${v1}`), 'the first run');
    const restarted = await h.proxy.restartWorker({ workerId: 'ops-restart' });
    assert.equal(restarted.state.phase, 'Running');
    await waitFor(async () => (await readAll(h, 'ops-restart')).split(`token=${v1}`).length === 3, 'a second run with the same secret');
    const rotated = await h.proxy.restartWorker({ workerId: 'ops-restart', secrets: [{ strategy: 'env', name: 'tok', version: '2', envName: 'TOKEN', value: v2 }] });
    assert.equal(rotated.state.phase, 'Running');
    await waitFor(async () => (await readAll(h, 'ops-restart')).includes(`token=${v2}`), 'a run with the new secret');
    const logged = JSON.stringify(h.logs);
    for (const value of [v1, v2, secret]) assert.ok(!logged.includes(value), 'no secret value in the plugin logs');
  });

  it('retries throttled requests (429 + Retry-After) and succeeds', async () => {
    const h = await open();
    await h.proxy.createWorker({ workerId: 'ops-throttle', spec: longSpec('throttle') });
    const start = double.calls.length;
    double.throttle(2, 1);
    const state = await h.proxy.getWorkerStatus({ workerId: 'ops-throttle' });
    assert.ok(['Starting', 'Running'].includes(state.phase));
    assert.deepEqual(double.calls.slice(start, start + 2).map((c) => c.status), [429, 429]);
  });

  it('gives up on throttling after its retries with a transient WM_ERR_RESOURCE_EXHAUSTED that holds no secret', async () => {
    const h = await open({ retry: { maxRetries: 1, retryDelayMs: 10, maxRetryDelayMs: 1_000 } });
    double.throttle(10, 1);
    try {
      await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'ops-throttle' }), (e: unknown) => {
        assert.ok(isWorkerManagerError(e));
        assert.equal(e.code, 'WM_ERR_RESOURCE_EXHAUSTED');
        assert.equal(e.transient, true);
        assert.equal((e.details as Record<string, unknown>)['armCode'], 'SubscriptionRequestsThrottled');
        assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(secret));
        return true;
      });
    } finally {
      double.throttle(0);
    }
  });

  it('a create whose ARM operation fails mid-way is accepted, then reported Failed (ProvisioningFailed, ImagePullFailed)', async () => {
    const h = await open();
    double.failNextProvisioning({ code: 'ServiceUnavailable', message: 'The requested resource is not available in the location at this moment.' });
    const accepted = await h.proxy.createWorker({ workerId: 'ops-provfail', spec: longSpec('never') });
    assert.ok(['Starting', 'Failed'].includes(accepted.state.phase), `accepted, not an error: ${JSON.stringify(accepted.state)}`);
    assert.deepEqual(await untilState(h, 'ops-provfail', (s) => s.phase === 'Failed', 'Failed'), { phase: 'Failed', reason: 'ProvisioningFailed' });
    await h.proxy.createWorker({ workerId: 'ops-pullfail', spec: { image: 'local/absent:1', command: ['true'] } });
    assert.deepEqual(await untilState(h, 'ops-pullfail', (s) => s.phase === 'Failed', 'Failed'), { phase: 'Failed', reason: 'ImagePullFailed' });
  });

  it('a container group deleted outside the host is gone (NOT_FOUND, not listed); one stopped outside is Failed(Stopped)', async () => {
    const h = await open();
    const gone = await h.proxy.createWorker({ workerId: 'ops-deleted', spec: longSpec('deleted') });
    const stopped = await h.proxy.createWorker({ workerId: 'ops-stopped', spec: longSpec('stopped') });
    await untilState(h, 'ops-deleted', (s) => s.phase === 'Running', 'Running');
    await untilState(h, 'ops-stopped', (s) => s.phase === 'Running', 'Running');
    await client.containerGroups.beginDeleteAndWait(RESOURCE_GROUP, groupOf(gone.providerRef));
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'ops-deleted' }), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_NOT_FOUND');
    assert.equal((await h.proxy.listWorkers({})).some((w) => w.workerId === 'ops-deleted'), false);
    assert.equal((await h.proxy.terminateWorker({ workerId: 'ops-deleted' })).alreadyGone, true);
    await client.containerGroups.stop(RESOURCE_GROUP, groupOf(stopped.providerRef));
    const state = await untilState(h, 'ops-stopped', (s) => s.phase === 'Failed', 'Failed');
    assert.equal(state.phase === 'Failed' ? state.reason : undefined, 'Stopped');
  });

  it('a wrong client secret is WM_ERR_AUTHENTICATION, and the secret is in neither the error nor the logs', async () => {
    const wrong = `wrong-${newClientSecret()}`;
    const badFiles = writePluginFiles(double, wrong);
    try {
      const h = await createPluginHarness(plugin, { config: pluginConfig(double, badFiles, { retry: { maxRetries: 0 } }), hostId, instance: 'aci-bad' });
      harnesses.push(h);
      await assert.rejects(h.proxy.createWorker({ workerId: 'ops-auth', spec: longSpec('auth') }), (e: unknown) => {
        assert.ok(isWorkerManagerError(e));
        assert.equal(e.code, 'WM_ERR_AUTHENTICATION');
        assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(wrong));
        return true;
      });
      assert.ok(!JSON.stringify(h.logs).includes(wrong));
    } finally {
      badFiles.dispose();
    }
  });
});
