import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { budget } from '../../helpers/waitFor.ts';
import { rejection, startedSandbox, waitFor } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

/** The longest grace the sandbox gives a handler past its deadline (min(1 s, heartbeatMs)). */
const GRACE_MS = 1_000;

describe('PluginSandbox calls', () => {
  it('serves contract calls through the typed proxy and call()', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    const worker = await echo.createWorker({ workerId: 'w1', spec: { command: ['sleep', '1'], labels: { team: 'a' } } });
    assert.equal(worker.workerId, 'w1');
    // Owner labels come from the plugin context the sandbox built.
    assert.deepEqual(worker.labels, { team: 'a', 'worker-manager/host': 'test-host', 'worker-manager/instance': 'echo-test' });
    assert.deepEqual(await sandbox.call('getWorkerStatus', { workerId: 'w1' }), { phase: 'Running' });
    const exec = await echo.executeCommand({ workerId: 'w1', command: ['echo', 'hi'] });
    assert.equal(exec.stdout, 'echo hi');
    assert.equal((await echo.listWorkers({ labels: { team: 'a' } })).length, 1);
    assert.equal((await echo.getCapacity({})).activeWorkers, 1);
    assert.equal(sandbox.proxy(), sandbox.proxy(), 'one proxy per sandbox');
  });

  it('keeps a plugin error code and names the plugin in its details', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const error = await rejection(sandbox.proxy<Provider>().getWorkerStatus({ workerId: 'nobody' }));
    assert.equal(error.code, 'WM_ERR_NOT_FOUND');
    assert.equal(error.category, 'ClientValidation');
    assert.deepEqual({ ...error.details }, { workerId: 'nobody', plugin: 'echo', instance: 'echo-test', version: '1.0.0' });
  });

  it('rejects invalid params with WM_ERR_VALIDATION and the offending path, before any thread sees them', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const error = await rejection(sandbox.proxy<Provider>().createWorker({ workerId: 'Not_A_Dns_Label', spec: { command: [] } }));
    assert.equal(error.code, 'WM_ERR_VALIDATION');
    assert.equal(error.details?.['instancePath'], '/workerId');
    const issues = error.details?.['issues'] as Array<{ instancePath: string }>;
    assert.deepEqual(issues.map((i) => i.instancePath), ['/workerId', '/spec/command']);
    assert.match(error.message, /\/workerId/);
    const extra = await rejection(sandbox.call('getWorkerStatus', { workerId: 'w1', extra: true }));
    assert.equal(extra.code, 'WM_ERR_VALIDATION');
  });

  it('refuses operations that were not negotiated with WM_ERR_COMPATIBILITY', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo', { methods: ['createWorker', 'terminateWorker', 'getWorkerStatus', 'listWorkers'] });
    const error = await rejection(sandbox.proxy<Provider>().executeCommand({ workerId: 'w1', command: ['x'] }));
    assert.equal(error.code, 'WM_ERR_COMPATIBILITY');
    assert.equal((await rejection(sandbox.call('noSuchOperation', {}))).code, 'WM_ERR_COMPATIBILITY');
    // The negotiated ones still work.
    assert.deepEqual(await sandbox.proxy<Provider>().listWorkers({}), []);
  });

  it('rejects a plugin result outside the contract with HOST_ERR_PLUGIN_PROTOCOL, and the thread survives', async (t) => {
    const { sandbox } = await startedSandbox(t, 'hostile-throw');
    const proxy = sandbox.proxy<Provider>();
    const error = await rejection(proxy.getWorkerStatus({ workerId: 'bad-result' }));
    assert.equal(error.code, 'HOST_ERR_PLUGIN_PROTOCOL');
    assert.equal(error.details?.['method'], 'getWorkerStatus');
    assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
    assert.equal(sandbox.stats().crashes, 0);
  });

  it('times out a stuck call with HOST_ERR_PLUGIN_TIMEOUT and replaces its thread', async (t) => {
    const { sandbox, statuses } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const started = Date.now();
    // The handler ignores its signal for 10 minutes; the call's deadline is 200 ms.
    const error = await rejection(echo.executeCommand({ workerId: 'w1', command: ['sleep', '600000'] }, { timeoutMs: 200 }));
    assert.equal(error.code, 'HOST_ERR_PLUGIN_TIMEOUT');
    assert.equal(error.details?.['timeoutMs'], 200);
    assert.ok(Date.now() - started < budget(60_000), `rejected at the deadline, not when the handler finished (took ${Date.now() - started} ms)`);
    await waitFor(() => statuses.some((s) => s.state === 'restarting'), 'the stuck thread to be replaced', 60_000);
    assert.equal(statuses.find((s) => s.state === 'crashed')?.reason, 'timeout');
    // New threads: the in-memory workers of the old ones are gone, and the instance answers again.
    assert.equal((await rejection(echo.getWorkerStatus({ workerId: 'w1' }))).code, 'WM_ERR_NOT_FOUND');
    assert.equal(sandbox.stats().restarts, 1);
  });

  it('a handler that honours its signal at the deadline keeps its thread', async (t) => {
    // The grace a handler has to return after its deadline is heartbeatMs, capped at 1 s: take the cap, so a loaded
    // machine delaying the handler's answer by a few hundred ms does not get its thread replaced.
    const { sandbox, statuses } = await startedSandbox(t, 'echo', { limits: { heartbeatMs: GRACE_MS } });
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const error = await rejection(echo.executeCommand({ workerId: 'w1', command: ['sleep-cooperative', '600000'] }, { timeoutMs: 150 }));
    assert.equal(error.code, 'HOST_ERR_PLUGIN_TIMEOUT');
    // Barrier, not a wait for something to happen: the sandbox armed its grace timer when it rejected the call, so a
    // timer of the same length armed now fires after it. By then the thread was either kept or killed; the call below
    // tells which (a replaced thread has lost the in-memory worker).
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS));
    assert.deepEqual(await echo.getWorkerStatus({ workerId: 'w1' }), { phase: 'Running' }, 'same thread, same in-memory worker');
    assert.equal(sandbox.stats().restarts, 0);
    assert.deepEqual(statuses.map((s) => s.state), ['running']);
  });

  it('a caller signal aborts the call', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const error = await rejection(echo.executeCommand({ workerId: 'w1', command: ['sleep-cooperative', '100'] }, { signal: AbortSignal.abort() }));
    assert.equal(error.code, 'WM_ERR_TIMEOUT');
  });

  it('streams log chunks; with follow it streams until cancel() and the plugin stops', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const finite: string[] = [];
    for await (const chunk of await echo.getLogs({ workerId: 'w1' })) finite.push(chunk.data);
    assert.deepEqual(finite, ['line 0\n', 'line 1\n', 'line 2\n']);

    const follow = await echo.getLogs({ workerId: 'w1', options: { follow: true, sinceSeq: 10 } });
    const seqs: number[] = [];
    for await (const chunk of follow) {
      seqs.push(chunk.seq);
      if (seqs.length === 6) follow.cancel();
    }
    assert.deepEqual(seqs, [10, 11, 12, 13, 14, 15]);
    // The stream holds no call slot and no in-flight call; the instance keeps answering.
    assert.equal(sandbox.stats().inFlight, 0);
    assert.deepEqual(await echo.getWorkerStatus({ workerId: 'w1' }), { phase: 'Running' });
  });

  it('many follow streams at once do not use up the call concurrency', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo', { limits: { concurrentCallsPerThread: 2 } });
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const streams = await Promise.all(Array.from({ length: 6 }, () => echo.getLogs({ workerId: 'w1', options: { follow: true } })));
    // Were the streams holding call slots, this call would queue behind them until its deadline (callTimeoutMs).
    assert.deepEqual(await echo.getWorkerStatus({ workerId: 'w1' }), { phase: 'Running' });
    for (const stream of streams) {
      const first = await stream[Symbol.asyncIterator]().next();
      assert.equal(first.done, false);
      stream.cancel();
    }
  });

  it('a stream of an unknown worker ends with the plugin error', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const stream = await sandbox.stream('getLogs', { workerId: 'nobody' });
    const error = await rejection(stream[Symbol.asyncIterator]().next());
    assert.equal(error.code, 'WM_ERR_NOT_FOUND');
  });

  it('delivers validated events and logs from plugin code', async (t) => {
    const { sandbox, events, logs } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    await echo.executeCommand({ workerId: 'w1', command: ['emit', 'hello from the plugin'] });
    await waitFor(() => events.length === 1 && logs.length === 1, 'event and log');
    assert.equal(events[0]?.type, 'WorkerStateChanged');
    assert.equal(events[0]?.workerId, 'w1');
    // The plugin's fields go under `plugin`, beside the host's own `pluginId`.
    assert.deepEqual(logs[0], { level: 'info', message: 'hello from the plugin', fields: { pluginId: 'echo', plugin: { workerId: 'w1' } } });
  });

  it('plugin threads see exactly the granted environment, never the host environment', async (t) => {
    process.env['WM_SANDBOX_TEST_HOST_SECRET'] = 'must-not-leak';
    t.after(() => delete process.env['WM_SANDBOX_TEST_HOST_SECRET']);
    const { sandbox } = await startedSandbox(t, 'hostile-env', { env: { GRANTED: 'yes', TZ: 'UTC' } });
    const result = await sandbox.proxy<Provider>().executeCommand({ workerId: 'w1', command: ['env'] });
    assert.deepEqual(JSON.parse(result.stdout), { GRANTED: 'yes', TZ: 'UTC' });
    assert.equal(process.env['WM_SANDBOX_TEST_HOST_SECRET'], 'must-not-leak', 'the variable really is set in the host');
  });

  it('spreads concurrent calls over its threads and keeps every answer with its call', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo', { limits: { threads: 2, concurrentCallsPerThread: 8 } });
    const echo = sandbox.proxy<Provider>();
    const ids = Array.from({ length: 64 }, (_, i) => `w${i}`);
    // Each thread has its own memory; createWorker answers from whichever thread ran it.
    const created = await Promise.all(ids.map((workerId) => echo.createWorker({ workerId, spec: {} })));
    assert.deepEqual(created.map((w) => w.workerId), ids);
    assert.equal(sandbox.stats().threads, 2);
    assert.equal(sandbox.stats().inFlight, 0);
  });
});
