import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestartCoalescer, type RestartTarget } from '../../../../host/src/secrets/rotation/RestartCoalescer.ts';
import { budget } from '../../../helpers/waitFor.ts';

describe('RestartCoalescer', () => {
  it('requests for one worker within the window cause one restart carrying every secret; other workers get their own', async () => {
    const calls: Array<{ workerId: string; targets: string[]; at: number }> = [];
    const start = Date.now();
    const c = new RestartCoalescer({
      debounceMs: 150,
      restart: async (workerId, targets: RestartTarget[]) => void calls.push({ workerId, targets: targets.map((t) => `${t.credentials}/${t.name}`).sort(), at: Date.now() - start }),
    });
    const waits = [
      c.schedule('w1', { credentials: 'vault', name: 'a' }),
      c.schedule('w1', { credentials: 'vault', name: 'a' }),
      c.schedule('w1', { credentials: 'vault', name: 'b' }),
      c.schedule('w2', { credentials: 'vault', name: 'a' }),
    ];
    await Promise.all(waits);
    assert.equal(c.restarts, 2);
    assert.deepEqual(calls.map(({ workerId, targets }) => ({ workerId, targets })).sort((x, y) => x.workerId.localeCompare(y.workerId)), [
      { workerId: 'w1', targets: ['vault/a', 'vault/b'] },
      { workerId: 'w2', targets: ['vault/a'] },
    ]);
    assert.ok(calls.every((x) => x.at >= 140), JSON.stringify(calls));

    // A request after the window closed opens a new one.
    await c.schedule('w1', { credentials: 'vault', name: 'a' });
    assert.equal(c.restarts, 3);
  });

  it('the window is not extended by later requests, so a steady stream still restarts once per window', async () => {
    let restarts = 0;
    const c = new RestartCoalescer({ debounceMs: 100, restart: async () => void restarts++ });
    const started = Date.now();
    const deadline = started + budget(20_000);
    const waits: Array<Promise<void>> = [];
    // A request every 20 ms, about five per window: a window that later requests extended would never close.
    while (restarts < 4) {
      assert.ok(Date.now() < deadline, `only ${restarts} restarts under a steady stream of requests`);
      waits.push(c.schedule('w', { credentials: 'vault', name: 'a' }));
      await new Promise((r) => setTimeout(r, 20)); // pacing of the stream, part of the behaviour under test
    }
    await Promise.all(waits);
    // Once per window, not more: every window lasts at least debounceMs, so no more of them fit in the time taken.
    const elapsed = Date.now() - started;
    assert.ok(restarts <= Math.floor(elapsed / 100) + 1, `restarts: ${restarts} in ${elapsed} ms`);
  });

  it('a failed restart rejects its waiters; stop rejects open windows and refuses new ones', async () => {
    const c = new RestartCoalescer({ debounceMs: 10, restart: async () => Promise.reject(new Error('boom')) });
    await assert.rejects(c.schedule('w', { credentials: 'vault', name: 'a' }), /boom/);
    const slow = new RestartCoalescer({ debounceMs: 10_000, restart: async () => undefined });
    const open = slow.schedule('w', { credentials: 'vault', name: 'a' });
    slow.stop();
    await assert.rejects(open, (e: { code?: string }) => e.code === 'HOST_ERR_ROTATION_STOPPED');
    await assert.rejects(slow.schedule('w', { credentials: 'vault', name: 'a' }), (e: { code?: string }) => e.code === 'HOST_ERR_ROTATION_STOPPED');
    assert.equal(slow.restarts, 0);
  });
});
