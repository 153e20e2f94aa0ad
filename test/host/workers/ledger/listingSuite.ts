import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { LedgerState, ListQuery, NewWorkerRecord, WorkerStore } from '../../../../host/src/workers/ledger/index.ts';
import { newWorker, testClock, type StoreHarness } from './ledgerFixtures.ts';

const STATES: readonly LedgerState[] = [
  { phase: 'Pending' },
  { phase: 'Running' },
  { phase: 'Failed', reason: 'OOMKilled' },
  { phase: 'Paused' },
  { phase: 'Starting', pendingReason: 'ImagePull' },
  { phase: 'Terminated', exitCode: 0 },
];
const TEAMS = ['a', 'b', 'c', 'd', 'e'];
const BASE = Date.parse('2030-06-01T00:00:00.000Z');

/**
 * Record i of the data set. Three records share each createdAt, so the id must break ties; every attribute cycles with
 * a different period, so filters cut across each other. `tier` is absent from odd records (for !k, k!=v, notin).
 */
function datasetWorker(i: number): NewWorkerRecord {
  const labels: Record<string, string> = { team: TEAMS[i % 5] as string, 'example.com/zone': `z${i % 7}` };
  if (i % 2 === 0) labels['tier'] = i % 4 === 0 ? 'gold' : 'silver';
  return newWorker(`w-${String(i).padStart(5, '0')}`, {
    tenant: `tenant-${i % 3}`,
    instance: `inst-${i % 4}`,
    labels,
    state: STATES[i % STATES.length] as LedgerState,
    createdAt: new Date(BASE + Math.floor(i / 3) * 1_000).toISOString(),
  });
}

/** Walks every page of `query` and returns the ids in order, and how many pages it took. */
async function walk(store: WorkerStore, query: ListQuery): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.list({ ...query, ...(cursor === undefined ? {} : { cursor }) });
    pages += 1;
    assert.ok(page.items.length <= (query.limit ?? 100));
    if (page.nextCursor !== undefined) assert.equal(page.items.length, query.limit ?? 100, 'only the last page may be short');
    ids.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return { ids, pages };
}

