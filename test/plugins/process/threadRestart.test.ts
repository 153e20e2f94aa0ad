import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import type { Worker } from '@worker-manager/plugin-sdk';
import { finalState, openHarness, processRuns, sleep, tempStateDir, waitFor } from './helpers.ts';

/** Runs fixtures/harnessThread.ts in a real worker thread, returns what it created, then kills the thread. */
async function createInKilledThread(stateDir: string, workers: Array<{ workerId: string; spec: object }>): Promise<Worker[]> {
  const thread = new Thread(new URL('./fixtures/tsWorker.mjs', import.meta.url), {
    workerData: { entry: new URL('./fixtures/harnessThread.ts', import.meta.url).href, stateDir, workers },
  });
  try {
    return await new Promise<Worker[]>((resolve, reject) => {
      thread.once('message', resolve);
      thread.once('error', reject);
      thread.once('exit', (code) => reject(new Error(`thread exited with ${code} before reporting`)));
    });
  } finally {
    await thread.terminate();
  }
}

describe('process plugin: workers outlive the plugin thread', () => {
  it('a new harness on the same state dir lists, watches and terminates the workers of a closed one', async (t) => {
    const stateDir = await tempStateDir(t);
    const first = await openHarness(t, {}, stateDir);
    const long = await first.proxy.createWorker({ workerId: 'long', spec: { command: ['sleep', '30'] } });
    await first.proxy.createWorker({ workerId: 'short', spec: { command: ['sh', '-c', 'sleep 0.4; exit 7'] } });
    await first.close();
    // 'short' exits while no plugin thread is alive: its wrapper writes the status file alone.
    await waitFor(() => existsSync(path.join(stateDir, 'workers', 'short', 'exit')), "'short' to exit");

    const second = await openHarness(t, {}, stateDir);
    const listed = await second.proxy.listWorkers({});
    assert.deepEqual(listed.map((w) => [w.workerId, w.state.phase]).sort(), [['long', 'Running'], ['short', 'Failed']]);
    assert.deepEqual(await second.proxy.getWorkerStatus({ workerId: 'short' }), { phase: 'Failed', reason: 'ExitCode7', exitCode: 7 });
    await waitFor(() => second.events.find((e) => e.workerId === 'short' && e.type === 'WorkerFailed'), 'the adopting thread to report the exit');
    assert.equal(second.events.filter((e) => e.type === 'WorkerCreated').length, 0, 'adoption does not repeat WorkerCreated');

    const pid = Number(long.providerRef);
    assert.equal(await processRuns(pid), true);
    const r = await second.proxy.terminateWorker({ workerId: 'long' });
    assert.deepEqual(r, { workerId: 'long', state: { phase: 'Terminated', exitCode: 143 }, alreadyGone: false });
    assert.equal(await processRuns(pid), false, 'the worker process is gone');
  });

  it('workers of a thread that was killed (never closed) keep running, report their exit code, and are adopted once the lease expires', { timeout: 15_000 }, async (t) => {
    const stateDir = await tempStateDir(t);
    const created = await createInKilledThread(stateDir, [
      { workerId: 'survivor', spec: { command: ['sh', '-c', 'echo alive; exec sleep 30'] } },
      { workerId: 'quitter', spec: { command: ['sh', '-c', 'sleep 0.5; exit 5'] } },
    ]);
    const survivorPid = Number(created[0]?.providerRef);
    assert.equal(await processRuns(survivorPid), true, 'the worker survives its thread');

    const second = await openHarness(t, { leaseStaleMs: 2_000 }, stateDir);
    // The killed thread's exit record comes from the wrapper shell, not from the dead thread.
    assert.deepEqual(await finalState(second, 'quitter'), { phase: 'Failed', reason: 'ExitCode5', exitCode: 5 });
    assert.deepEqual(await second.proxy.getWorkerStatus({ workerId: 'survivor' }), { phase: 'Running' });
    await waitFor(() => second.events.find((e) => e.workerId === 'quitter' && e.type === 'WorkerFailed'), 'adoption after the stale lease', 8_000);
    const r = await second.proxy.terminateWorker({ workerId: 'survivor', gracePeriodMs: 1_000 });
    assert.deepEqual(r.state, { phase: 'Terminated', exitCode: 143 });
    assert.equal(await processRuns(survivorPid), false);
  });

  it('two threads on one state dir: one create wins, either thread serves the worker, and events are not duplicated', async (t) => {
    const stateDir = await tempStateDir(t);
    const a = await openHarness(t, {}, stateDir);
    const b = await openHarness(t, {}, stateDir);
    const spec = { command: ['sh', '-c', 'echo shared; exec sleep 30'] };
    const [wa, wb] = await Promise.all([a.proxy.createWorker({ workerId: 'shared', spec }), b.proxy.createWorker({ workerId: 'shared', spec })]);
    assert.equal(wa.providerRef, wb.providerRef, 'one process for one id');
    assert.deepEqual(await b.proxy.pauseWorker({ workerId: 'shared' }), { phase: 'Paused' });
    assert.deepEqual(await a.proxy.getWorkerStatus({ workerId: 'shared' }), { phase: 'Paused' });
    await a.proxy.resumeWorker({ workerId: 'shared' });
    await b.proxy.terminateWorker({ workerId: 'shared' });
    const all = () => [...a.events, ...b.events].filter((e) => e.workerId === 'shared');
    await waitFor(() => all().find((e) => e.type === 'WorkerTerminated'), 'WorkerTerminated');
    await sleep(300);
    assert.equal(all().filter((e) => e.type === 'WorkerCreated').length, 1);
    assert.equal(all().filter((e) => e.type === 'WorkerTerminated').length, 1);
  });
});
