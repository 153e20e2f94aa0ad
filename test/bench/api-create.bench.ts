/**
 * api-create: a process worker created until Running through the REST API (`POST /v1/workers?wait=running` over a real
 * listening socket, answered 201 once the worker runs) against calling the host's WorkerService directly for the same
 * spec and the same wait (`createWorker`, then `awaitWorker(id, 'running')`, which is what the route itself waits
 * with), in the same run, on the same host. Subjects alternate, and which goes first alternates too, so machine noise
 * and the provider's own cost hit both alike; the difference is what the API adds: HTTP, authentication and
 * authorization (local admin token), JSON parsing, schema validation, routing, the answer's ledger view, the
 * per-request log line. Terminating is not timed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { processProviderYaml, startTestHost } from '../helpers/startTestHost.ts';
import { percentile } from './measure.ts';

const WARMUP = 5;
const ITERATIONS = 80;
/** How long either subject waits for Running; a worker that does not run within it fails the bench. */
const WAIT_MS = 120_000;
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
  const res = await request('POST', `/v1/workers?wait=running&waitTimeoutMs=${WAIT_MS}`, { spec });
  // 201: the worker reached what the wait asked for; 202 would be a wait that ran out.
  if (res.status !== 201) throw new Error(`POST /v1/workers?wait=running answered ${res.status}: ${JSON.stringify(res.body)}`);
  const { workerId, phase } = res.body as { workerId: string; phase: string };
  // `running` is also satisfied by an end: a `sleep 30` that ended is a failed iteration, not a fast one.
  if (phase !== 'Running') throw new Error(`worker ${workerId} is ${phase}`);
  return workerId;
}

async function direct(): Promise<string> {
  const { worker } = await t.host.workers.createWorker({ spec });
  const { view, reached } = await t.host.workers.awaitWorker(worker.workerId, 'running', { timeoutMs: WAIT_MS });
  if (!reached) throw new Error(`worker ${worker.workerId} was not Running after ${WAIT_MS} ms (${view?.phase ?? 'no record'})`);
  if (view?.phase !== 'Running') throw new Error(`worker ${worker.workerId} is ${view?.phase ?? 'without a record'}`);
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
