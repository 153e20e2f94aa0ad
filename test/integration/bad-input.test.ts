import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import {
  MAX_ARG_LENGTH, MAX_ARGS, MAX_ENV_ENTRIES, MAX_ENV_VALUE_LENGTH, MAX_LABELS, MAX_LIST_ITEMS, MAX_PATH_LENGTH, MAX_TIMER_MS, readProcStat,
} from '@worker-manager/plugin-sdk';
import { processRuns } from '../plugins/process/helpers.ts';
import { adminAuthorization } from '../helpers/adminToken.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// A real host with the process provider and the API, running LIVE_WORKERS workers, answers a stream of malformed
// requests (interleaved with valid listings) with a 4xx that names the offending field, never a 500, and keeps serving.
// Regression: a 900 KB arg, env value or workingDir (under the body limit) reached execve and came back as a 500.

/** Workers kept running while the malformed requests arrive. */
const LIVE_WORKERS = 100;
/** Malformed requests sent. */
const MALFORMED_REQUESTS = 1_000;
/** A valid listing after every this many malformed requests. */
const LIST_EVERY = 10;
/** Requests in flight at once. */
const CONCURRENCY = 16;
const SUITE_LABEL = 'suite=bad-input';

interface Case {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  /** A JSON value (sent as application/json) or raw text. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
  status: number;
  code: string;
  /** The field the answer must name: a prefix of `details.path` (or of the plugin boundary's `details.instancePath`). */
  path: string;
}

interface ErrorBody {
  code?: unknown;
  message?: unknown;
  details?: { path?: unknown; instancePath?: unknown };
}

const cmd = ['true'];
const big = (n: number, c = 'x'): string => c.repeat(n);
const entries = (n: number, value: (i: number) => string, key = (i: number) => `K${i}`): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [key(i), value(i)]));

