import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readProcStat } from '@worker-manager/plugin-sdk';
import { processRuns } from '../plugins/process/helpers.ts';
import { adminAuthorization } from '../helpers/adminToken.ts';
import { apiCaller, inLanes, malformedCases, type ApiAnswer, type ApiRequest } from '../helpers/malformedRequests.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// A real host with the process provider and the API, running LIVE_WORKERS workers, answers a stream of malformed
// requests (interleaved with valid listings) with a 4xx that names the offending field, never a 500, and keeps serving.
// Regression: a 900 KB arg, env value or workingDir (under the body limit) reached execve and came back as a 500.

/** Workers kept running while the malformed requests arrive (at most 500: one listing page holds them all). */
const LIVE_WORKERS = 500;
/** Malformed requests sent. */
const MALFORMED_REQUESTS = 1_000;
/** A valid listing after every this many malformed requests. */
const LIST_EVERY = 10;
/** Requests in flight at once. */
const CONCURRENCY = 16;
const SUITE_LABEL = 'suite=bad-input';

/** The pid (and process group) of a process worker, from the meta file its provider keeps in its folder. */
async function workerPid(stateDir: string, workerId: string): Promise<number> {
  const meta = JSON.parse(await readFile(path.join(stateDir, 'workers', workerId, 'meta.json'), 'utf8')) as { pid?: unknown };
  return typeof meta.pid === 'number' ? meta.pid : assert.fail(`no pid in the meta of ${workerId}`);
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
  let call: (request: ApiRequest) => Promise<ApiAnswer>;
  const pids: number[] = [];

  before(async () => {
    t = await startTestHost(`
host: { id: bad-input, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('a', `{ maxWorkers: ${LIVE_WORKERS + CONCURRENCY} }`)}`);
    call = apiCaller(t.host.apiUrl ?? assert.fail('the API is not listening'), await adminAuthorization(t.host));
    const stateDir = t.host.registry.instances()[0]?.stateDir ?? assert.fail('the process instance has no state dir');
    // The live workers, created through the API, CONCURRENCY at a time, each answered once it runs.
    await inLanes(LIVE_WORKERS, CONCURRENCY, async (i) => {
      const res = await call({ method: 'POST', url: '/v1/workers?wait=running', body: { workerId: `live-${i}`, spec: { command: ['sleep', '600'], labels: { suite: 'bad-input' } } } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      pids.push(await workerPid(stateDir, `live-${i}`));
    });
  });
  after(() => t.stop());

  it(`answers ${MALFORMED_REQUESTS} malformed requests with a coded 4xx naming the field, and every listing in between with 200`, async () => {
    const cases = malformedCases('live-0');
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let lists = 0;
    await inLanes(MALFORMED_REQUESTS, CONCURRENCY, async (n) => {
      const c = cases[n % cases.length] ?? assert.fail('no case');
      const res = await call(c);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const named = String(res.body.details?.path ?? res.body.details?.instancePath ?? '');
      if (res.status !== c.status || res.body.code !== c.code || !named.startsWith(c.path)) {
        failures.push(`${c.name}: ${res.status} ${String(res.body.code)} at '${named}' (want ${c.status} ${c.code} at '${c.path}'): ${String(res.body.message).slice(0, 200)}`);
      }
      if (n % LIST_EVERY === 0) {
        const listed = await call({ method: 'GET', url: `/v1/workers?limit=${LIVE_WORKERS}&label=${encodeURIComponent(SUITE_LABEL)}` });
        lists++;
        if (listed.status !== 200 || listed.body.items?.length !== LIVE_WORKERS) failures.push(`list: ${listed.status} with ${String(listed.body.items?.length)} items: ${JSON.stringify(listed.body).slice(0, 200)}`);
      }
    });

    assert.equal(statuses.get(500) ?? 0, 0, 'no answer was a 500');
    assert.deepEqual([...new Set(failures)], [], 'every malformed request got its 4xx and code, naming its field');
    assert.equal(lists, MALFORMED_REQUESTS / LIST_EVERY);
    const all = await call({ method: 'GET', url: `/v1/workers?limit=${LIVE_WORKERS}` });
    assert.equal(all.body.items?.length, LIVE_WORKERS, 'no malformed request created a worker');
    assert.equal((await fetch(new URL('/healthz', t.host.apiUrl))).status, 200, 'the host still answers /healthz');
  });

  it('terminates the live workers and leaves no process behind', async () => {
    await inLanes(LIVE_WORKERS, CONCURRENCY, async (i) => {
      const res = await call({ method: 'DELETE', url: `/v1/workers/live-${i}` });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    });
    assert.equal(pids.length, LIVE_WORKERS);
    await waitFor(async () => {
      const groups = await liveProcessGroups();
      const running = await Promise.all(pids.map(processRuns));
      return pids.every((pid, i) => running[i] === false && !groups.has(pid));
    }, 'every worker process (and its process group) to be gone');
  });
});
