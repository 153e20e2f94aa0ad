/**
 * api-create: a process worker created until Running through the REST API (`POST /v1/workers` over a real listening
 * socket, then `GET /v1/workers/{id}` until Running) against calling the host's WorkerService directly for the same
 * spec (`createWorker`, then `getStatus` until Running), in the same run, on the same host. Subjects alternate, and
 * which goes first alternates too, so machine noise and the provider's own cost hit both alike; the difference is what
 * the API adds: HTTP, authentication and authorization (local admin token), JSON parsing, schema validation, routing,
 * the per-request log line. Terminating is not timed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { processProviderYaml, startTestHost } from '../helpers/startTestHost.ts';
import { percentile } from './measure.ts';

const WARMUP = 5;
const ITERATIONS = 80;
const POLL_MS = 2;
const spec = { command: ['sleep', '30'] };

const t = await startTestHost(`
host: { id: bench-api-create, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('local')}`);
const api = new URL(t.host.apiUrl ?? assert.fail('the API is not listening'));
// node:http with one kept-alive socket, as a scripted client or an orchestrator keeps one. The client runs on the host's
// own thread, so its work is counted against the API (fetch adds a few tenths of a millisecond more of it); a new
// connection per request would add a TCP handshake the API is not to blame for.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
// The local admin token the host wrote at start: the API authenticates (and authorizes) every request, as in production.
const tokenFile = t.host.adminTokenFile;
const authorization = tokenFile === undefined ? undefined : `Bearer ${(await readFile(tokenFile, 'utf8')).trim()}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Created {
  workerId: string;
  phase: string;
}

function request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    if (authorization !== undefined) headers['authorization'] = authorization;
    const req = http.request({ host: api.hostname, port: api.port, path, method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function viaApi(): Promise<string> {
  const res = await request('POST', '/v1/workers', { spec });
  if (res.status !== 201) throw new Error(`POST /v1/workers answered ${res.status}: ${JSON.stringify(res.body)}`);
  const { worker } = res.body as { worker: { workerId: string; state: { phase: string } } };
  const created: Created = { workerId: worker.workerId, phase: worker.state.phase };
  while (created.phase !== 'Running') {
    if (created.phase === 'Failed' || created.phase === 'Terminated') throw new Error(`worker ${created.workerId} is ${created.phase}`);
    await sleep(POLL_MS);
    const got = await request('GET', `/v1/workers/${created.workerId}`);
    if (got.status !== 200) throw new Error(`GET /v1/workers/${created.workerId} answered ${got.status}`);
    created.phase = (got.body as { state: { phase: string } }).state.phase;
  }
  return created.workerId;
}

async function direct(): Promise<string> {
  const { worker } = await t.host.workers.createWorker({ spec });
  let phase = worker.state.phase;
  while (phase !== 'Running') {
    if (phase === 'Failed' || phase === 'Terminated') throw new Error(`worker ${worker.workerId} is ${phase}`);
    await sleep(POLL_MS);
    phase = (await t.host.workers.getStatus(worker.workerId)).state.phase;
  }
  return worker.workerId;
}

async function timed(subject: () => Promise<string>, into?: number[]): Promise<void> {
  const start = performance.now();
  const workerId = await subject();
  into?.push(performance.now() - start);
  await t.host.workers.terminateWorker(workerId, { gracePeriodMs: 500 });
}

const round = (n: number, d = 2): number => Number(n.toFixed(d));
const stats = (xs: number[]): { p50: number; p95: number } => {
  const s = Float64Array.from(xs).sort();
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95) };
};

const viaApiMs: number[] = [];
const directMs: number[] = [];
try {
  for (let i = 0; i < WARMUP; i++) {
    await timed(viaApi);
    await timed(direct);
  }
  for (let i = 0; i < ITERATIONS; i++) {
    if (i % 2 === 0) {
      await timed(viaApi, viaApiMs);
      await timed(direct, directMs);
    } else {
      await timed(direct, directMs);
      await timed(viaApi, viaApiMs);
    }
  }
} finally {
  agent.destroy();
  await t.stop();
}

const a = stats(viaApiMs);
const d = stats(directMs);
console.log(`create-to-Running over ${ITERATIONS} workers each: API p50 ${round(a.p50)} ms p95 ${round(a.p95)} ms | direct WorkerService p50 ${round(d.p50)} ms p95 ${round(d.p95)} ms | ratio p50 ${(a.p50 / d.p50).toFixed(2)} (target <= 1.2) | overhead p50 ${round(a.p50 - d.p50)} ms`);
console.log(JSON.stringify({ bench: 'api-create', metric: 'p95_ms', value: round(a.p95), baseline: round(d.p95), ratio: round(a.p95 / d.p95), unit: 'ms' }));
// Last line: the headline, p50 of create-to-Running through the API against the direct call.
console.log(JSON.stringify({ bench: 'api-create', metric: 'p50_ms', value: round(a.p50), baseline: round(d.p50), ratio: round(a.p50 / d.p50), unit: 'ms' }));
