import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import type { Worker } from '@worker-manager/plugin-sdk';
import { budget } from '../../helpers/waitFor.ts';
import { finalState, openHarness, processRuns, tempStateDir, waitFor } from './helpers.ts';

/**
 * A command that exits with `code` once the test creates `go` in its working folder: the test decides when it ends
 * (after its thread is gone), where a fixed sleep would race a thread that a loaded machine closes late.
 */
const exitOnGo = (code: number): string[] => ['sh', '-c', `while [ ! -e go ]; do sleep 0.05; done; exit ${code}`];
const go = (stateDir: string, workerId: string): Promise<void> => writeFile(path.join(stateDir, 'workers', workerId, 'work', 'go'), '');

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
    const long = await first.proxy.createWorker({ workerId: 'long', spec: { command: ['sleep', '600'] } });
    await first.proxy.createWorker({ workerId: 'short', spec: { command: exitOnGo(7) } });
    await first.close();
    // 'short' exits while no plugin thread is alive: its wrapper writes the status file alone.
    await go(stateDir, 'short');
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
    await waitFor(async () => !(await processRuns(pid)), 'the worker process to be gone');
  });

  it('workers of a thread that was killed (never closed) keep running, report their exit code, and are adopted once the lease expires', { timeout: budget(120_000) }, async (t) => {
    const stateDir = await tempStateDir(t);
    const created = await createInKilledThread(stateDir, [
      { workerId: 'survivor', spec: { command: ['sh', '-c', 'echo alive; exec sleep 600'] } },
      { workerId: 'quitter', spec: { command: exitOnGo(5) } },
    ]);
    const survivorPid = Number(created[0]?.providerRef);
    assert.equal(await processRuns(survivorPid), true, 'the worker survives its thread');
    // 'quitter' exits only now, with its thread dead.
    await go(stateDir, 'quitter');

    const second = await openHarness(t, { leaseStaleMs: 2_000 }, stateDir);
    // The killed thread's exit record comes from the wrapper shell, not from the dead thread.
    assert.deepEqual(await finalState(second, 'quitter'), { phase: 'Failed', reason: 'ExitCode5', exitCode: 5 });
    assert.deepEqual(await second.proxy.getWorkerStatus({ workerId: 'survivor' }), { phase: 'Running' });
    await waitFor(() => second.events.find((e) => e.workerId === 'quitter' && e.type === 'WorkerFailed'), 'adoption after the stale lease');
    const r = await second.proxy.terminateWorker({ workerId: 'survivor', gracePeriodMs: 1_000 });
    assert.deepEqual(r.state, { phase: 'Terminated', exitCode: 143 });
    await waitFor(async () => !(await processRuns(survivorPid)), 'the survivor process to be gone');
  });

  it('two threads on one state dir: one create wins, either thread serves the worker, and events are not duplicated', async (t) => {
    const stateDir = await tempStateDir(t);
    // Both threads live throughout: a lease must not go stale because a loaded machine delayed a heartbeat.
    const config = { leaseStaleMs: 60_000 };
    const a = await openHarness(t, config, stateDir);
    const b = await openHarness(t, config, stateDir);
    const spec = { command: ['sh', '-c', 'echo shared; exec sleep 600'] };
    const [wa, wb] = await Promise.all([a.proxy.createWorker({ workerId: 'shared', spec }), b.proxy.createWorker({ workerId: 'shared', spec })]);
    assert.equal(wa.providerRef, wb.providerRef, 'one process for one id');
    assert.deepEqual(await b.proxy.pauseWorker({ workerId: 'shared' }), { phase: 'Paused' });
    assert.deepEqual(await a.proxy.getWorkerStatus({ workerId: 'shared' }), { phase: 'Paused' });
    await a.proxy.resumeWorker({ workerId: 'shared' });
    await b.proxy.terminateWorker({ workerId: 'shared' });
    const all = () => [...a.events, ...b.events].filter((e) => e.workerId === 'shared');
    await waitFor(() => all().find((e) => e.type === 'WorkerTerminated'), 'WorkerTerminated');
    // The barrier: a worker that each thread creates (and so watches) after the termination, and that ends at once.
    // A thread reports its watched workers in one pass, so once each has reported its marker's end, it has had its
    // chance to report 'shared' again.
    await Promise.all([a.proxy.createWorker({ workerId: 'marker-a', spec: { command: ['true'] } }), b.proxy.createWorker({ workerId: 'marker-b', spec: { command: ['true'] } })]);
    await waitFor(() => a.events.some((e) => e.workerId === 'marker-a' && e.type === 'WorkerTerminated') && b.events.some((e) => e.workerId === 'marker-b' && e.type === 'WorkerTerminated'), 'each thread to report the end of its marker worker');
    assert.equal(all().filter((e) => e.type === 'WorkerCreated').length, 1);
    assert.equal(all().filter((e) => e.type === 'WorkerTerminated').length, 1);
  });
});