/** The malformed requests: each kind of bad JSON, unknown field, wrong type, oversized field, oversized body and query. */
function malformedCases(liveWorker: string): Case[] {
  const create = (name: string, body: unknown, status: number, path: string, code = 'WM_ERR_VALIDATION'): Case => ({ name, method: 'POST', url: '/v1/workers', body, status, code, path });
  const spec = (name: string, extra: Record<string, unknown>, path: string): Case => create(name, { spec: { command: cmd, ...extra } }, 400, `/body/spec${path}`);
  const raw = (name: string, text: string): Case => ({ name, method: 'POST', url: '/v1/workers', raw: text, contentType: 'application/json', status: 400, code: 'WM_ERR_VALIDATION', path: '/body' });
  const list = (name: string, query: string, path: string): Case => ({ name, method: 'GET', url: `/v1/workers?${query}`, status: 400, code: 'WM_ERR_VALIDATION', path });
  return [
    // Not JSON, or not the JSON of a request.
    raw('truncated JSON', '{"spec": {"command": ["true"]'),
    raw('trailing comma', '{"spec": {"command": ["true"]},}'),
    raw('trailing garbage', '{"spec": {"command": ["true"]}}garbage'),
    raw('empty JSON body', ''),
    raw('NUL byte', '\u0000'),
    raw('JSON null', 'null'),
    raw('JSON array', '[1, 2, 3]'),
    raw('JSON string', '"spec"'),
    raw('deeply nested arrays', `${'['.repeat(100_000)}${']'.repeat(100_000)}`),
    raw('deeply nested field', `{"spec": {"command": ["true"], "env": ${'{"A":'.repeat(20_000)}1${'}'.repeat(20_000)}}}`),
    raw('__proto__ key', '{"spec": {"command": ["true"]}, "__proto__": {"polluted": true}}'),
    raw('constructor.prototype key', '{"spec": {"command": ["true"]}, "constructor": {"prototype": {"polluted": true}}}'),
    { name: 'text/plain body', method: 'POST', url: '/v1/workers', raw: '{"spec": {"command": ["true"]}}', contentType: 'text/plain', status: 415, code: 'HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE', path: '/headers/content-type' },
    // Unknown fields, missing and wrongly typed ones.
    create('unknown top-level field', { spec: { command: cmd }, bogus: 1 }, 400, '/body/bogus'),
    spec('unknown spec field', { foo: 1 }, '/foo'),
    spec('unknown resources field', { resources: { cpus: 1 } }, '/resources/cpus'),
    spec('unknown network field', { network: { type: 'Private', extra: true } }, '/network/extra'),
    create('no spec', {}, 400, '/body/spec'),
    create('spec is a string', { spec: 'sleep 600' }, 400, '/body/spec'),
    spec('command is a string', { command: 'sleep 600' }, '/command'),
    spec('command is empty', { command: [] }, '/command'),
    spec('arg is a number', { args: [1] }, '/args/0'),
    spec('env value is a number', { env: { A: 1 } }, '/env/A'),
    spec('env is an array', { env: [] }, '/env'),
    spec('label value is a number', { labels: { k: 1 } }, '/labels/k'),
    spec('timeoutMs is a string', { timeoutMs: '5' }, '/timeoutMs'),
    spec('timeoutMs is fractional', { timeoutMs: 1.5 }, '/timeoutMs'),
    spec('timeoutMs is negative', { timeoutMs: -1 }, '/timeoutMs'),
    spec('memoryMiB is a word', { resources: { memoryMiB: 'lots' } }, '/resources/memoryMiB'),
    spec('secret ref without mount', { secretRefs: [{ name: 'db' }] }, '/secretRefs/0/mount'),
    create('workerId with capitals', { spec: { command: cmd }, workerId: 'Not_Valid' }, 400, '/body/workerId'),
    create('workerId is a number', { spec: { command: cmd }, workerId: 5 }, 400, '/body/workerId'),
    create('provider with capitals', { spec: { command: cmd }, provider: 'UPPER' }, 400, '/body/provider'),
    // Each field over its limit, the 900 KB ones of the original report first.
    spec('900 KB arg', { args: [big(900_000)] }, '/args/0'),
    spec('900 KB env value', { env: { BIG: big(900_000) } }, '/env/BIG'),
    spec('900 KB workingDir', { workingDir: big(900_000) }, '/workingDir'),
    spec('arg one over the limit', { args: ['ok', big(MAX_ARG_LENGTH + 1)] }, '/args/1'),
    spec('too many args', { args: Array.from({ length: MAX_ARGS + 1 }, () => 'a') }, '/args'),
    spec('command element over the limit', { command: ['echo', big(MAX_ARG_LENGTH + 1)] }, '/command/1'),
    spec('too many command elements', { command: Array.from({ length: MAX_ARGS + 1 }, () => 'a') }, '/command'),
    spec('arg with a NUL', { args: ['a\u0000b'] }, '/args/0'),
    spec('env value over the limit', { env: { BIG: big(MAX_ENV_VALUE_LENGTH + 1) } }, '/env/BIG'),
    spec('env value with a NUL', { env: { A: 'a\u0000b' } }, '/env/A'),
    spec('too many env entries', { env: entries(MAX_ENV_ENTRIES + 1, () => 'v') }, '/env'),
    spec('env name over the limit', { env: { [big(257, 'A')]: 'v' } }, '/env'),
    spec('env name with =', { env: { 'A=B': 'v' } }, '/env'),
    spec('env name with a NUL', { env: { 'A\u0000': 'v' } }, '/env'),
    spec('workingDir over the limit', { workingDir: big(MAX_PATH_LENGTH + 1) }, '/workingDir'),
    spec('workingDir with a NUL', { workingDir: 'a\u0000b' }, '/workingDir'),
    // Within the contract, refused by the system: the provider names the field of its own params.
    create('workingDir component the file system refuses', { spec: { command: cmd, workingDir: big(300) } }, 400, '/spec/workingDir'),
    spec('too many labels', { labels: entries(MAX_LABELS + 1, () => 'v', (i) => `k${i}`) }, '/labels'),
    spec('label name over 63', { labels: { [big(64, 'k')]: 'v' } }, '/labels'),
    spec('label prefix over 253', { labels: { [`${big(254, 'p')}/k`]: 'v' } }, '/labels'),
    spec('label key with a space', { labels: { 'a b': 'v' } }, '/labels'),
    spec('label key with =', { labels: { 'a=b': 'v' } }, '/labels'),
    spec('label value over 63', { labels: { k: big(64) } }, '/labels/k'),
    create('too many request labels', { spec: { command: cmd }, labels: entries(MAX_LABELS + 1, () => 'v', (i) => `k${i}`) }, 400, '/body/labels'),
    create('request and spec labels together over the limit', {
      spec: { command: cmd, labels: entries(40, () => 'v', (i) => `s${i}`) }, labels: entries(40, () => 'v', (i) => `r${i}`),
    }, 400, '/spec/labels'),
    spec('image over the limit', { image: big(1025) }, '/image'),
    spec('user over the limit', { user: big(257) }, '/user'),
    spec('too many ports', { ports: Array.from({ length: MAX_LIST_ITEMS + 1 }, (_, i) => ({ containerPort: i + 1 })) }, '/ports'),
    spec('too many volumes', { volumes: Array.from({ length: MAX_LIST_ITEMS + 1 }, (_, i) => ({ mountPath: `/v${i}`, source: { type: 'EmptyDir' } })) }, '/volumes'),
    spec('too many secret refs', { secretRefs: Array.from({ length: MAX_LIST_ITEMS + 1 }, (_, i) => ({ name: `s${i}`, mount: 'env' })) }, '/secretRefs'),
    spec('secret ref path over the limit', { secretRefs: [{ name: 's', mount: 'file', path: big(MAX_PATH_LENGTH + 1) }] }, '/secretRefs/0/path'),
    spec('timeoutMs past what a timer takes', { timeoutMs: MAX_TIMER_MS + 1 }, '/timeoutMs'),
    spec('health-check command element over the limit', { healthCheck: { type: 'command', command: [big(MAX_ARG_LENGTH + 1)] } }, '/healthCheck'),
    // Every field within its limit, the whole spec not; then the whole body over api.bodyLimitBytes.
    create('spec over MAX_SPEC_BYTES in args', { spec: { command: cmd, args: Array.from({ length: 9 }, () => big(31_000)) } }, 413, '/spec', 'HOST_ERR_SPEC_TOO_LARGE'),
    create('spec over MAX_SPEC_BYTES in env', { spec: { command: cmd, env: entries(100, () => big(3_000)) } }, 413, '/spec', 'HOST_ERR_SPEC_TOO_LARGE'),
    create('body over the body limit', { spec: { command: cmd, args: Array.from({ length: 40 }, () => big(30_000)) } }, 413, '/body', 'HOST_ERR_API_BODY_TOO_LARGE'),
    // Headers.
    { ...create('idempotency key with a space', { spec: { command: cmd } }, 400, '/headers/idempotency-key'), headers: { 'idempotency-key': 'a b' } },
    { ...create('idempotency key over 256', { spec: { command: cmd } }, 400, '/headers/idempotency-key'), headers: { 'idempotency-key': big(300) } },
    // Listing queries, label selectors first.
    list('label without =', 'label=novalue', '/querystring/label'),
    list('label without key', `label=${encodeURIComponent('=v')}`, '/querystring/label'),
    list('label value over 63', `label=${encodeURIComponent(`k=${big(64)}`)}`, '/querystring/label'),
    list('label key with a space', `label=${encodeURIComponent('a b=c')}`, '/querystring/label'),
    list('label key with a NUL', `label=${encodeURIComponent('a\u0000=c')}`, '/querystring/label'),
    list('label key over the limit', `label=${encodeURIComponent(`${big(400, 'k')}=v`)}`, '/querystring/label'),
    list('too many labels', Array.from({ length: MAX_LABELS + 1 }, (_, i) => `label=k${i}%3Dv`).join('&'), '/querystring/label'),
    list('malformed percent-encoding', 'label=a%ZZ', '/querystring/label'),
    list('limit 0', 'limit=0', '/querystring/limit'),
    list('limit over 500', 'limit=501', '/querystring/limit'),
    list('limit a word', 'limit=many', '/querystring/limit'),
    list('empty cursor', 'cursor=', '/querystring/cursor'),
    list('forged cursor', 'cursor=bm90LWEtY3Vyc29y', '/querystring/cursor'),
    list('cursor over the limit', `cursor=${big(2_000)}`, '/querystring/cursor'),
    list('provider with capitals', 'provider=UPPER', '/querystring/provider'),
    list('unknown parameter', 'foo=1', '/querystring/foo'),
    list('empty state', 'state=', '/querystring/state'),
    // Per-worker routes.
    { name: 'worker id with capitals', method: 'GET', url: '/v1/workers/Not_Valid', status: 400, code: 'WM_ERR_VALIDATION', path: '/params/id' },
    { name: 'worker id over the router limit', method: 'GET', url: `/v1/workers/${big(3_000, 'a')}`, status: 400, code: 'WM_ERR_VALIDATION', path: '/' },
    { name: 'negative grace period', method: 'DELETE', url: `/v1/workers/${liveWorker}?gracePeriodMs=-1`, status: 400, code: 'WM_ERR_VALIDATION', path: '/querystring/gracePeriodMs' },
    { name: 'exec with an empty command', method: 'POST', url: `/v1/workers/${liveWorker}/exec`, body: { command: [] }, status: 400, code: 'WM_ERR_VALIDATION', path: '/body/command' },
    { name: 'exec with a 900 KB argument', method: 'POST', url: `/v1/workers/${liveWorker}/exec`, body: { command: ['echo', big(900_000)] }, status: 400, code: 'WM_ERR_VALIDATION', path: '/body/command/1' },
    { name: 'exec with a NUL', method: 'POST', url: `/v1/workers/${liveWorker}/exec`, body: { command: ['echo', 'a\u0000'] }, status: 400, code: 'WM_ERR_VALIDATION', path: '/body/command/1' },
    { name: 'exec with timeout 0', method: 'POST', url: `/v1/workers/${liveWorker}/exec`, body: { command: ['true'], timeoutMs: 0 }, status: 400, code: 'WM_ERR_VALIDATION', path: '/body/timeoutMs' },
  ];
}

