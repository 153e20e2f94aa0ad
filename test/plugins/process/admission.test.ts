import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { budget, within } from '../../helpers/waitFor.ts';
import { finalState, openHarness, tempStateDir } from './helpers.ts';

const code = (c: string) => (e: unknown): boolean => {
  assert.ok(isWorkerManagerError(e), String(e));
  assert.equal(e.code, c, e.message);
  return true;
};

const SLEEP = { command: ['sleep', '600'] };

/** A real plugin thread (fixtures/admissionThread.ts) on `stateDir`, ready to create `workerIds` when told to. */
async function startThread(stateDir: string, config: Record<string, unknown>, workerIds: string[]): Promise<{ go(): Promise<Array<{ workerId: string; outcome: string }>>; close(): Promise<void> }> {
  const thread = new Thread(new URL('./fixtures/tsWorker.mjs', import.meta.url), {
    workerData: { entry: new URL('./fixtures/admissionThread.ts', import.meta.url).href, stateDir, config, workerIds },
  });
  const failed = new Promise<never>((_, reject) => {
    thread.once('error', reject);
    thread.once('exit', (exitCode) => reject(new Error(`admission thread exited with ${exitCode}`)));
  });
  failed.catch(() => {});
  const next = <T>(): Promise<T> => Promise.race([new Promise<T>((resolve) => thread.once('message', resolve)), failed]);
  await within(next<'ready'>(), 'an admission thread to open its harness', 60_000);
  let closed = false;
  return {
    go: async () => {
      const reply = next<Array<{ workerId: string; outcome: string }>>();
      thread.postMessage('go');
      return within(reply, 'an admission thread to report its creates');
    },
    close: async () => {
      if (closed) return;
      closed = true;
      const reply = next<'closed'>();
      thread.postMessage('close');
      await within(reply, 'an admission thread to close its harness');
      await thread.terminate();
    },
  };
}

describe('process plugin: admission against maxWorkers', () => {
  // Regression (scale issue): admission used to count every worker folder on each create; it now keeps running
  // totals under a lock shared by the threads, which must stay exact when threads create at the same moment.
  it('threads creating at once on one state dir admit exactly maxWorkers workers between them', { timeout: budget(180_000) }, async (t) => {
    const stateDir = await tempStateDir(t);
    const config = { maxWorkers: 5, pollIntervalMs: 50, leaseStaleMs: 60_000 };
    const threads = await Promise.all([0, 1, 2].map((n) => startThread(stateDir, config, Array.from({ length: 6 }, (_, i) => `t${n}-w${i}`))));
    t.after(() => Promise.all(threads.map((th) => th.close().catch(() => {}))));
    const outcomes = (await Promise.all(threads.map((th) => th.go()))).flat();
    await Promise.all(threads.map((th) => th.close()));
    const created = outcomes.filter((o) => o.outcome === 'created');
    assert.equal(created.length, 5, JSON.stringify(outcomes));
    assert.deepEqual([...new Set(outcomes.filter((o) => o.outcome !== 'created').map((o) => o.outcome))], ['WM_ERR_RESOURCE_EXHAUSTED']);

    const h = await openHarness(t, config, stateDir);
    assert.equal((await h.proxy.getCapacity({})).activeWorkers, 5);
    const listed = await h.proxy.listWorkers({});
    assert.deepEqual(listed.map((w) => w.workerId).sort(), created.map((o) => o.workerId).sort(), 'the refused creates left no worker behind');
    await assert.rejects(h.proxy.createWorker({ workerId: 'one-more', spec: SLEEP }), code('WM_ERR_RESOURCE_EXHAUSTED'));
    await h.proxy.terminateWorker({ workerId: created[0]!.workerId });
    await h.proxy.createWorker({ workerId: 'one-more', spec: SLEEP });
    assert.equal((await h.proxy.getCapacity({})).activeWorkers, 5);
  });

  it('a worker that ended on its own frees its place for the next create, before any watcher has seen it end', async (t) => {
    // Polls far apart: the watcher does not see 'quick' end within the test, so the create must find out by itself.
    const h = await openHarness(t, { maxWorkers: 1, pollIntervalMs: 10_000 });
    await h.proxy.createWorker({ workerId: 'quick', spec: { command: ['true'] } });
    await finalState(h, 'quick');
    await h.proxy.createWorker({ workerId: 'next', spec: SLEEP });
    await assert.rejects(h.proxy.createWorker({ workerId: 'third', spec: SLEEP }), code('WM_ERR_RESOURCE_EXHAUSTED'));
    await h.proxy.terminateWorker({ workerId: 'next' });
    await h.proxy.createWorker({ workerId: 'third', spec: SLEEP });
  });

  it('a restarted worker counts again, and the quota of its spec with it', async (t) => {
    const h = await openHarness(t, { maxWorkers: 1 });
    // Exits at once the first time; after the restart (with `again` in its working folder) it stays up.
    const spec = { command: ['sh', '-c', 'test -e again && exec sleep 600; exit 0'], resources: { memoryMiB: 32 } };
    await h.proxy.createWorker({ workerId: 'phoenix', spec });
    await finalState(h, 'phoenix');
    assert.equal((await h.proxy.getCapacity({})).activeWorkers, 0);
    await writeFile(path.join(h.stateDir, 'workers', 'phoenix', 'work', 'again'), '');
    await h.proxy.restartWorker({ workerId: 'phoenix' });
    const capacity = await h.proxy.getCapacity({});
    assert.equal(capacity.activeWorkers, 1);
    assert.equal(capacity.used.memoryMiB, 32);
    await assert.rejects(h.proxy.createWorker({ workerId: 'other', spec: SLEEP }), code('WM_ERR_RESOURCE_EXHAUSTED'));
    await h.proxy.terminateWorker({ workerId: 'phoenix' });
    await h.proxy.createWorker({ workerId: 'other', spec: SLEEP });
  });

  it('counts the live workers of a state dir that has no admission records (written by an earlier version)', async (t) => {
    const stateDir = await tempStateDir(t);
    const first = await openHarness(t, { maxWorkers: 2 }, stateDir);
    await first.proxy.createWorker({ workerId: 'old-1', spec: SLEEP });
    await first.proxy.createWorker({ workerId: 'old-2', spec: SLEEP });
    await first.close();
    await rm(path.join(stateDir, 'admission'), { recursive: true, force: true });

    const second = await openHarness(t, { maxWorkers: 2 }, stateDir);
    await assert.rejects(second.proxy.createWorker({ workerId: 'new', spec: SLEEP }), code('WM_ERR_RESOURCE_EXHAUSTED'));
    assert.equal((await second.proxy.getCapacity({})).activeWorkers, 2);
    await second.proxy.terminateWorker({ workerId: 'old-1' });
    await second.proxy.createWorker({ workerId: 'new', spec: SLEEP });
  });
});
