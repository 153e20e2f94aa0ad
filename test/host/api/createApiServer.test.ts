import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { HOST_API_VERSION } from '@worker-manager/plugin-sdk';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Compile } from 'typebox/compile';
import { ApiError, WorkerStatus } from '../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { repoRoot, fixturePlugin, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';
const apiError = Compile(ApiError);
const workerStatus = Compile(WorkerStatus);

/** The body of a create and of `GET /v1/workers/{id}`. */
interface Status {
  instance: string;
  workerId: string;
  state: { phase: string; exitCode?: number; reason?: string };
  phase: string;
  stale: boolean;
  record?: { id: string; labels: Record<string, string>; spec: { command?: string[] }; history: Array<{ to: string }> };
}

/** Asserts the one error body shape, its status and code, and (when given) the offending path. */
function assertError(res: LightMyRequestResponse, status: number, code: string, path?: string): Record<string, unknown> {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json<Record<string, unknown>>();
  assert.ok(apiError.Check(body), `not an ApiError body: ${res.body}`);
  assert.equal(body['code'], code);
  assert.equal(body['correlationId'], res.headers['x-correlation-id']);
  if (path !== undefined) assert.equal((body['details'] as { path?: unknown } | undefined)?.path, path);
  return body;
}

describe('REST API on a real host (process provider)', () => {
  let t: TestHost;
  let app: FastifyInstance;
  const created: string[] = [];

  /** POST /v1/workers, with `query` (`?wait=running`) when given; every worker it made is terminated after the suite. */
  const create = async (payload: unknown, headers: Record<string, string> = {}, query = ''): Promise<LightMyRequestResponse> => {
    const res = await app.inject({ method: 'POST', url: `/v1/workers${query}`, payload: payload as object, headers });
    if (res.statusCode === 201 || res.statusCode === 202) created.push(res.json<Status>().workerId);
    return res;
  };
  // The API takes at most 600 s.
  const waitMs = Math.min(budget(60_000), 600_000);
  const waitRunning = `?wait=running&waitTimeoutMs=${waitMs}`;

  before(async () => {
    t = await startTestHost(`
host: { id: api-host, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH}" }
  - name: setup-fails
    package: ${fixturePlugin('hostile-setup')}
instances:
  - { name: a, plugin: process, default: true }
  - { name: b, plugin: process, config: { maxWorkers: 1 } }
  - { name: broken, plugin: setup-fails }
`);
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bodyLimitBytes: 4_096, bus: t.host.bus });
  });
  after(async () => {
    await app.close();
    for (const id of created) await t.host.workers.terminateWorker(id).catch(() => undefined);
    await t.stop();
  });

  it('creates a worker (202, Location, the body of GET /v1/workers/{id}) once it is accepted, merges labels and passes the correlation id to the service', async () => {
    const res = await create({ spec: { command: ['sh', '-c', 'echo hello; exec sleep 600'], labels: { a: '1' } }, labels: { team: 'api' } }, { 'x-correlation-id': 'corr-create-1' });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.headers['x-correlation-id'], 'corr-create-1');
    const body = res.json<Status>();
    assert.ok(workerStatus.Check(body), `not a WorkerStatus body: ${res.body}`);
    assert.equal(res.headers['location'], `/v1/workers/${body.workerId}`);
    assert.equal(body.instance, 'a');
    assert.equal(body.stale, false);
    // The ledger record comes with it: the labels of the request merged with the spec's, the spec as requested.
    assert.equal(body.record?.id, body.workerId);
    assert.equal(body.record?.labels['team'], 'api');
    assert.equal(body.record?.labels['a'], '1');
    assert.deepEqual(body.record?.spec.command, ['sh', '-c', 'echo hello; exec sleep 600']);
    // Accepted is not yet running: the Location names the same worker, which comes to run.
    const location = String(res.headers['location']);
    const running = await waitFor(async () => {
      const got = await app.inject({ method: 'GET', url: location });
      assert.equal(got.statusCode, 200, got.body);
      const status = got.json<Status>();
      return status.phase === 'Running' ? status : undefined;
    }, 'the accepted worker to run', 60_000);
    assert.equal(running.workerId, body.workerId);
    const logged = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['op'] === 'createWorker' && l['workerId'] === body.workerId);
    assert.equal(logged?.['correlationId'], 'corr-create-1');
  });

  it('waits with ?wait: running answers 201 once the worker runs, exit 201 with its end, and a wait that runs out 202 with the state reached', async () => {
    const run = await create({ spec: { command: ['sleep', '600'] }, labels: { wait: 'running' } }, {}, waitRunning);
    assert.equal(run.statusCode, 201, run.body);
    const running = run.json<Status>();
    assert.ok(workerStatus.Check(running), `not a WorkerStatus body: ${run.body}`);
    assert.equal(run.headers['location'], `/v1/workers/${running.workerId}`);
    assert.deepEqual([running.phase, running.state], ['Running', { phase: 'Running' }]);
    assert.equal(running.record?.labels['wait'], 'running');
    assert.deepEqual(running.record?.history.map((h) => h.to), ['Creating', 'Running']);

    const exit = `?wait=exit&waitTimeoutMs=${waitMs}`;
    const ok = await create({ spec: { command: ['true'] } }, {}, exit);
    assert.equal(ok.statusCode, 201, ok.body);
    assert.deepEqual([ok.json<Status>().phase, ok.json<Status>().state], ['Terminated', { phase: 'Terminated', exitCode: 0 }]);
    const failed = await create({ spec: { command: ['sh', '-c', 'exit 3'] } }, {}, exit);
    assert.equal(failed.statusCode, 201, failed.body);
    assert.equal(failed.json<Status>().phase, 'Failed');
    assert.equal(failed.json<Status>().state.exitCode, 3);

    // A worker that sleeps 600 s cannot end within 300 ms: the wait runs out and the answer is what was reached.
    const short = await create({ spec: { command: ['sleep', '600'] } }, {}, '?wait=exit&waitTimeoutMs=300');
    assert.equal(short.statusCode, 202, short.body);
    const reached = short.json<Status>();
    assert.ok(workerStatus.Check(reached), `not a WorkerStatus body: ${short.body}`);
    assert.equal(short.headers['location'], `/v1/workers/${reached.workerId}`);
    assert.ok(!['Terminated', 'Failed'].includes(reached.phase), `a worker that sleeps 600 s ended: ${short.body}`);

    assertError(await create({ spec: { command: ['true'] } }, {}, '?wait=forever'), 400, 'WM_ERR_VALIDATION', '/querystring/wait');
    assertError(await create({ spec: { command: ['true'] } }, {}, '?wait=running&waitTimeoutMs=0'), 400, 'WM_ERR_VALIDATION', '/querystring/waitTimeoutMs');
  });

  it('generates a correlation id when none (or a malformed one) is given', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-correlation-id': 'bad id with spaces' } });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['x-correlation-id']), /^[0-9a-f-]{36}$/);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  it('creates once per idempotency key, even for concurrent requests', async () => {
    const payload = { spec: { command: ['sleep', '600'] }, labels: { idem: 'k' } };
    const [one, two] = await Promise.all([create(payload, { 'idempotency-key': 'idem-1' }), create(payload, { 'idempotency-key': 'idem-1' })]);
    assert.equal(one.statusCode, 202, one.body);
    assert.equal(two.statusCode, 202, two.body);
    assert.equal(one.json<Status>().workerId, two.json<Status>().workerId);
    assert.equal(one.headers['location'], two.headers['location']);
    const listed = await app.inject({ method: 'GET', url: '/v1/workers?label=idem=k' });
    assert.equal(listed.json<{ items: unknown[] }>().items.length, 1);
    assertError(await create(payload, { 'idempotency-key': 'has space' }), 400, 'WM_ERR_VALIDATION', '/headers/idempotency-key');
  });

  it('lists with provider, label and state filters, paginated by an opaque cursor without gaps or repeats', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await create({ workerId: `page-${i}`, spec: { command: ['sleep', '600'] }, labels: { batch: 'p' } }, {}, waitRunning);
      assert.equal(res.statusCode, 201, res.body);
      ids.push(`page-${i}`);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await app.inject({ method: 'GET', url: `/v1/workers?label=batch=p&provider=a&limit=2${cursor === undefined ? '' : `&cursor=${cursor}`}` });
      assert.equal(res.statusCode, 200, res.body);
      const page = res.json<{ items: Array<{ instance: string; worker: { workerId: string } }>; nextCursor?: string }>();
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((i) => i.worker.workerId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined && pages < 10);
    assert.equal(pages, 3);
    assert.deepEqual(seen, ids);

    const two = await app.inject({ method: 'GET', url: '/v1/workers?label=batch=p&label=nope=x' });
    assert.deepEqual(two.json<{ items: unknown[] }>().items, []);
    const running = await app.inject({ method: 'GET', url: '/v1/workers?label=batch=p&state=Running' });
    assert.equal(running.json<{ items: unknown[] }>().items.length, 5);
    const paused = await app.inject({ method: 'GET', url: '/v1/workers?label=batch=p&state=Paused' });
    assert.equal(paused.json<{ items: unknown[] }>().items.length, 0);
    const onB = await app.inject({ method: 'GET', url: '/v1/workers?provider=b&label=batch=p' });
    assert.equal(onB.json<{ items: unknown[] }>().items.length, 0);

    assertError(await app.inject({ method: 'GET', url: '/v1/workers?cursor=garbage' }), 400, 'WM_ERR_VALIDATION', '/querystring/cursor');
    assertError(await app.inject({ method: 'GET', url: '/v1/workers?limit=0' }), 400, 'WM_ERR_VALIDATION', '/querystring/limit');
    assertError(await app.inject({ method: 'GET', url: '/v1/workers?limit=abc' }), 400, 'WM_ERR_VALIDATION', '/querystring/limit');
    assertError(await app.inject({ method: 'GET', url: '/v1/workers?label=novalue' }), 400, 'WM_ERR_VALIDATION');
    assertError(await app.inject({ method: 'GET', url: '/v1/workers?colour=red' }), 400, 'WM_ERR_VALIDATION', '/querystring/colour');
    assertError(await app.inject({ method: 'GET', url: '/v1/workers?provider=zzz' }), 404, 'HOST_ERR_INSTANCE_NOT_FOUND');
  });

  it('gets, execs in, pauses, resumes, restarts, reads logs of and terminates a worker', async () => {
    const res = await create({ workerId: 'life-1', spec: { command: ['sh', '-c', 'echo line-a; echo line-b; exec sleep 600'] } }, {}, waitRunning);
    assert.equal(res.statusCode, 201, res.body);

    const got = await app.inject({ method: 'GET', url: '/v1/workers/life-1' });
    const { record, ...status } = got.json<{ record?: { spec: { command?: string[] }; history: Array<{ to: string }>; instance: string } }>();
    assert.deepEqual(status, { instance: 'a', workerId: 'life-1', state: { phase: 'Running' }, phase: 'Running', stale: false });
    // The whole ledger record comes with it: the spec as requested and the state history.
    assert.deepEqual(record?.spec.command, ['sh', '-c', 'echo line-a; echo line-b; exec sleep 600']);
    assert.deepEqual(record?.history.map((h) => h.to), ['Creating', 'Running']);

    const exec = await app.inject({ method: 'POST', url: '/v1/workers/life-1/exec', payload: { command: ['sh', '-c', 'echo $WM_WORKER_ID'], timeoutMs: budget(60_000) } });
    assert.equal(exec.statusCode, 200, exec.body);
    assert.equal(exec.json<{ stdout: string; exitCode: number }>().stdout.trim(), 'life-1');

    const paused = await app.inject({ method: 'POST', url: '/v1/workers/life-1/pause' });
    assert.deepEqual(paused.json(), { workerId: 'life-1', state: { phase: 'Paused' } });
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/life-1/exec', payload: { command: ['true'] } }), 409, 'WM_ERR_CONFLICT');
    const resumed = await app.inject({ method: 'POST', url: '/v1/workers/life-1/resume' });
    assert.deepEqual(resumed.json(), { workerId: 'life-1', state: { phase: 'Running' } });

    const restarted = await app.inject({ method: 'POST', url: '/v1/workers/life-1/restart' });
    assert.equal(restarted.statusCode, 200, restarted.body);
    assert.equal(restarted.json<{ worker: { workerId: string; state: { phase: string } } }>().worker.state.phase, 'Running');

    // The restarted command prints both lines again; wait for the log to hold all four.
    let chunks: Array<{ seq: number; data: string }> = [];
    await waitFor(async () => {
      const logs = await app.inject({ method: 'GET', url: '/v1/workers/life-1/logs' });
      assert.equal(logs.statusCode, 200, logs.body);
      chunks = logs.json();
      return chunks.length >= 4;
    }, () => `four log lines of the restarted worker, got ${JSON.stringify(chunks)}`);
    assert.deepEqual(chunks.map((c) => c.data), ['line-a\n', 'line-b\n', 'line-a\n', 'line-b\n']);
    const since = await app.inject({ method: 'GET', url: `/v1/workers/life-1/logs?sinceSeq=${chunks[2]?.seq ?? -1}` });
    assert.deepEqual(since.json<Array<{ data: string }>>().map((c) => c.data), ['line-a\n', 'line-b\n']);
    assertError(await app.inject({ method: 'GET', url: '/v1/workers/life-1/logs', headers: { 'last-event-id': 'x' } }), 400, 'WM_ERR_VALIDATION', '/headers/last-event-id');

    const gone = await app.inject({ method: 'DELETE', url: '/v1/workers/life-1?gracePeriodMs=1000' });
    assert.equal(gone.statusCode, 200, gone.body);
    assert.equal(gone.json<{ alreadyGone: boolean; instance: string }>().alreadyGone, false);
    assert.equal(gone.json<{ instance: string }>().instance, 'a');
    // Terminating a live worker keeps its record, Terminated, for the retention period.
    const ended = await app.inject({ method: 'GET', url: '/v1/workers/life-1' });
    assert.equal(ended.statusCode, 200, ended.body);
    assert.equal(ended.json<Status>().phase, 'Terminated');
    assert.equal(ended.json<Status>().record?.id, 'life-1');
    // Terminating it again, now that it has ended, purges its record at once and answers its final state.
    const again = await app.inject({ method: 'DELETE', url: '/v1/workers/life-1' });
    assert.equal(again.statusCode, 200, again.body);
    const purged = again.json<{ alreadyGone: boolean; instance: string | null; state: { phase: string } }>();
    assert.equal(purged.alreadyGone, true);
    assert.equal(purged.instance, 'a');
    assert.equal(purged.state.phase, 'Terminated');
    assert.equal(await t.host.workers.view('life-1'), undefined, 'the ended record was purged');
    // An id that no instance runs and the ledger never recorded is a mistake, not a success.
    assertError(await app.inject({ method: 'DELETE', url: '/v1/workers/never-existed' }), 404, 'WM_ERR_NOT_FOUND');
  });

  it('passes the request\'s correlation id to every WorkerService call (one log line per operation names it)', async () => {
    const res = await create({ workerId: 'corr-1', spec: { command: ['sh', '-c', 'echo hi; exec sleep 600'] } }, {}, waitRunning);
    assert.equal(res.statusCode, 201, res.body);
    const calls: Array<[string, 'GET' | 'POST' | 'DELETE', string, object?]> = [
      ['getStatus', 'GET', '/v1/workers/corr-1'],
      ['listWorkers', 'GET', '/v1/workers?provider=a'],
      ['getLogs', 'GET', '/v1/workers/corr-1/logs'],
      ['executeCommand', 'POST', '/v1/workers/corr-1/exec', { command: ['true'] }],
      ['pauseWorker', 'POST', '/v1/workers/corr-1/pause'],
      ['resumeWorker', 'POST', '/v1/workers/corr-1/resume'],
      ['restartWorker', 'POST', '/v1/workers/corr-1/restart'],
      ['getCapacity', 'GET', '/v1/capacity'],
      ['terminateWorker', 'DELETE', '/v1/workers/corr-1'],
    ];
    for (const [op, method, url, payload] of calls) {
      const correlationId = `corr-op-${op}`;
      const answer = await app.inject({ method, url, headers: { 'x-correlation-id': correlationId }, ...(payload === undefined ? {} : { payload }) });
      assert.ok(answer.statusCode < 300, `${op}: ${answer.body}`);
      const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['op'] === op && l['correlationId'] === correlationId);
      assert.equal(lines.length, 1, `${op} logged once with the request's correlation id`);
    }
  });

  it('answers unknown workers with 404 and malformed ids with 400, on every per-worker route', async () => {
    const routes: Array<['GET' | 'POST' | 'DELETE', string, object?]> = [
      ['GET', ''], ['GET', '/logs'], ['POST', '/exec', { command: ['true'] }], ['POST', '/pause'], ['POST', '/resume'], ['POST', '/restart'],
    ];
    for (const [method, suffix, payload] of routes) {
      const base = { method, ...(payload === undefined ? {} : { payload }) };
      assertError(await app.inject({ ...base, url: `/v1/workers/w-nope${suffix}` }), 404, 'WM_ERR_NOT_FOUND');
      assertError(await app.inject({ ...base, url: `/v1/workers/Bad_Id${suffix}` }), 400, 'WM_ERR_VALIDATION', '/params/id');
    }
    assertError(await app.inject({ method: 'DELETE', url: '/v1/workers/Bad_Id' }), 400, 'WM_ERR_VALIDATION', '/params/id');
    assertError(await app.inject({ method: 'GET', url: '/v1/nothing-here' }), 404, 'WM_ERR_NOT_FOUND');
  });

  it('answers malformed JSON, unknown fields, wrong types, oversized and non-JSON bodies with 4xx and the path, never 500', async () => {
    const json = { 'content-type': 'application/json' };
    assertError(await app.inject({ method: 'POST', url: '/v1/workers', payload: '{"spec": ', headers: json }), 400, 'WM_ERR_VALIDATION', '/body');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers', headers: json }), 400, 'WM_ERR_VALIDATION', '/body');
    assertError(await create({ spec: { command: ['true'] }, extra: 1 }), 400, 'WM_ERR_VALIDATION', '/body/extra');
    assertError(await create({ spec: { command: ['true'], bogus: true } }), 400, 'WM_ERR_VALIDATION', '/body/spec/bogus');
    assertError(await create({ spec: { command: 'true' } }), 400, 'WM_ERR_VALIDATION', '/body/spec/command');
    assertError(await create({ spec: { command: ['true'] }, workerId: 'Not_Valid' }), 400, 'WM_ERR_VALIDATION', '/body/workerId');
    assertError(await create({}), 400, 'WM_ERR_VALIDATION', '/body/spec');
    assertError(await create([1, 2]), 400, 'WM_ERR_VALIDATION', '/body');
    assertError(await create({ spec: { command: ['x'.repeat(5_000)] } }), 413, 'HOST_ERR_API_BODY_TOO_LARGE', '/body');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers', payload: '<spec/>', headers: { 'content-type': 'application/xml' } }), 415, 'HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers', payload: '{"spec":{}}', headers: { 'content-type': 'text/plain' } }), 415, 'HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE', '/headers/content-type');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/w-x/exec', payload: { command: [] } }), 400, 'WM_ERR_VALIDATION', '/body/command');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/w-x/exec', payload: { command: ['true'], timeoutMs: 'soon' } }), 400, 'WM_ERR_VALIDATION', '/body/timeoutMs');
  });

  it('maps service errors to their statuses: 400 compatibility, 404 instance, 429 capacity, 503 unavailable, 500 configuration', async () => {
    assertError(await create({ spec: { image: 'busybox', command: ['true'] } }), 400, 'WM_ERR_COMPATIBILITY');
    assertError(await create({ provider: 'zzz', spec: { command: ['true'] } }), 404, 'HOST_ERR_INSTANCE_NOT_FOUND');
    assertError(await create({ provider: 'broken', spec: { command: ['true'] } }), 503, 'HOST_ERR_INSTANCE_UNAVAILABLE');
    const first = await create({ provider: 'b', spec: { command: ['sleep', '600'] } }, {}, waitRunning);
    assert.equal(first.statusCode, 201, first.body);
    const body = assertError(await create({ provider: 'b', spec: { command: ['sleep', '600'] } }), 429, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.equal(body['category'], 'ResourceLimits');
    assertError(await create({ spec: { command: ['true'], secretRefs: [{ name: 'db', mount: 'env' }] } }), 500, 'WM_ERR_CONFIGURATION');
  });

  it('reports providers (versions, negotiated capabilities, state) and capacity', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/providers' });
    assert.equal(res.statusCode, 200);
    const rows = res.json<{ providers: Array<{ instance: string; version: string | null; state: string; capabilities: Record<string, string>; default: boolean; error: { code: string } | null }> }>().providers;
    assert.deepEqual(rows.map((r) => [r.instance, r.state]), [['a', 'running'], ['b', 'running'], ['broken', 'failed']]);
    assert.equal(rows[0]?.version, '0.1.0');
    assert.equal(rows[0]?.default, true);
    assert.equal(rows[0]?.capabilities['worker.logs.follow'], '1.0.0');
    assert.equal(rows[2]?.error?.code, 'HOST_ERR_PLUGIN_SETUP_FAILED');

    const cap = await app.inject({ method: 'GET', url: '/v1/capacity' });
    assert.equal(cap.statusCode, 200, cap.body);
    const list = cap.json<{ capacity: Array<{ instance: string; capacity: { maxWorkers?: number; activeWorkers: number } }> }>().capacity;
    assert.deepEqual(list.map((c) => c.instance), ['a', 'b']);
    assert.equal(list[1]?.capacity.maxWorkers, 1);
    const one = await app.inject({ method: 'GET', url: '/v1/capacity?provider=b' });
    assert.deepEqual(one.json<{ capacity: Array<{ instance: string }> }>().capacity.map((c) => c.instance), ['b']);
    assertError(await app.inject({ method: 'GET', url: '/v1/capacity?provider=zzz' }), 404, 'HOST_ERR_INSTANCE_NOT_FOUND');
  });

  it('answers /version with the product version from host/package.json and the plugin host API version', async () => {
    const res = await app.inject({ method: 'GET', url: '/version' });
    assert.equal(res.statusCode, 200, res.body);
    const hostPackage = JSON.parse(await readFile(new URL('../../../host/package.json', import.meta.url), 'utf8')) as { version: string };
    assert.deepEqual(res.json(), { version: hostPackage.version, hostApi: HOST_API_VERSION });
  });

  it('is alive on /healthz and ready on /readyz only while the bus takes events and every required instance runs', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), {
      status: 'ok',
      checks: [
        { check: 'bus', ok: true, state: 'connected', adapter: 'memory', outbox: { depth: 0, oldestAgeMs: 0 } },
        { check: 'instance', instance: 'a', state: 'running', ok: true },
      ],
    });
    const strict = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, requiredInstances: ['b', 'broken', 'ghost'] });
    try {
      const res = await strict.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json(), {
        status: 'unavailable',
        checks: [
          { check: 'instance', instance: 'a', state: 'running', ok: true }, { check: 'instance', instance: 'b', state: 'running', ok: true },
          { check: 'instance', instance: 'broken', state: 'failed', ok: false }, { check: 'instance', instance: 'ghost', state: 'missing', ok: false },
        ],
        failed: ['instance:broken', 'instance:ghost'],
      });
    } finally {
      await strict.close();
    }
  });

  it('forwards ports only through providers that can: 400 on the process provider, 404 for an unknown worker, 400 on a bad body', async () => {
    const res = await create({ workerId: 'fwd-1', spec: { command: ['sleep', '600'] } }, {}, waitRunning);
    assert.equal(res.statusCode, 201, res.body);
    const refused = assertError(await app.inject({ method: 'POST', url: '/v1/workers/fwd-1/port-forward', payload: { remotePort: 8080 } }), 400, 'WM_ERR_COMPATIBILITY');
    assert.deepEqual(refused['details'], { instance: 'a', missing: ['worker.portForward'] });
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/w-nope/port-forward', payload: { remotePort: 8080 } }), 404, 'WM_ERR_NOT_FOUND');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/fwd-1/port-forward', payload: { remotePort: 0 } }), 400, 'WM_ERR_VALIDATION', '/body/remotePort');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/fwd-1/port-forward', payload: { remotePort: 80, localPort: 70_000 } }), 400, 'WM_ERR_VALIDATION', '/body/localPort');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/fwd-1/port-forward', payload: {} }), 400, 'WM_ERR_VALIDATION', '/body/remotePort');
    assertError(await app.inject({ method: 'POST', url: '/v1/workers/Bad_Id/port-forward', payload: { remotePort: 80 } }), 400, 'WM_ERR_VALIDATION', '/params/id');
  });
});

describe('REST API with a provider that fails unexpectedly', () => {
  it('answers 500 WM_ERR_INTERNAL with the correlation id and without the failure\'s own message', async () => {
    const t = await startTestHost(`
host: { id: api-throw, stateDir: \${DIR}/state }
plugins:
  - name: thrower
    package: ${fixturePlugin('hostile-throw')}
instances:
  - { name: bad, plugin: thrower, default: true }
`);
    const app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/workers', payload: { spec: { command: ['true'] } }, headers: { 'x-correlation-id': 'corr-boom' } });
      const body = assertError(res, 500, 'WM_ERR_INTERNAL');
      assert.equal(body['message'], 'internal error (correlation id corr-boom)');
      assert.doesNotMatch(res.body, /exploded/);
      assert.equal(body['details'], undefined);
      assert.ok(t.logs.some((l) => l.includes('corr-boom') && l.includes('exploded')), 'the log keeps the cause under the correlation id');
    } finally {
      await app.close();
      await t.stop();
    }
  });
});