/** Process groups that still have a live (not zombie) member. */
async function liveProcessGroups(): Promise<Set<number>> {
  const groups = new Set<number>();
  for (const name of await readdir('/proc')) {
    const stat = /^\d+$/.test(name) ? readProcStat(Number(name)) : undefined;
    if (stat !== undefined && stat.state !== 'Z' && stat.state !== 'X') groups.add(stat.pgrp);
  }
  return groups;
}

describe('bad input never gives a 500', { timeout: budget(600_000) }, () => {
  let t: TestHost;
  let call: (c: Pick<Case, 'method' | 'url' | 'body' | 'raw' | 'contentType' | 'headers'>) => Promise<{ status: number; body: ErrorBody & { items?: unknown[] } }>;
  const pids: number[] = [];

  before(async () => {
    t = await startTestHost(`
host: { id: bad-input, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('a', `{ maxWorkers: ${LIVE_WORKERS + 16} }`)}`);
    const url = t.host.apiUrl ?? assert.fail('the API is not listening');
    const auth = await adminAuthorization(t.host);
    call = async (c) => {
      const headers: Record<string, string> = { ...auth, ...c.headers };
      let body: string | undefined;
      if (c.raw !== undefined) {
        body = c.raw;
        headers['content-type'] = c.contentType ?? 'application/json';
      } else if (c.body !== undefined) {
        body = JSON.stringify(c.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(new URL(c.url, url), { method: c.method, headers, ...(body === undefined ? {} : { body }) });
      const text = await res.text();
      let parsed: ErrorBody & { items?: unknown[] };
      try {
        parsed = JSON.parse(text) as ErrorBody & { items?: unknown[] };
      } catch {
        parsed = { message: text };
      }
      return { status: res.status, body: parsed };
    };
    // The live workers, created through the API a batch at a time.
    for (let i = 0; i < LIVE_WORKERS; i += CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CONCURRENCY, LIVE_WORKERS - i) }, (_, j) => call({
        method: 'POST', url: '/v1/workers', body: { workerId: `live-${i + j}`, spec: { command: ['sleep', '600'], labels: { suite: 'bad-input' } } },
      }));
      for (const res of await Promise.all(batch)) {
        assert.equal(res.status, 201, JSON.stringify(res.body));
        pids.push(Number((res.body as { worker: { providerRef: string } }).worker.providerRef));
      }
    }
  });
  after(() => t.stop());

  it(`answers ${MALFORMED_REQUESTS} malformed requests with a coded 4xx naming the field, and every listing in between with 200`, async () => {
    const cases = malformedCases('live-0');
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let lists = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const n = next++;
        if (n >= MALFORMED_REQUESTS) return;
        const c = cases[n % cases.length] ?? assert.fail('no case');
        const res = await call(c);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const named = String(res.body.details?.path ?? res.body.details?.instancePath ?? '');
        if (res.status !== c.status || res.body.code !== c.code || !named.startsWith(c.path)) {
          failures.push(`${c.name}: ${res.status} ${String(res.body.code)} at '${named}' (want ${c.status} ${c.code} at '${c.path}'): ${String(res.body.message).slice(0, 200)}`);
        }
        if (n % LIST_EVERY === 0) {
          const listed = await call({ method: 'GET', url: `/v1/workers?limit=500&label=${encodeURIComponent(SUITE_LABEL)}` });
          lists++;
          if (listed.status !== 200 || listed.body.items?.length !== LIVE_WORKERS) failures.push(`list: ${listed.status} with ${String(listed.body.items?.length)} items: ${JSON.stringify(listed.body).slice(0, 200)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    assert.equal(statuses.get(500) ?? 0, 0, 'no answer was a 500');
    assert.deepEqual([...new Set(failures)], [], 'every malformed request got its 4xx and code, naming its field');
    assert.equal(lists, MALFORMED_REQUESTS / LIST_EVERY);
    const all = await call({ method: 'GET', url: '/v1/workers?limit=500' });
    assert.equal(all.body.items?.length, LIVE_WORKERS, 'no malformed request created a worker');
    assert.equal((await fetch(new URL('/healthz', t.host.apiUrl))).status, 200, 'the host still answers /healthz');
  });

  it('terminates the live workers and leaves no process behind', async () => {
    for (let i = 0; i < LIVE_WORKERS; i += CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CONCURRENCY, LIVE_WORKERS - i) }, (_, j) => call({ method: 'DELETE', url: `/v1/workers/live-${i + j}` }));
      for (const res of await Promise.all(batch)) assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    assert.equal(pids.length, LIVE_WORKERS);
    await waitFor(async () => {
      const groups = await liveProcessGroups();
      const running = await Promise.all(pids.map(processRuns));
      return pids.every((pid, i) => running[i] === false && !groups.has(pid));
    }, 'every worker process (and its process group) to be gone');
  });
});
