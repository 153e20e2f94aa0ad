import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError, type WorkerProviderContract } from '@worker-manager/plugin-sdk';
import type { PluginSandbox } from '../../../host/src/sandbox/index.ts';
import { startedSandbox, waitFor, type SandboxRecord } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

/** Rejects with the error a promise rejects with, failing the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<WorkerManagerError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WorkerManagerError, `expected a WorkerManagerError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to reject');
}

/** Keeps calling a healthy echo sandbox until stopped; every call must succeed. */
function keepCalling(sandbox: PluginSandbox): { stop(): Promise<number> } {
  let running = true;
  let calls = 0;
  const loop = (async () => {
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'steady', spec: { command: ['true'] } });
    while (running) {
      const state = await echo.getWorkerStatus({ workerId: 'steady' });
      assert.deepEqual(state, { phase: 'Running' });
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return calls;
    },
  };
}

/** Checks a fault end to end: the call rejects with `code`, the sandbox restarts, a later call succeeds. */
async function assertFaultAndRecovery(hostile: SandboxRecord, healthy: SandboxRecord, trigger: string, code: string, reason: string): Promise<void> {
  const beside = keepCalling(healthy.sandbox);
  const proxy = hostile.sandbox.proxy<Provider>();
  const error = await rejection(proxy.getWorkerStatus({ workerId: trigger }));
  assert.equal(error.code, code);
  assert.equal(error.details?.['plugin'], hostile.plugin);
  assert.equal(error.details?.['instance'], `${hostile.plugin}-test`);
  assert.equal(error.details?.['version'], '1.0.0');
  // A later call waits for the restart and succeeds on new threads.
  assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
  const stats = hostile.sandbox.stats();
  assert.equal(stats.state, 'running');
  assert.equal(stats.restarts, 1);
  assert.equal(stats.crashes, 1);
  assert.equal(stats.lastError?.code, code);
  assert.deepEqual(
    hostile.statuses.map((s) => [s.state, s.reason]),
    [
      ['running', 'started'],
      ['crashed', reason],
      ['restarting', reason],
      ['running', 'restarted'],
    ],
  );
  assert.equal(hostile.statuses[1]?.code, code);
  assert.ok(await beside.stop() > 0, 'the healthy sandbox answered while the other one failed');
  assert.equal(healthy.sandbox.stats().crashes, 0);
}

