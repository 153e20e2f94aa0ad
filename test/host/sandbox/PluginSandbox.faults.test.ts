import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { budget } from '../../helpers/waitFor.ts';
import { rejection, startedIn, TIERS, waitFor, type SandboxRecord, type TestSandbox } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

/** Rejects with the error a promise rejects with, failing the test when it resolves. */
/** Keeps calling a healthy echo sandbox until stopped; every call must succeed. */
function keepCalling(sandbox: TestSandbox): { stop(): Promise<number> } {
  let running = true;
  let calls = 0;
  const loop = (async () => {
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'steady', spec: { command: ['true'] } });
    while (running) {
      const state = await echo.getWorkerStatus({ workerId: 'steady' });
      assert.deepEqual(state, { phase: 'Running' });
      calls++;
      // Pacing, not waiting: a steady trickle of calls beside the fault.
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
async function assertFaultAndRecovery(hostile: SandboxRecord<TestSandbox>, healthy: SandboxRecord<TestSandbox>, trigger: string, code: string, reason: string): Promise<void> {
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

// Both tiers: inside the restricted tier's sandbox process the same pool replaces its threads, and the host sees it.
for (const tier of TIERS) describe(`PluginSandbox faults (${tier})`, () => {
  it('a plain Error thrown by a handler becomes WM_ERR_INTERNAL and the thread survives', async (t) => {
    const hostile = await startedIn(tier, t, 'hostile-throw');
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
    const healthy = await startedIn(tier, t, 'echo');
    const hostile = await startedIn(tier, t, 'hostile-throw');
    await assertFaultAndRecovery(hostile, healthy, 'throw-later', 'HOST_ERR_PLUGIN_CRASHED', 'crash');
  });

  it('process.exit() in plugin code: HOST_ERR_PLUGIN_CRASHED, then a restart', async (t) => {
    const healthy = await startedIn(tier, t, 'echo');
    const hostile = await startedIn(tier, t, 'hostile-exit');
    await assertFaultAndRecovery(hostile, healthy, 'exit', 'HOST_ERR_PLUGIN_CRASHED', 'crash');
  });

  it('a busy loop stops heartbeats: HOST_ERR_PLUGIN_HUNG within the hang timeout, then a restart', async (t) => {
    const healthy = await startedIn(tier, t, 'echo');
    // The busy loop never ends, so the hang timeout only has to be long enough for the healthy restarted thread not
    // to be taken for hung on a loaded machine; the call deadline is far longer, so only the watchdog can end the call.
    const callTimeoutMs = budget(120_000);
    const hostile = await startedIn(tier, t, 'hostile-hang', { limits: { hangTimeoutMs: budget(3_000), heartbeatMs: 50, callTimeoutMs } });
    const started = Date.now();
    // HOST_ERR_PLUGIN_HUNG, not HOST_ERR_PLUGIN_TIMEOUT: the watchdog, not the call deadline, caught it.
    await assertFaultAndRecovery(hostile, healthy, 'hang', 'HOST_ERR_PLUGIN_HUNG', 'hang');
    assert.ok(Date.now() - started < callTimeoutMs, `took ${Date.now() - started} ms`);
  });

  it('allocating past the heap limit: HOST_ERR_PLUGIN_OUT_OF_MEMORY, then a restart', async (t) => {
    const healthy = await startedIn(tier, t, 'echo');
    const hostile = await startedIn(tier, t, 'hostile-oom', { limits: { heapMb: 32 } });
    await assertFaultAndRecovery(hostile, healthy, 'oom', 'HOST_ERR_PLUGIN_OUT_OF_MEMORY', 'oom');
  });

  it('quarantines after more than maxRestarts faults in the window; later calls are refused at once', async (t) => {
    const healthy = await startedIn(tier, t, 'echo');
    const beside = keepCalling(healthy.sandbox);
    const hostile = await startedIn(tier, t, 'hostile-exit', { limits: { restart: { maxRestarts: 1, windowMs: 60_000, backoffMs: 10, maxBackoffMs: 50 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    assert.equal((await rejection(proxy.getWorkerStatus({ workerId: 'exit' }))).code, 'HOST_ERR_PLUGIN_CRASHED');
    // The second fault waits for the first restart, then spends the budget.
    assert.equal((await rejection(proxy.getWorkerStatus({ workerId: 'exit' }))).code, 'HOST_ERR_PLUGIN_CRASHED');
    await waitFor(() => hostile.sandbox.state === 'quarantined', 'quarantine', 60_000);
    const started = Date.now();
    const refused = await rejection(proxy.getWorkerStatus({ workerId: 'fine' }));
    assert.equal(refused.code, 'HOST_ERR_PLUGIN_QUARANTINED');
    // Queued behind a restart that never comes, it would wait for the start-up deadline (a minute); the bound lies well
    // between that and an immediate refusal.
    assert.ok(Date.now() - started < budget(10_000), `refused without waiting (took ${Date.now() - started} ms)`);
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
    const hostile = await startedIn(tier, t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 40, maxBackoffMs: 100 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    for (let i = 0; i < 3; i++) await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
    assert.deepEqual(
      hostile.statuses.filter((s) => s.state === 'restarting').map((s) => s.delayMs),
      [40, 80, 100],
    );
  });

  it('calls that arrive while the instance restarts wait for it instead of failing', async (t) => {
    const hostile = await startedIn(tier, t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 300, maxBackoffMs: 300 } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    assert.equal(hostile.sandbox.state, 'restarting');
    const waiting = await Promise.all([proxy.getWorkerStatus({ workerId: 'a' }), proxy.listWorkers({})]);
    assert.deepEqual(waiting, [{ phase: 'Running' }, []]);
    assert.equal(hostile.sandbox.state, 'running');
  });

  it('a call waiting for a restart gets its whole deadline once the new threads are up, and its caller can still abort the wait', async (t) => {
    // The restart takes at least the backoff, more than twice this call's deadline: the deadline counts from the
    // thread. The deadline itself is seconds, so the new thread answers in time even on a loaded machine.
    const backoffMs = budget(5_000);
    const hostile = await startedIn(tier, t, 'hostile-exit', { limits: { restart: { maxRestarts: 3, windowMs: 60_000, backoffMs, maxBackoffMs: backoffMs } } });
    const proxy = hostile.sandbox.proxy<Provider>();
    await rejection(proxy.getWorkerStatus({ workerId: 'exit' }));
    assert.equal(hostile.sandbox.state, 'restarting');
    const patient = proxy.getWorkerStatus({ workerId: 'a' }, { timeoutMs: budget(2_000) });
    const aborted = rejection(proxy.getWorkerStatus({ workerId: 'a' }, { signal: AbortSignal.abort() }));
    const abortedLater = new AbortController();
    const abandoning = rejection(proxy.getWorkerStatus({ workerId: 'a' }, { signal: abortedLater.signal }));
    abortedLater.abort();
    assert.equal((await aborted).code, 'WM_ERR_TIMEOUT');
    assert.equal((await abandoning).code, 'WM_ERR_TIMEOUT');
    assert.deepEqual(await patient, { phase: 'Running' });
  });

  it('a thread that dies mid-stream ends the host iterator with HOST_ERR_PLUGIN_CRASHED', async (t) => {
    const hostile = await startedIn(tier, t, 'hostile-exit');
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
