/**
 * ledger: what the worker ledger costs and how it scales, each against a baseline measured in the same run.
 *  1. create-with-store: a process worker created through the host (WorkerService.createWorker: the record written
 *     Pending, then Creating, then Running) against the same create on a host whose store keeps nothing.
 *  2. list-page-100-of-10000: `GET /v1/workers?limit=100` (first page and later pages by cursor) over a ledger of
 *     10,000 records, sent by a client in a thread of its own (apiClient.ts), against the same query straight on the
 *     SQLite file through the store.
 *  3. adopt-1000: start of a host whose state dir has 1,000 live process workers (listing and reconciling them with
 *     their records), against the start of the same host with none.
 * Prints one JSON line per metric; the last line is the last metric.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { killProcessWorkers } from '../helpers/processWorkers.ts';
import { NullWorkerStore } from '../helpers/nullWorkerStore.ts';
import { ClientThread, type ClientRun } from './apiClient.ts';
import { latencies, percentile } from './measure.ts';

const spec = { command: ['sleep', '600'] };
const yaml = (id: string, stateDir = '${DIR}/state'): string => `
host: { id: ${id}, stateDir: ${stateDir}, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('local', '{ maxWorkers: 2000 }')}`;

function line(metric: string, value: number, baseline: number, unit: string): void {
  const round = (n: number): number => Math.round(n * 1_000) / 1_000;
  console.log(JSON.stringify({ bench: 'ledger', metric, value: round(value), baseline: round(baseline), ratio: round(value / baseline), unit }));
}

/** Kills a host's process workers at once (terminating thousands gracefully is not what is measured), then stops it. */
async function cleanup(t: TestHost): Promise<void> {
  await killAll(t);
  await t.stop();
}

async function killAll(t: TestHost): Promise<void> {
  await Promise.all(t.host.registry.instances().map((i) => (i.stateDir === undefined ? undefined : killProcessWorkers(i.stateDir))));
}

// 1. create with the SQLite ledger vs with a store that keeps nothing.
{
  const withStore = await startTestHost(yaml('bench-ledger'));
  const without = await startTestHost(yaml('bench-ledger-null'), { workerStore: new NullWorkerStore() });
  try {
    const [real, none] = await latencies(
      [() => withStore.host.workers.createWorker({ spec }), () => without.host.workers.createWorker({ spec })],
      { warmup: 5, perRound: 10, rounds: 8 },
    );
    assert.ok(real !== undefined && none !== undefined);
    console.log(`# create p50: with store ${(real.p50 / 1_000).toFixed(2)} ms, no-op store ${(none.p50 / 1_000).toFixed(2)} ms (p95 ${(real.p95 / 1_000).toFixed(2)} / ${(none.p95 / 1_000).toFixed(2)})`);
    line('p50_ms:create-with-store', real.p50 / 1_000, none.p50 / 1_000, 'ms');
  } finally {
    await cleanup(withStore);
    await cleanup(without);
  }
}

