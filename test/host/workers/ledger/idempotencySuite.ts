import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IdempotencyClaim, WorkerStore } from '../../../../host/src/workers/ledger/index.ts';
import type { StoreHarness, TestClock } from './ledgerFixtures.ts';

/** Idempotency claims, part of the shared adapter contract; time is the test clock's, passed as `now`. */
export function idempotencySuite(harness: StoreHarness, clock: TestClock): void {
  describe('idempotency keys', () => {
    let store: WorkerStore;
    before(async () => {
      store = await harness.open(clock.now);
    });
    after(() => store.close());

    const HOUR = 3_600_000;
    const claim = (extra: Partial<IdempotencyClaim> = {}): IdempotencyClaim => ({
      tenant: 'tenant-a',
      principal: 'user:alice',
      key: 'key-1',
      requestHash: 'sha256:aaa',
      workerId: 'w-1',
      expiresAt: new Date(clock.now().getTime() + HOUR),
      ...extra,
    });

    it('answers new, then replay with the first worker for the same body, then conflict for another body', async () => {
      assert.deepEqual(await store.claimIdempotency(claim()), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ workerId: 'w-2' })), { status: 'replay', workerId: 'w-1' });
      assert.deepEqual(await store.claimIdempotency(claim({ requestHash: 'sha256:bbb', workerId: 'w-3' })), { status: 'conflict' });
      assert.deepEqual(await store.claimIdempotency(claim({ workerId: 'w-4' })), { status: 'replay', workerId: 'w-1' }, 'a conflict does not overwrite');
    });

    it('keeps tenants and principals apart: the same key elsewhere is new', async () => {
      const key = 'key-shared';
      assert.deepEqual(await store.claimIdempotency(claim({ key })), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ key, tenant: 'tenant-b', workerId: 'w-b' })), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ key, principal: 'user:bob', workerId: 'w-bob' })), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ key, tenant: 'tenant-b' })), { status: 'replay', workerId: 'w-b' });
      assert.deepEqual(await store.claimIdempotency(claim({ key, principal: 'user:bob' })), { status: 'replay', workerId: 'w-bob' });
      // Joining the parts naively would make these two the same key.
      assert.deepEqual(await store.claimIdempotency(claim({ key: 'b:c', principal: 'a', workerId: 'w-j1' })), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ key: 'c', principal: 'a:b', workerId: 'w-j2' })), { status: 'new' });
    });

    it('treats an expired claim as absent: the next claim is new and replaces it', async () => {
      const start = clock.now().getTime();
      const expiresAt = new Date(start + 1_000);
      assert.deepEqual(await store.claimIdempotency(claim({ key: 'key-ttl', expiresAt, now: new Date(start) })), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency(claim({ key: 'key-ttl', requestHash: 'other', now: new Date(start + 999) })), { status: 'conflict' });
      const later = new Date(start + 1_000);
      const again = claim({ key: 'key-ttl', requestHash: 'other', workerId: 'w-late', expiresAt: new Date(start + HOUR), now: later });
      assert.deepEqual(await store.claimIdempotency(again), { status: 'new' });
      assert.deepEqual(await store.claimIdempotency({ ...again, workerId: 'w-x' }), { status: 'replay', workerId: 'w-late' });
    });

    it('lets exactly one of several concurrent claims of one key win', async () => {
      const same = await Promise.all(Array.from({ length: 6 }, (_, i) => store.claimIdempotency(claim({ key: 'key-race', workerId: `w-${i}` }))));
      assert.equal(same.filter((r) => r.status === 'new').length, 1);
      const winner = `w-${same.findIndex((r) => r.status === 'new')}`;
      assert.ok(same.every((r) => r.status === 'new' || (r.status === 'replay' && r.workerId === winner)));
      const differing = await Promise.all(Array.from({ length: 6 }, (_, i) => store.claimIdempotency(claim({ key: 'key-race-2', requestHash: `h${i}` }))));
      assert.deepEqual(differing.map((r) => r.status).sort(), ['conflict', 'conflict', 'conflict', 'conflict', 'conflict', 'new']);
    });

    it('purges only claims expired at the given time', async () => {
      const purgeStore = await harness.open(clock.now);
      try {
        const start = clock.now().getTime();
        for (const [key, ttl] of [['p-1', 10], ['p-2', 20], ['p-3', 30]] as const) {
          await purgeStore.claimIdempotency(claim({ key, workerId: key, expiresAt: new Date(start + ttl) }));
        }
        assert.equal(await purgeStore.purgeIdempotency(new Date(start + 20)), 2);
        assert.equal(await purgeStore.purgeIdempotency(new Date(start + 20)), 0);
        assert.deepEqual(await purgeStore.claimIdempotency(claim({ key: 'p-3', workerId: 'x' })), { status: 'replay', workerId: 'p-3' });
        assert.deepEqual(await purgeStore.claimIdempotency(claim({ key: 'p-1', workerId: 'x', now: new Date(start) })), { status: 'new' });
      } finally {
        await purgeStore.close();
      }
    });
  });
}
