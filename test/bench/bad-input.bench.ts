/**
 * bad-input: valid worker listings while a storm of malformed requests arrives, against the same listings without it,
 * on one host with 500 live process workers, over the API with the local admin token (the setup of
 * test/integration/bad-input.test.ts).
 *
 * A listing client keeps LIST_LANES listings of the 500 workers (the suite's query) in flight: QUIET_LISTS of them
 * without the storm, and for as long as the storm lasts with it. The storm is the suite's: 1,000 malformed requests
 * (bad JSON, unknown fields, oversized fields and bodies), 16 in flight. The same listing load in both phases, so the
 * ratio is what the storm costs a listing; LIST_LANES is about the suite's own rate (16 lanes, a listing after every
 * 10th malformed request). Each client runs in a thread of its own (apiClientThread.mjs), as remote callers would, so
 * the host's thread does only the host's work. Quiet and storm phases alternate over ROUNDS, so machine noise hits
 * both alike. Prints the answers the storm got (500s among them), then the headline: listing p95 during the storm
 * against without.
 */
import assert from 'node:assert/strict';
import { adminAuthorization } from '../helpers/adminToken.ts';
import { apiCaller, inLanes, malformedCases, type ApiRequest } from '../helpers/malformedRequests.ts';
import { processProviderYaml, startTestHost } from '../helpers/startTestHost.ts';
import { ClientThread, type ClientRun } from './apiClient.ts';
import { percentile } from './measure.ts';

const LIVE_WORKERS = 500;
const MALFORMED_REQUESTS = 1_000;
/** Malformed requests in flight at once, as in the suite. */
const CONCURRENCY = 16;
const LIST_LANES = 2;
const QUIET_LISTS = 200;
const ROUNDS = 4;
const LIST: ApiRequest = { method: 'GET', url: `/v1/workers?limit=${LIVE_WORKERS}&label=${encodeURIComponent('suite=bad-input')}` };

const t = await startTestHost(`
host: { id: bench-bad-input, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('a', `{ maxWorkers: ${LIVE_WORKERS + CONCURRENCY} }`)}`);
const clients: ClientThread[] = [];
try {
  const apiUrl = t.host.apiUrl ?? assert.fail('the API is not listening');
  const { authorization } = await adminAuthorization(t.host);
  const call = apiCaller(apiUrl, { authorization });
  await inLanes(LIVE_WORKERS, CONCURRENCY, async (i) => {
    const res = await call({ method: 'POST', url: '/v1/workers?wait=running', body: { workerId: `live-${i}`, spec: { command: ['sleep', '600'], labels: { suite: 'bad-input' } } } });
    if (res.status !== 201) throw new Error(`creating live-${i} answered ${res.status}: ${JSON.stringify(res.body)}`);
  });

  // The storm thread gets every request as text, serialized once.
  const malformed = malformedCases('live-0').map(({ method, url, body, raw, contentType, headers }) => ({
    method, url, headers, contentType, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  }));
  const storm = new ClientThread(apiUrl, authorization, malformed, CONCURRENCY);
  const lister = new ClientThread(apiUrl, authorization, [LIST], LIST_LANES);
  clients.push(storm, lister);
  const statuses = new Map<number, number>();
  const quiet: number[] = [];
  const stormy: number[] = [];
  /** Keeps a listing run's latencies, after checking that every listing had all the workers. */
  const keep = (run: ClientRun, into: number[]): void => {
    const bad = run.statuses.filter(([status]) => status !== 200);
    if (bad.length > 0 || run.itemCounts.some((n) => n !== LIVE_WORKERS)) throw new Error(`listings answered ${JSON.stringify(run.statuses)} with ${run.itemCounts.join(', ')} items`);
    into.push(...run.latenciesMs);
  };
  const quietPhase = async (): Promise<void> => keep(await lister.run(QUIET_LISTS), quiet);
  const stormPhase = async (): Promise<void> => {
    const listed = lister.run(null);
    const sent = await storm.run(MALFORMED_REQUESTS);
    lister.stop();
    keep(await listed, stormy);
    for (const [status, n] of sent.statuses) statuses.set(status, (statuses.get(status) ?? 0) + n);
  };

  // Warm-up, not measured: every malformed case once, and listings.
  await storm.run(malformed.length);
  await lister.run(50);
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      await quietPhase();
      await stormPhase();
    } else {
      await stormPhase();
      await quietPhase();
    }
  }

  const stats = (xs: number[]): { p50: number; p95: number } => {
    const sorted = Float64Array.from(xs).sort();
    return { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) };
  };
  const q = stats(quiet);
  const s = stats(stormy);
  const round = (n: number): number => Math.round(n * 1_000) / 1_000;
  const answers = [...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status === 0 ? 'no answer' : status} x${n}`).join(', ');
  console.log(`# storm: ${ROUNDS} x ${MALFORMED_REQUESTS} malformed requests, ${CONCURRENCY} in flight, answered ${answers}; 500s: ${statuses.get(500) ?? 0}`);
  console.log(`# listing of ${LIVE_WORKERS} workers, ${LIST_LANES} in flight: without the storm p50 ${q.p50.toFixed(2)} ms p95 ${q.p95.toFixed(2)} ms (${quiet.length} listings) | during it p50 ${s.p50.toFixed(2)} ms p95 ${s.p95.toFixed(2)} ms (${stormy.length}) | target ratio <= 3`);
  console.log(JSON.stringify({ bench: 'bad-input', metric: 'p95_ms:list-during-storm', value: round(s.p95), baseline: round(q.p95), ratio: round(s.p95 / q.p95), unit: 'ms' }));
} finally {
  await Promise.all(clients.map((c) => c.close()));
  // Stopping the host kills its process workers (test/helpers/startTestHost.ts); terminating 500 is not measured.
  await t.stop();
}