/** Listing: filters, selectors and cursor pagination over one data set, compared with filters written out here. */
export function listingSuite(harness: StoreHarness): void {
  const n = harness.paginationRecords;
  describe(`listing ${n} records`, () => {
    let store: WorkerStore;
    const data = Array.from({ length: n }, (_, i) => datasetWorker(i));
    // The expected order, computed independently of the store: createdAt, then id.
    const ordered = [...data].sort((a, b) => ((a.createdAt as string) + a.id < (b.createdAt as string) + b.id ? -1 : 1));
    const idsWhere = (keep: (w: NewWorkerRecord) => boolean): string[] => ordered.filter(keep).map((w) => w.id);
    const label = (w: NewWorkerRecord, key: string): string | undefined => w.labels?.[key];

    before(async () => {
      store = await harness.open(testClock().now);
      // Inserted in a scrambled order, so that insertion order cannot pass for createdAt order.
      const order = data.map((_, i) => (i * 7_919) % n);
      assert.equal(new Set(order).size, n, 'the scramble must be a permutation');
      for (let i = 0; i < n; i += 50) await Promise.all(order.slice(i, i + 50).map((j) => store.create(data[j] as NewWorkerRecord)));
    });
    after(() => store.close());

    it('walks every page ascending and descending: every record exactly once, in (createdAt, id) order', async (t) => {
      const started = performance.now();
      const asc = await walk(store, { limit: 100 });
      const ms = performance.now() - started;
      t.diagnostic(`${harness.name}: ascending walk of ${n} records in ${asc.pages} pages of 100 took ${ms.toFixed(0)} ms (${(ms / asc.pages).toFixed(1)} ms/page)`);
      assert.equal(asc.pages, Math.ceil(n / 100));
      assert.deepEqual(asc.ids, ordered.map((w) => w.id));
      const desc = await walk(store, { limit: 1000, order: 'desc' });
      assert.deepEqual(desc.ids, ordered.map((w) => w.id).reverse());
    });

    it('pages 100 records by default and refuses a bad limit or cursor', async () => {
      const first = await store.list();
      assert.equal(first.items.length, Math.min(100, n));
      assert.equal(typeof first.nextCursor, 'string');
      assert.match(first.nextCursor as string, /^[A-Za-z0-9_-]+$/, 'base64url');
      for (const limit of [0, 1001, 2.5]) await assert.rejects(store.list({ limit }), { code: 'HOST_ERR_WORKER_LIST_QUERY_INVALID' });
      await assert.rejects(store.list({ cursor: 'bm90LWEtY3Vyc29y' }), { code: 'HOST_ERR_WORKER_LIST_QUERY_INVALID' });
      await assert.rejects(store.list({ phases: ['Sleeping' as never] }), { code: 'HOST_ERR_WORKER_LIST_QUERY_INVALID' });
      await assert.rejects(store.list({ selector: 'team in (a' }), { code: 'HOST_ERR_LABEL_SELECTOR_INVALID' });
    });

    const cases: Array<[string, ListQuery, (w: NewWorkerRecord) => boolean]> = [
      ['phase Running', { phases: ['Running'] }, (w) => w.state?.phase === 'Running'],
      ['phases Failed or Paused', { phases: ['Failed', 'Paused'] }, (w) => w.state?.phase === 'Failed' || w.state?.phase === 'Paused'],
      ['no phase at all', { phases: [] }, () => false],
      ['instance inst-1', { instance: 'inst-1' }, (w) => w.instance === 'inst-1'],
      ['tenant tenant-2', { tenant: 'tenant-2' }, (w) => w.tenant === 'tenant-2'],
      ['k=v', { selector: 'team=a' }, (w) => label(w, 'team') === 'a'],
      ['k==v', { selector: 'team==b' }, (w) => label(w, 'team') === 'b'],
      ['k!=v (also matches a missing key)', { selector: 'tier!=gold' }, (w) => label(w, 'tier') !== 'gold'],
      ['k in (a,b)', { selector: 'team in (a, c)' }, (w) => ['a', 'c'].includes(label(w, 'team') as string)],
      ['k notin (a,b) (also matches a missing key)', { selector: 'tier notin (gold,silver)' }, (w) => label(w, 'tier') === undefined],
      ['k (exists)', { selector: 'tier' }, (w) => label(w, 'tier') !== undefined],
      ['!k (does not exist)', { selector: '!tier' }, (w) => label(w, 'tier') === undefined],
      ['a prefixed key', { selector: 'example.com/zone=z3' }, (w) => label(w, 'example.com/zone') === 'z3'],
      ['a value no record has', { selector: 'team=zz' }, () => false],
      [
        'selector AND phase AND tenant AND instance',
        { selector: 'team in (a,b),tier=gold,example.com/zone!=z1', phases: ['Pending', 'Paused', 'Running'], tenant: 'tenant-0', instance: 'inst-0' },
        (w) => ['a', 'b'].includes(label(w, 'team') as string) && label(w, 'tier') === 'gold' && label(w, 'example.com/zone') !== 'z1' &&
          ['Pending', 'Paused', 'Running'].includes(w.state?.phase as string) && w.tenant === 'tenant-0' && w.instance === 'inst-0',
      ],
    ];
    for (const [title, query, keep] of cases) {
      it(`filters by ${title}, across pages`, async () => {
        const expected = idsWhere(keep);
        const limit = Math.min(1_000, Math.max(1, Math.ceil(expected.length / 3)));
        const { ids } = await walk(store, { ...query, limit });
        assert.deepEqual(ids, expected);
        const desc = await walk(store, { ...query, limit, order: 'desc' });
        assert.deepEqual(desc.ids, [...expected].reverse());
      });
    }
  });
}
