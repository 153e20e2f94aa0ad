import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StopTaskCommand } from '@aws-sdk/client-ecs';
import { isWorkerManagerError, type WorkerState } from '@worker-manager/plugin-sdk';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import type { EcsDouble } from '../../doubles/awsEcs.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { CLUSTER, ecsClient, grantTestEnv, harness, IMAGE, startDouble, TEST_KEYS } from './helpers.ts';

const skip = await requireDocker();
grantTestEnv();

type Provider = PluginHarness<'provider'>['proxy'];
const LONG = { image: IMAGE, command: ['sh', '-c', 'echo up; exec sleep 600'] };

const isFinal = (s: WorkerState): boolean => s.phase === 'Terminated' || s.phase === 'Failed';
const until = (p: Provider, workerId: string, done: (s: WorkerState) => boolean, what: string): Promise<WorkerState> =>
  waitFor(async () => {
    const s = await p.getWorkerStatus({ workerId });
    return done(s) ? s : undefined;
  }, `${workerId}: ${what}`);

/** The error a call rejects with; fails when it resolves. */
async function rejection(fn: () => Promise<unknown>): Promise<{ code: string; message: string; transient: boolean; details: Record<string, unknown> }> {
  try {
    await fn();
  } catch (error) {
    assert.ok(isWorkerManagerError(error), `a WorkerManagerError, not ${String(error)}`);
    return { code: error.code, message: error.message, transient: error.transient, details: error.details ?? {} };
  }
  assert.fail('expected a rejection');
}