describe('PluginSandbox faults', () => {
  it('a plain Error thrown by a handler becomes WM_ERR_INTERNAL and the thread survives', async (t) => {
    const hostile = await startedSandbox(t, 'hostile-throw');
    const proxy = hostile.sandbox.proxy<Provider>();
    const error = await rejection(proxy.createWorker({ workerId: 'w1', spec: { command: ['x'] } }));
    assert.equal(error.code, 'WM_ERR_INTERNAL');
    assert.match(error.message, /createWorker exploded/);
    assert.equal(error.details?.['plugin'], 'hostile-throw');
    assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
    assert.equal(hostile.sandbox.stats().crashes, 0);
    assert.equal(hostile.sandbox.stats().restarts, 0);
  });

  it('an uncaught error thrown from a timer crashes the thread: HOST_ERR_PLUGIN_CRASHED, then a restart', async (t) => {
    const healthy = await startedSandbox(t, 'echo');
    const hostile = await startedSandbox(t, 'hostile-throw');
    await assertFaultAndRecovery(hostile, healthy, 'throw-later', 'HOST_ERR_PLUGIN_CRASHED', 'crash');
  });

  it('process.exit() in plugin code: HOST_ERR_PLUGIN_CRASHED, then a restart', async (t) => {
    const healthy = await startedSandbox(t, 'echo');
    const hostile = await startedSandbox(t, 'hostile-exit');
    await assertFaultAndRecovery(hostile, healthy, 'exit', 'HOST_ERR_PLUGIN_CRASHED', 'crash');
  });

  it('a busy loop stops heartbeats: HOST_ERR_PLUGIN_HUNG within the hang timeout, then a restart', async (t) => {
    const healthy = await startedSandbox(t, 'echo');
    const hostile = await startedSandbox(t, 'hostile-hang', { limits: { hangTimeoutMs: 500, heartbeatMs: 50, callTimeoutMs: 8_000 } });
    const started = Date.now();
    await assertFaultAndRecovery(hostile, healthy, 'hang', 'HOST_ERR_PLUGIN_HUNG', 'hang');
    // Far sooner than the call deadline: the watchdog, not the timeout, caught it.
    assert.ok(Date.now() - started < 6_000, `took ${Date.now() - started} ms`);
  });

  it('allocating past the heap limit: HOST_ERR_PLUGIN_OUT_OF_MEMORY, then a restart', async (t) => {
    const healthy = await startedSandbox(t, 'echo');
    const hostile = await startedSandbox(t, 'hostile-oom', { limits: { heapMb: 32 } });
    await assertFaultAndRecovery(hostile, healthy, 'oom', 'HOST_ERR_PLUGIN_OUT_OF_MEMORY', 'oom');
  });

  it('quarantines after more than maxRestarts faults in the window; later calls are refused at once', async (t) => {
    const healthy = await startedSandbox(t, 'echo');
    const beside = keepCalling(healthy.sandbox);
    const hostile = await startedSandbox(t, 'hostile-exit', { limits: { restart: { maxRestarts: 1, windowMs: 60_000, backoffMs: 10, maxBackoffMs: 50 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    assert.equal((await rejection(proxy.getWorkerStatus({ workerId: 'exit' }))).code, 'HOST_ERR_PLUGIN_CRASHED');
    // The second fault waits for the first restart, then spends the budget.
    assert.equal((await rejection(proxy.getWorkerStatus({ workerId: 'exit' }))).code, 'HOST_ERR_PLUGIN_CRASHED');
    await waitFor(() => hostile.sandbox.state === 'quarantined', 'quarantine');
    const started = Date.now();
    const refused = await rejection(proxy.getWorkerStatus({ workerId: 'fine' }));
    assert.equal(refused.code, 'HOST_ERR_PLUGIN_QUARANTINED');
    // Queued behind a restart that never comes, it would wait for the call timeout (seconds); the margin is for load.
    assert.ok(Date.now() - started < 1_000, 'refused without waiting');
    assert.equal(refused.details?.['plugin'], 'hostile-exit');
    const quarantined = hostile.statuses.filter((s) => s.state === 'quarantined');
    assert.equal(quarantined.length, 1);
    assert.equal(quarantined[0]?.code, 'HOST_ERR_PLUGIN_CRASHED');
    assert.deepEqual(
      hostile.statuses.map((s) => s.state),
      ['running', 'crashed', 'restarting', 'running', 'crashed', 'quarantined'],
    );
    const stats = hostile.sandbox.stats();
    assert.equal(stats.restarts, 1);
    assert.equal(stats.crashes, 2);
    assert.equal(stats.threads, 0);
    assert.equal(stats.lastError?.code, 'HOST_ERR_PLUGIN_QUARANTINED');
    assert.ok(await beside.stop() > 0);
  });

  it('restart delays back off exponentially within the window', async (t) => {
    const hostile = await startedSandbox(t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 40, maxBackoffMs: 100 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    for (let i = 0; i < 3; i++) await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
    assert.deepEqual(
      hostile.statuses.filter((s) => s.state === 'restarting').map((s) => s.delayMs),
      [40, 80, 100],
    );
  });

  it('calls that arrive while the instance restarts wait for it instead of failing', async (t) => {
    const hostile = await startedSandbox(t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 300, maxBackoffMs: 300 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    assert.equal(hostile.sandbox.state, 'restarting');
    const waiting = await Promise.all([proxy.getWorkerStatus({ workerId: 'a' }), proxy.listWorkers({})]);
    assert.deepEqual(waiting, [{ phase: 'Running' }, []]);
    assert.equal(hostile.sandbox.state, 'running');
  });

  it('a call waiting for a restart still honours its deadline', async (t) => {
    const hostile = await startedSandbox(t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 2_000, maxBackoffMs: 2_000 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    const error = await rejection(proxy.getWorkerStatus({ workerId: 'a' }, { timeoutMs: 100 }));
    assert.equal(error.code, 'HOST_ERR_PLUGIN_TIMEOUT');
  });

  it('a thread that dies mid-stream ends the host iterator with HOST_ERR_PLUGIN_CRASHED', async (t) => {
    const hostile = await startedSandbox(t, 'hostile-exit');
    const stream = await hostile.sandbox.proxy<Provider>().getLogs({ workerId: 'any' });
    const seen: string[] = [];
    const error = await rejection(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.data);
      })(),
    );
    assert.deepEqual(seen, ['line 0\n', 'line 1\n']);
    assert.equal(error.code, 'HOST_ERR_PLUGIN_CRASHED');
    assert.equal(error.details?.['exitCode'], 3);
  });
});
