import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { finalState, logText, openHarness } from './helpers.ts';

// mawk doubles a string until malloc fails; under RLIMIT_AS that happens at the limit, and it says so on stderr.
const ALLOCATE = ['awk', 'BEGIN { s = "x"; while (1) s = s s }'];

describe('process plugin: memory limit (RLIMIT_AS)', () => {
  it('a worker that allocates past resources.memoryMiB fails with OutOfMemory', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'hog', spec: { command: ALLOCATE, resources: { memoryMiB: 32 } } });
    const state = await finalState(h, 'hog');
    assert.equal(state.phase, 'Failed');
    assert.ok(state.phase === 'Failed' && state.reason === 'OutOfMemory', `reason: ${JSON.stringify(state)}`);
    assert.notEqual(state.exitCode, 0);
  });

  it('the limit does not get in the way of a worker that stays under it', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'modest', spec: { command: ['awk', 'BEGIN { s = "x"; for (i = 0; i < 20; i++) s = s s; print length(s) }'], resources: { memoryMiB: 32 } } });
    assert.deepEqual(await finalState(h, 'modest'), { phase: 'Terminated', exitCode: 0 });
    assert.equal((await logText(h, 'modest')).trim(), '1048576');
  });

  it('executeCommand runs under the worker memory limit too', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'limited', spec: { command: ['sleep', '600'], resources: { memoryMiB: 32 } } });
    const r = await h.proxy.executeCommand({ workerId: 'limited', command: ['sh', '-c', 'ulimit -v'] });
    assert.equal(r.stdout.trim(), String(32 * 1024));
    // The deadline only stops a runaway (no limit) allocation: it fails at the limit within a second, or a few under load.
    const hog = await h.proxy.executeCommand({ workerId: 'limited', command: ALLOCATE, timeoutMs: 30_000 });
    assert.notEqual(hog.exitCode, 0);
    assert.match(hog.stderr, /out of memory/i);
    await h.proxy.terminateWorker({ workerId: 'limited' });
  });

  it('getCapacity counts the memory quota of running workers', async (t) => {
    const h = await openHarness(t);
    const before = await h.proxy.getCapacity({});
    await h.proxy.createWorker({ workerId: 'quota', spec: { command: ['sleep', '600'], resources: { memoryMiB: 64, storageMiB: 10 } } });
    const during = await h.proxy.getCapacity({});
    assert.equal(during.used.memoryMiB, before.used.memoryMiB + 64);
    assert.equal(during.used.storageMiB, before.used.storageMiB + 10);
    assert.equal(during.available.memoryMiB, during.total.memoryMiB - during.used.memoryMiB);
    await h.proxy.terminateWorker({ workerId: 'quota' });
    assert.equal((await h.proxy.getCapacity({})).used.memoryMiB, before.used.memoryMiB);
  });
});