describe('aws-ecs provider faults through the ECS double', { skip }, () => {
  let d: EcsDouble;
  let h: PluginHarness<'provider'>;
  let n = 0;
  const id = (tag: string): string => `flt-${tag}-${(n++).toString(36)}`;

  before(async () => {
    d = await startDouble();
    h = await harness(d);
  });
  after(async () => {
    await h?.close();
    await d?.close();
  });

  it('throttled calls are retried with backoff and counted, then succeed', async () => {
    d.injectFault({ kind: 'throttle' }, { operation: 'RunTask', count: 2 });
    d.injectFault({ kind: 'throttle' }, { operation: 'ListTasks', count: 1 });
    const workerId = id('throttled');
    const w = await h.proxy.createWorker({ workerId, spec: LONG });
    assert.equal(w.workerId, workerId);
    const runTasks = d.calls.filter((c) => c.operation === 'RunTask');
    assert.deepEqual(runTasks.slice(-3).map((c) => c.errorType ?? c.status), ['ThrottlingException', 'ThrottlingException', 200]);
    const retries = h.logs.filter((l) => l.message === 'AWS call retried');
    assert.ok(retries.length >= 3, 'each retry is logged');
    assert.equal(retries.at(-1)?.fields?.['reason'], 'throttled');
    assert.ok(Number(retries.at(-1)?.fields?.['throttledTotal']) >= 3, 'throttling is counted');
    assert.equal((await h.proxy.listWorkers({ labels: { 'worker-manager/worker-id': workerId } })).length, 1, 'the retried RunTask (same clientToken) made one task');
    await h.proxy.terminateWorker({ workerId });
  });

  it('throttling that outlasts the retries is WM_ERR_RESOURCE_EXHAUSTED, transient, naming the operation', async () => {
    d.injectFault({ kind: 'throttle' }, { operation: 'ListTasks' });
    try {
      const e = await rejection(() => h.proxy.getWorkerStatus({ workerId: id('never') }));
      assert.equal(e.code, 'WM_ERR_RESOURCE_EXHAUSTED');
      assert.equal(e.transient, true);
      assert.match(e.message, /ecs:ListTasks/);
      assert.equal(e.details['awsError'], 'ThrottlingException');
      assert.equal(e.details['attempts'], 4);
    } finally {
      d.clearFaults();
    }
  });

  it('a server error is retried, then the call succeeds', async () => {
    d.injectFault({ kind: 'error', status: 500, type: 'ServerException', message: 'Service unavailable' }, { operation: 'ListTasks', count: 1 });
    assert.ok(Array.isArray(await h.proxy.listWorkers({})));
  });

  it('RunTask failures[] become coded errors: RESOURCE:MEMORY -> WM_ERR_RESOURCE_EXHAUSTED, AGENT -> WM_ERR_NETWORK; no worker is left', async () => {
    const full = id('full');
    d.injectRunTaskFailure({ reason: 'RESOURCE:MEMORY' });
    const e = await rejection(() => h.proxy.createWorker({ workerId: full, spec: LONG }));
    assert.equal(e.code, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.equal(e.transient, true);
    assert.match(e.message, /enough memory \(RESOURCE:MEMORY\)/);
    assert.deepEqual(e.details['failures'], [{ reason: 'RESOURCE:MEMORY' }]);
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: full }), { code: 'WM_ERR_NOT_FOUND' });

    const agent = id('agent');
    d.injectRunTaskFailure({ reason: 'AGENT', detail: 'agent disconnected' });
    const a = await rejection(() => h.proxy.createWorker({ workerId: agent, spec: LONG }));
    assert.equal(a.code, 'WM_ERR_NETWORK');
    assert.match(a.message, /agent of the chosen instance is disconnected/);
    // ECS answers a repeated clientToken with its first result, failures included: the failure is counted under the
    // state folder and the next RunTask (from any thread) sends a new token, so the same create then succeeds.
    const other = await harness(d, {}, undefined, h.stateDir);
    try {
      const w = await other.proxy.createWorker({ workerId: agent, spec: LONG });
      assert.equal(w.workerId, agent);
      assert.equal((await h.proxy.listWorkers({ labels: { 'worker-manager/worker-id': agent } })).length, 1);
      await h.proxy.terminateWorker({ workerId: agent });
    } finally {
      await other.close();
    }
  });

  it('a task stopped outside the host (StopTask by someone else) is Failed(StoppedExternally)', async () => {
    const workerId = id('ext');
    const w = await h.proxy.createWorker({ workerId, spec: LONG });
    await until(h.proxy, workerId, (s) => s.phase === 'Running', 'Running');
    const ecs = ecsClient(d);
    try {
      await ecs.send(new StopTaskCommand({ cluster: CLUSTER, task: w.providerRef!, reason: 'stopped from the console' }));
    } finally {
      ecs.destroy();
    }
    assert.deepEqual(await until(h.proxy, workerId, isFinal, 'ended'), { phase: 'Failed', reason: 'StoppedExternally', exitCode: 143 });
    const r = await h.proxy.terminateWorker({ workerId });
    assert.equal(r.alreadyGone, true);
  });

  it("a container killed behind the plugin's back is Failed(ExitCode137)", async () => {
    const workerId = id('killed');
    const w = await h.proxy.createWorker({ workerId, spec: LONG });
    await until(h.proxy, workerId, (s) => s.phase === 'Running', 'Running');
    const container = d.containerOf(w.providerRef!);
    assert.ok(container !== undefined);
    await container.kill({ signal: 'SIGKILL' });
    assert.deepEqual(await until(h.proxy, workerId, isFinal, 'ended'), { phase: 'Failed', reason: 'ExitCode137', exitCode: 137 });
  });

  it('an image that cannot be pulled is Failed(ImagePullFailed) after createWorker accepted it', async () => {
    const workerId = id('pull');
    const w = await h.proxy.createWorker({ workerId, spec: { image: 'local/not-there:1', command: ['true'] } });
    assert.equal(w.state.phase, 'Starting');
    assert.deepEqual(await until(h.proxy, workerId, isFinal, 'ended'), { phase: 'Failed', reason: 'ImagePullFailed' });
  });

  it('never logs or reports the AWS secret key', () => {
    const everything = JSON.stringify(h.logs);
    assert.ok(!everything.includes(TEST_KEYS.secretAccessKey));
  });
});