// 2. a page of 100 of 10,000 records, through the API vs straight on the store.
{
  const t = await startTestHost(yaml('bench-ledger-list'));
  try {
    const store = t.host.ledger.store;
    const at = Date.parse('2026-01-01T00:00:00Z');
    for (let i = 0; i < 10_000; i++) {
      await store.create({
        id: `w-${String(i).padStart(5, '0')}`, tenant: i % 2 === 0 ? 'team-a' : 'team-b', owner: 'bench', instance: 'local', spec,
        labels: { team: i % 2 === 0 ? 'a' : 'b', shard: String(i % 10) }, state: { phase: 'Running' }, createdAt: new Date(at + i * 1_000).toISOString(),
      });
    }
    const api = new URL(t.host.apiUrl ?? assert.fail('the API is not listening'));
    const token = (await readFile(t.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim();
    const cursors: Array<string | undefined> = [undefined];
    for (let next: string | undefined, i = 0; i < 20; i++) {
      next = (await store.list({ limit: 100, ...(next === undefined ? {} : { cursor: next }) })).nextCursor;
      cursors.push(next);
    }
    // The API caller runs in a thread of its own, as a remote caller would: its own work (building the request,
    // parsing 100 records out of the answer) is not the host's, and on the host's event loop it would be counted as such.
    const client = new ClientThread(api.href, `Bearer ${token}`, cursors.map((cursor) => ({ method: 'GET', url: `/v1/workers?limit=100${cursor === undefined ? '' : `&cursor=${cursor}`}` })), 1);
    let n = 0;
    const direct = async (): Promise<void> => {
      const cursor = cursors[n++ % cursors.length];
      const page = await store.list({ limit: 100, ...(cursor === undefined ? {} : { cursor }) });
      if (page.items.length !== 100) throw new Error(`a page held ${page.items.length} items`);
    };
    const viaApi: number[] = [];
    const straight: number[] = [];
    try {
      const keep = (run: ClientRun): void => {
        if (run.statuses.some(([status]) => status !== 200) || run.itemCounts.some((c) => c !== 100)) throw new Error(`listings answered ${JSON.stringify(run.statuses)} with ${run.itemCounts.join(', ')} items`);
        viaApi.push(...run.latenciesMs);
      };
      await client.run(10);
      for (let i = 0; i < 10; i++) await direct();
      // Alternating rounds, so that machine noise hits both alike.
      for (let round = 0; round < 10; round++) {
        keep(await client.run(20));
        for (let i = 0; i < 20; i++) {
          const start = performance.now();
          await direct();
          straight.push(performance.now() - start);
        }
      }
    } finally {
      await client.close();
    }
    const stats = (ms: number[]): { p50: number; p95: number } => {
      const sorted = Float64Array.from(ms).sort();
      return { p50: percentile(sorted, 0.5) * 1_000, p95: percentile(sorted, 0.95) * 1_000 };
    };
    const [http, raw] = [stats(viaApi), stats(straight)];
    console.log(`# list page of 100 of 10000: API p50 ${(http.p50 / 1_000).toFixed(2)} ms, store p50 ${(raw.p50 / 1_000).toFixed(2)} ms (p95 ${(http.p95 / 1_000).toFixed(2)} / ${(raw.p95 / 1_000).toFixed(2)})`);
    line('p50_ms:list-page-100-of-10000', http.p50 / 1_000, raw.p50 / 1_000, 'ms');
  } finally {
    await t.stop();
  }
}

// 3. host start with 1,000 live process workers to adopt vs with none.
{
  const WORKERS = 1_000;
  const empty = await startTestHost(yaml('bench-ledger-adopt-0'));
  const emptyDir = empty.dir;
  await empty.host.stop();
  let started = performance.now();
  const again = await startTestHost(yaml('bench-ledger-adopt-0', `${emptyDir}/state`));
  const baselineS = (performance.now() - started) / 1_000;
  await again.stop();
  await empty.stop();

  const first = await startTestHost(yaml('bench-ledger-adopt'));
  let second: TestHost | undefined;
  try {
    let issued = 0;
    await Promise.all(Array.from({ length: 10 }, async () => {
      while (issued < WORKERS) {
        issued++;
        await first.host.workers.createWorker({ spec });
      }
    }));
    await first.host.stop();
    started = performance.now();
    second = await startTestHost(yaml('bench-ledger-adopt', `${first.dir}/state`));
    const adoptS = (performance.now() - started) / 1_000;
    const running = (await second.host.ledger.store.list({ phases: ['Running'], limit: 1_000 })).items.length;
    if (running !== WORKERS) throw new Error(`${running} of ${WORKERS} workers were adopted as Running`);
    console.log(`# host start with ${WORKERS} live process workers: ${adoptS.toFixed(2)} s; with none: ${baselineS.toFixed(2)} s`);
    line('s:adopt-1000', adoptS, baselineS, 's');
  } finally {
    await killAll(second ?? first);
    await second?.stop();
    await first.stop();
  }
}
