import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openHarness, waitFor } from './helpers.ts';

describe('process plugin: event order', () => {
  it('emits WorkerCreated before any state change of the worker (regression: StateChanged arrived first under load)', async (t) => {
    // A fast watcher and many concurrent creates make the watcher see new workers while createWorker still waits for them.
    const h = await openHarness(t, { pollIntervalMs: 20 });
    const ids = Array.from({ length: 16 }, (_, i) => `w-order-${i}`);
    await Promise.all(ids.map((workerId) => h.proxy.createWorker({ workerId, spec: { command: ['sh', '-c', 'echo up; exec sleep 600'] } })));
    await waitFor(() => (ids.every((id) => h.events.some((e) => e.type === 'WorkerStateChanged' && e.workerId === id)) ? true : undefined), 'a Running transition for every worker');
    for (const id of ids) {
      const mine = h.events.filter((e) => e.workerId === id);
      assert.equal(mine[0]?.type, 'WorkerCreated', `${id}: ${mine.map((e) => e.type).join(', ')}`);
      assert.equal(mine.filter((e) => e.type === 'WorkerCreated').length, 1);
    }
    await Promise.all(ids.map((workerId) => h.proxy.terminateWorker({ workerId, gracePeriodMs: 0 })));
  });
});
