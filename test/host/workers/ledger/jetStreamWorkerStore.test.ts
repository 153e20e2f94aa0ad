import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamWorkerStore } from '../../../../host/src/workers/ledger/adapters/jetstream/JetStreamWorkerStore.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../../helpers/natsServer.ts';
import { newWorker, testClock } from './ledgerFixtures.ts';
import { workerStoreSuite } from './workerStoreSuite.ts';

// Throws under CI=true when nats-server is missing, so this suite fails there; it skips (loudly) only on a dev machine.
const available = natsServerAvailable();

describe('JetStreamWorkerStore on a real nats-server', { skip: available.ok ? false : available.message }, () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let buckets = 0;
  before(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url, name: 'ledger-test' });
  });
  after(async () => {
    await nc?.close();
    await nats?.dispose();
  });

  // list() scans the bucket (O(n) per page), so the data set is 1,000 records here instead of SQLite's 10,000.
  workerStoreSuite({
    name: 'jetstream-kv',
    paginationRecords: 1_000,
    open: (now) => JetStreamWorkerStore.open({ connection: nc, bucketPrefix: `t${(buckets += 1)}`, now }),
  });

  it('keeps records in the <prefix>_workers bucket under the worker id, so a second host sees them', async () => {
    const clock = testClock();
    const a = await JetStreamWorkerStore.open({ connection: nc, bucketPrefix: 'shared', now: clock.now });
    const other = await connect({ servers: nats.url, name: 'ledger-test-2' });
    try {
      const b = await JetStreamWorkerStore.open({ connection: other, bucketPrefix: 'shared', now: clock.now });
      const created = await a.create(newWorker('seen-twice'));
      assert.deepEqual(await b.get('seen-twice'), created);
      const moved = await b.transition('seen-twice', { phase: 'Creating' });
      assert.ok(moved.ok);
      assert.deepEqual(await a.get('seen-twice'), moved.record);
      await assert.rejects(a.update('seen-twice', { stale: true }, { expectedRevision: 1 }), { code: 'HOST_ERR_WORKER_REVISION_CONFLICT' });
    } finally {
      await other.close();
    }
  });

  it('recomputes a change on the fresh record when another writer got in between its read and its write, within maxCasAttempts', async () => {
    // The store's clock runs between its read and its compare-and-set write; this one slips in a write of its own,
    // published on the same connection just before the store's (so the server stores it first, deterministically).
    let interfere = 0;
    let latest: Record<string, unknown> | undefined;
    const now = (): Date => {
      if (interfere > 0 && latest !== undefined) {
        interfere -= 1;
        latest = { ...latest, labels: { touched: String(interfere) }, revision: (latest['revision'] as number) + 1 };
        nc.publish('$KV.cas_workers.hot', JSON.stringify(latest));
      }
      return new Date('2030-01-01T00:00:00.000Z');
    };
    const store = await JetStreamWorkerStore.open({ connection: nc, bucketPrefix: 'cas', maxCasAttempts: 3, now });
    latest = { ...(await store.create(newWorker('hot', { state: { phase: 'Running' } }))) };
    interfere = 2;
    const outcome = await store.transition('hot', { phase: 'Degraded', reason: 'HealthCheckFailed' });
    assert.ok(outcome.ok);
    assert.deepEqual(outcome.record.labels, { touched: '0' }, 'the other writer\'s change is kept');
    assert.equal(outcome.record.revision, 4);
    assert.deepEqual(await store.get('hot'), outcome.record);

    latest = { ...outcome.record };
    interfere = 3;
    await assert.rejects(store.transition('hot', { phase: 'Running' }), { code: 'HOST_ERR_WORKER_REVISION_CONFLICT' });
    assert.equal((await store.get('hot'))?.state.phase, 'Degraded', 'the change that lost every race is not applied');
  });

  it('reports a lost connection as HOST_ERR_WORKER_STORE_UNAVAILABLE', async () => {
    const own = await connect({ servers: nats.url });
    const store = await JetStreamWorkerStore.open({ connection: own, bucketPrefix: 'lost' });
    await store.create(newWorker('cut-off'));
    await own.close();
    await assert.rejects(store.get('cut-off'), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
    await assert.rejects(store.transition('cut-off', { phase: 'Creating' }), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
    await assert.rejects(store.list(), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
  });

  it('fails to open with HOST_ERR_WORKER_STORE_UNAVAILABLE on a connection without JetStream', async () => {
    const closed = await connect({ servers: nats.url });
    await closed.close();
    await assert.rejects(JetStreamWorkerStore.open({ connection: closed }), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
  });
});
