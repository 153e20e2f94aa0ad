import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { WorkerManagerError} from '@worker-manager/plugin-sdk';
import { type WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { fixtureDir, rejection, startedSandbox } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

/** A file outside every plugin folder, written by the test. */
async function outsideFile(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wm-outside-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'secret.txt');
  await writeFile(file, 'host-only data');
  return file;
}

function assertDenied(error: WorkerManagerError): void {
  assert.equal(error.code, 'WM_ERR_INTERNAL');
  assert.equal(error.details?.['errorCode'], 'ERR_ACCESS_DENIED');
  assert.equal(typeof error.details?.['plugin'], 'string');
}

describe('PluginSandbox restricted tier', () => {
  it('a trusted plugin can read a file outside its package (the check below can fail)', async (t) => {
    const file = await outsideFile(t);
    const { sandbox } = await startedSandbox(t, 'hostile-fs', { isolation: 'trusted' });
    const result = await sandbox.proxy<Provider>().executeCommand({ workerId: 'w1', command: ['read', file] });
    assert.equal(result.stdout, 'host-only data');
  });

  it('a restricted plugin cannot read outside its package or write anywhere, can read its own files, and its thread survives', async (t) => {
    const file = await outsideFile(t);
    const { sandbox } = await startedSandbox(t, 'hostile-fs', { isolation: 'restricted' });
    const fs = sandbox.proxy<Provider>();
    assertDenied(await rejection(fs.executeCommand({ workerId: 'w1', command: ['read', file] })));
    assertDenied(await rejection(fs.executeCommand({ workerId: 'w1', command: ['read', '/etc/hostname'] })));
    const target = join(tmpdir(), `wm-restricted-write-${process.pid}.txt`);
    assertDenied(await rejection(fs.executeCommand({ workerId: 'w1', command: ['write', target, 'x'] })));
    await assert.rejects(stat(target), { code: 'ENOENT' });
    const own = await fs.executeCommand({ workerId: 'w1', command: ['read', join(fixtureDir('hostile-fs'), 'package.json')] });
    assert.equal(JSON.parse(own.stdout).name, '@fixtures/hostile-fs');
    assert.equal(sandbox.stats().crashes, 0);
    assert.equal(sandbox.stats().state, 'running');
  });

  it('a trusted plugin can start a child process and a worker thread (the checks below can fail)', async (t) => {
    const { sandbox } = await startedSandbox(t, 'hostile-spawn', { isolation: 'trusted' });
    const spawn = sandbox.proxy<Provider>();
    assert.equal((await spawn.executeCommand({ workerId: 'w1', command: ['spawn'] })).stdout, 'spawned');
    assert.equal((await spawn.executeCommand({ workerId: 'w1', command: ['worker'] })).stdout, 'worker ran');
  });

  it('a restricted plugin can start neither a child process nor a worker thread', async (t) => {
    const { sandbox } = await startedSandbox(t, 'hostile-spawn', { isolation: 'restricted' });
    const spawn = sandbox.proxy<Provider>();
    assertDenied(await rejection(spawn.executeCommand({ workerId: 'w1', command: ['spawn'] })));
    assertDenied(await rejection(spawn.executeCommand({ workerId: 'w1', command: ['worker'] })));
    assert.deepEqual(await spawn.getWorkerStatus({ workerId: 'w1' }), { phase: 'Running' });
  });

  it('a restricted plugin sees only its granted environment and still serves every kind of call', async (t) => {
    process.env['WM_SANDBOX_TEST_HOST_SECRET'] = 'must-not-leak';
    t.after(() => delete process.env['WM_SANDBOX_TEST_HOST_SECRET']);
    const env = await startedSandbox(t, 'hostile-env', { isolation: 'restricted', env: { GRANTED: 'yes' } });
    const result = await env.sandbox.proxy<Provider>().executeCommand({ workerId: 'w1', command: ['env'] });
    assert.deepEqual(JSON.parse(result.stdout), { GRANTED: 'yes' });

    const { sandbox, events } = await startedSandbox(t, 'echo', { isolation: 'restricted' });
    const echo = sandbox.proxy<Provider>();
    await echo.createWorker({ workerId: 'w1', spec: {} });
    await echo.executeCommand({ workerId: 'w1', command: ['emit', 'restricted hello'] });
    const chunks: string[] = [];
    for await (const chunk of await echo.getLogs({ workerId: 'w1' })) chunks.push(chunk.data);
    assert.equal(chunks.length, 3);
    assert.equal((await rejection(echo.createWorker({ workerId: 'BAD', spec: {} }))).code, 'WM_ERR_VALIDATION');
    assert.equal(events.length, 1);
  });

  it('a restricted plugin that crashes restarts like a trusted one', async (t) => {
    const { sandbox } = await startedSandbox(t, 'hostile-exit', { isolation: 'restricted' });
    const proxy = sandbox.proxy<Provider>();
    assert.equal((await rejection(proxy.getWorkerStatus({ workerId: 'exit' }))).code, 'HOST_ERR_PLUGIN_CRASHED');
    assert.deepEqual(await proxy.getWorkerStatus({ workerId: 'fine' }), { phase: 'Running' });
  });

  it('builds the restricted bundle in a temp folder and removes it on stop', async (t) => {
    const instance = `bundle-cleanup-${process.pid}`;
    const bundles = async (): Promise<string[]> => (await readdir(tmpdir())).filter((name) => name.startsWith(`wm-sandbox-echo-${instance}-`));
    const { sandbox } = await startedSandbox(t, 'echo', { isolation: 'restricted', instance });
    const [bundle] = await bundles();
    assert.ok(bundle !== undefined, 'a bundle folder exists while the sandbox runs');
    assert.deepEqual((await readdir(join(tmpdir(), bundle))).filter((f) => !f.startsWith('chunk-')).sort(), ['plugin.mjs', 'thread.mjs']);
    await sandbox.stop();
    assert.deepEqual(await bundles(), []);
  });
});
