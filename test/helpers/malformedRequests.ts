/**
 * The malformed requests of the bad-input suite and its benchmark: each kind of bad JSON, unknown field, wrong type,
 * oversized field, oversized body and query, with the answer each must get, and a client that sends them to a host's
 * API.
 */
import {
  MAX_ARG_LENGTH, MAX_ARGS, MAX_ENV_ENTRIES, MAX_ENV_VALUE_LENGTH, MAX_LABELS, MAX_LIST_ITEMS, MAX_PATH_LENGTH, MAX_TIMER_MS,
} from '@worker-manager/plugin-sdk';

/** A malformed request and the answer it must get. */
export interface MalformedCase {
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

/** The parts of the API's error body a check reads. */
export interface ErrorBody {
  code?: unknown;
  message?: unknown;
  details?: { path?: unknown; instancePath?: unknown };
}

const cmd = ['true'];
const big = (n: number, c = 'x'): string => c.repeat(n);
const entries = (n: number, value: (i: number) => string, key = (i: number) => `K${i}`): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [key(i), value(i)]));

/** The malformed requests: each kind of bad JSON, unknown field, wrong type, oversized field, oversized body and query. */
export function malformedCases(liveWorker: string): MalformedCase[] {
  const create = (name: string, body: unknown, status: number, path: string, code = 'WM_ERR_VALIDATION'): MalformedCase => ({ name, method: 'POST', url: '/v1/workers', body, status, code, path });
  const spec = (name: string, extra: Record<string, unknown>, path: string): MalformedCase => create(name, { spec: { command: cmd, ...extra } }, 400, `/body/spec${path}`);
  const raw = (name: string, text: string): MalformedCase => ({ name, method: 'POST', url: '/v1/workers', raw: text, contentType: 'application/json', status: 400, code: 'WM_ERR_VALIDATION', path: '/body' });
  const list = (name: string, query: string, path: string): MalformedCase => ({ name, method: 'GET', url: `/v1/workers?${query}`, status: 400, code: 'WM_ERR_VALIDATION', path });
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

/** A request to the API: a JSON value as `body` (sent as application/json) or raw text as `raw`. */
export type ApiRequest = Pick<MalformedCase, 'method' | 'url' | 'body' | 'raw' | 'contentType' | 'headers'>;

/** An answer: its status and its JSON body (a body that is not JSON comes back as `message`). */
export interface ApiAnswer {
  status: number;
  body: ErrorBody & { items?: unknown[] };
}

/** Sends requests to the API at `apiUrl` with `headers` (the authorization) on each, over fetch. */
export function apiCaller(apiUrl: string, headers: Record<string, string>): (request: ApiRequest) => Promise<ApiAnswer> {
  return async (c) => {
    const sent: Record<string, string> = { ...headers, ...c.headers };
    let body: string | undefined;
    if (c.raw !== undefined) {
      body = c.raw;
      sent['content-type'] = c.contentType ?? 'application/json';
    } else if (c.body !== undefined) {
      body = JSON.stringify(c.body);
      sent['content-type'] = 'application/json';
    }
    const res = await fetch(new URL(c.url, apiUrl), { method: c.method, headers: sent, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) as ApiAnswer['body'] };
    } catch {
      return { status: res.status, body: { message: text } };
    }
  };
}

/** Runs `task(0)` to `task(total - 1)` with `lanes` of them in flight at once (a lane takes the next as one ends). */
export async function inLanes(total: number, lanes: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(lanes, total) }, lane));
}
