import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WorkerManagerError, type WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { budget } from '../../helpers/waitFor.ts';
import { fixtureDir, fixtureSandbox, rejection, startedSandbox } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

describe('PluginSandbox lifecycle', () => {
  it('start() and stop() are idempotent, and the state follows them', async (t) => {
    const { sandbox, stateDir } = await fixtureSandbox(t, 'echo');
    assert.equal(sandbox.state, 'idle');
    const first = sandbox.start();
    assert.equal(sandbox.start(), first);
    assert.equal(sandbox.state, 'starting');
    await Promise.all([first, sandbox.start()]);
    assert.equal(sandbox.state, 'running');
    assert.ok((await stat(join(stateDir, 'state'))).isDirectory(), 'the state dir was created');
    assert.equal(sandbox.stats().threads, 1);
    const stopping = sandbox.stop();
    assert.equal(sandbox.stop(), stopping);
    await stopping;
    await sandbox.stop();
    assert.equal(sandbox.state, 'stopped');
    assert.equal(sandbox.stats().threads, 0);
    assert.equal((await rejection(sandbox.proxy<Provider>().listWorkers({}))).code, 'HOST_ERR_PLUGIN_STOPPED');
    assert.equal((await rejection(sandbox.start())).code, 'HOST_ERR_PLUGIN_STOPPED');
  });

  it('stop() before start() is safe, and calls before start() are refused', async (t) => {
    const { sandbox } = await fixtureSandbox(t, 'echo');
    assert.equal((await rejection(sandbox.call('listWorkers', {}))).code, 'HOST_ERR_PLUGIN_STOPPED');
    await sandbox.stop();
    assert.equal(sandbox.state, 'stopped');
  });

  it('stop() drains an in-flight slow call, then refuses new calls', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    // A call is in flight from the moment it is sent, so stop() below has it to drain.
    const slow = echo.executeCommand({ workerId: 'w1', command: ['sleep', '300'] });
    assert.equal(sandbox.stats().inFlight, 1);
    const stopping = sandbox.stop({ timeoutMs: budget(60_000) });
    assert.equal(sandbox.state, 'stopping');
    assert.equal((await rejection(echo.listWorkers({}))).code, 'HOST_ERR_PLUGIN_STOPPED');
    const result = await slow;
    assert.equal(result.stdout, 'sleep 300');
    await stopping;
    assert.equal(sandbox.state, 'stopped');
  });

  it('stop() with a short timeout rejects what did not drain with HOST_ERR_PLUGIN_STOPPED', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const slow = rejection(echo.executeCommand({ workerId: 'w1', command: ['sleep', '600000'] }));
    assert.equal(sandbox.stats().inFlight, 1);
    const started = Date.now();
    await sandbox.stop({ timeoutMs: 100 });
    // Draining would take the handler's 10 minutes; stopping at the 100 ms timeout takes well under a minute even loaded.
    assert.ok(Date.now() - started < budget(60_000), `took ${Date.now() - started} ms`);
    assert.equal((await slow).code, 'HOST_ERR_PLUGIN_STOPPED');
  });

  it('stop() cancels open streams', async (t) => {
    const { sandbox } = await startedSandbox(t, 'echo');
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    const stream = await echo.getLogs({ workerId: 'w1', options: { follow: true } });
    const reading = rejection((async () => { for await (const _ of stream); })());
    await sandbox.stop({ timeoutMs: budget(60_000) });
    assert.equal((await reading).code, 'HOST_ERR_PLUGIN_STOPPED');
  });

  it('an entry whose default export is not a plugin definition fails start() with HOST_ERR_PLUGIN_LOAD_FAILED', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wm-not-a-plugin-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'index.mjs'), "export default { id: 'echo', version: '1.0.0' };\n");
    const { sandbox } = await fixtureSandbox(t, 'echo', { entry: join(dir, 'index.mjs'), packageDir: dir });
    const error = await rejection(sandbox.start());
    assert.equal(error.code, 'HOST_ERR_PLUGIN_LOAD_FAILED');
    assert.match(error.message, /definePlugin/);
    assert.equal(error.details?.['plugin'], 'echo');
    assert.equal(sandbox.state, 'stopped');
    assert.equal(sandbox.stats().lastError?.code, 'HOST_ERR_PLUGIN_LOAD_FAILED');
  });

  it('an entry that cannot be imported fails start() with HOST_ERR_PLUGIN_LOAD_FAILED and keeps the cause', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wm-broken-plugin-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'index.mjs'), "throw new Error('broken at import');\n");
    const { sandbox } = await fixtureSandbox(t, 'echo', { entry: join(dir, 'index.mjs'), packageDir: dir });
    const error = await rejection(sandbox.start());
    assert.equal(error.code, 'HOST_ERR_PLUGIN_LOAD_FAILED');
    assert.ok(error.cause instanceof WorkerManagerError);
    assert.match(error.cause.message, /broken at import/);
  });

  it('a definition whose id or version differs from the package fails start() with HOST_ERR_PLUGIN_LOAD_FAILED', async (t) => {
    const { sandbox } = await fixtureSandbox(t, 'echo', { pluginVersion: '2.0.0' });
    const error = await rejection(sandbox.start());
    assert.equal(error.code, 'HOST_ERR_PLUGIN_LOAD_FAILED');
    assert.deepEqual(error.details?.['found'], { id: 'echo', version: '1.0.0', kind: 'provider' });
    const other = await fixtureSandbox(t, 'echo', { pluginId: 'not-echo', entry: join(fixtureDir('echo'), 'index.ts') });
    assert.equal((await rejection(other.sandbox.start())).code, 'HOST_ERR_PLUGIN_LOAD_FAILED');
  });

  it('setup throwing fails start() with HOST_ERR_PLUGIN_SETUP_FAILED and keeps the cause', async (t) => {
    const { sandbox } = await fixtureSandbox(t, 'hostile-setup');
    const error = await rejection(sandbox.start());
    assert.equal(error.code, 'HOST_ERR_PLUGIN_SETUP_FAILED');
    assert.equal(error.details?.['instance'], 'hostile-setup-test');
    assert.ok(error.cause instanceof WorkerManagerError);
    assert.equal(error.cause.code, 'WM_ERR_INTERNAL');
    assert.match(error.cause.message, /cannot reach the infrastructure/);
  });

  it('a start-up slower than the call deadline succeeds, and a call made meanwhile gets its whole deadline once the threads are up (regression: calls failed with $ready timeouts on a loaded machine)', async (t) => {
    // Setup outlasts the call deadline more than twice over; before start-up had its own deadline, both failed. The
    // deadline itself is seconds, so the call can be answered in time once the threads are up, even on a loaded machine.
    const { sandbox } = await fixtureSandbox(t, 'echo', { config: { setupDelayMs: budget(5_000) }, limits: { callTimeoutMs: budget(2_000) } });
    const starting = sandbox.start();
    const early = sandbox.proxy<Provider>().listWorkers({});
    await starting;
    assert.deepEqual(await early, []);
    assert.equal(sandbox.state, 'running');
  });

  it('a start-up that outlasts startTimeoutMs fails with HOST_ERR_PLUGIN_START_TIMEOUT, and so do the calls waiting for it', async (t) => {
    // A waiting call gives up startTimeoutMs + maxBackoffMs after it arrived; the generous backoff keeps that clearly
    // after the start's own failure (which comes once the threads it gave up on are torn down), however loaded.
    const { sandbox } = await fixtureSandbox(t, 'echo', {
      config: { setupDelayMs: 600_000 },
      limits: { startTimeoutMs: 300, restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 20, maxBackoffMs: budget(10_000) } },
    });
    const starting = rejection(sandbox.start());
    const waiting = rejection(sandbox.proxy<Provider>().listWorkers({}));
    const error = await starting;
    assert.equal(error.code, 'HOST_ERR_PLUGIN_START_TIMEOUT');
    assert.match(error.message, /startTimeoutMs \(300 ms\)/);
    assert.equal(error.details?.['instance'], 'echo-test');
    assert.equal(sandbox.state, 'stopped');
    assert.equal((await waiting).code, 'HOST_ERR_PLUGIN_START_TIMEOUT');
  });

  it('runs the plugin threads with the heap limit it was given', async (t) => {
    // A generous limit: the same OOM fixture that dies at 32 MB survives a small allocation burst at 256 MB.
    const { sandbox } = await startedSandbox(t, 'hostile-oom', { limits: { heapMb: 256 } });
    assert.deepEqual(await sandbox.proxy<Provider>().getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
    assert.equal(sandbox.stats().crashes, 0);
  });
});
