import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminAuthorization } from '../helpers/adminToken.ts';
import { fixturePlugin, repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// Asynchronous create through a real host and its API: `POST /v1/workers` answers 202 once the worker is recorded and
// accepted, `?wait=running|exit` waits and reports what the worker really did, providers without events are polled,
// and deleting a finished worker purges its record at once.
//
// The echo fixture in its asynchronous mode (`startDelayMs`) answers createWorker with Starting and emits no events:
// the host learns every later state by asking. `slow` never gets past Starting within a test (10 minutes).

const YAML = `
host: { id: h-async, stateDir: \${DIR}/state }
api: { enabled: true, port: 0 }
ledger: { pollIntervalMs: 200 }
plugins:
  - name: echo
    package: ${fixturePlugin('echo')}
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: quick, plugin: echo, default: true, config: { startDelayMs: 300 } }
  - { name: slow, plugin: echo, config: { startDelayMs: 600000, pendingReason: Unschedulable } }
  - { name: proc, plugin: process }
  - { name: slowapi, plugin: echo, config: { createDelayMs: 1500 } }
`;

interface Status {
  instance: string;
  workerId: string;
  state: { phase: string; exitCode?: number; reason?: string; pendingReason?: string };
  phase: string;
  stale: boolean;
  record?: { spec: { command?: string[] }; history: Array<{ from: string; to: string }>; state: { phase: string } };
}

describe('asynchronous create through the API', { timeout: budget(180_000) }, () => {
  let h: TestHost;
  let auth: { authorization: string };
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; location: string | null; json: Status & { code?: string } }> => {
    const res = await fetch(`${h.host.apiUrl}${path}`, {
      method,
      headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, location: res.headers.get('location'), json: (await res.json()) as Status & { code?: string } };
  };

  before(async () => {
    h = await startTestHost(YAML);
    auth = await adminAuthorization(h.host);
  });
  after(() => h.stop());

  it('answers 202 with the record and a Location as soon as the provider accepted the worker', async () => {
    const res = await api('POST', '/v1/workers', { provider: 'slow', workerId: 'acc-1', spec: { command: ['sleep', '600'] } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.equal(res.location, '/v1/workers/acc-1');
    assert.equal(res.json.workerId, 'acc-1');
    assert.equal(res.json.instance, 'slow');
    assert.deepEqual(res.json.state, { phase: 'Starting', pendingReason: 'Unschedulable' });
    assert.equal(res.json.phase, 'Starting');
    assert.deepEqual(res.json.record?.spec.command, ['sleep', '600'], 'the answer carries the record, spec included');
    assert.deepEqual(res.json.record?.history.map((x) => `${x.from}>${x.to}`), ['Pending>Creating', 'Creating>Starting']);
    // The Location is where the worker is read from.
    const read = await api('GET', res.location ?? '');
    assert.equal(read.status, 200);
    assert.equal(read.json.phase, 'Starting');
  });

  it('?wait=running answers 201 once a polled provider reports Running', async () => {
    const res = await api('POST', '/v1/workers?wait=running', { workerId: 'run-1', spec: { command: ['sleep', '600'] } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.location, '/v1/workers/run-1');
    assert.deepEqual(res.json.state, { phase: 'Running' });
    assert.deepEqual(res.json.record?.history.map((x) => `${x.from}>${x.to}`), ['Pending>Creating', 'Creating>Starting', 'Starting>Running']);
  });

  it('?wait=running reports a job that ended before it was seen running as it ended: exit 0 is Terminated, not an error', async () => {
    const ok = await api('POST', '/v1/workers?wait=running', { workerId: 'job-0', spec: { command: ['exit', '0'] } });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    assert.deepEqual(ok.json.state, { phase: 'Terminated', exitCode: 0 });
    const bad = await api('POST', '/v1/workers?wait=running', { workerId: 'job-4', spec: { command: ['exit', '4'] } });
    assert.equal(bad.status, 201, JSON.stringify(bad.json));
    assert.deepEqual(bad.json.state, { phase: 'Failed', reason: 'Error', exitCode: 4 });
  });

  it('?wait=exit waits for the end of a real process and reports its exit code', async () => {
    const res = await api('POST', '/v1/workers?wait=exit', { provider: 'proc', workerId: 'proc-exit', spec: { command: ['sh', '-c', 'sleep 0.3; exit 4'] } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.state.phase, 'Failed');
    assert.equal(res.json.state.exitCode, 4);
  });

  it('a wait that runs out answers 202 with the state reached, and the worker goes on', async () => {
    const res = await api('POST', '/v1/workers?wait=running&waitTimeoutMs=300', { provider: 'slow', workerId: 'acc-2', spec: { command: ['sleep', '600'] } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.deepEqual(res.json.state, { phase: 'Starting', pendingReason: 'Unschedulable' });
    assert.equal((await api('GET', '/v1/workers/acc-2')).json.phase, 'Starting');
  });

  it('polls a provider without events: the record follows the worker with nobody asking, and a vanished worker is Failed(Lost)', async () => {
    const res = await api('POST', '/v1/workers', { workerId: 'poll-1', spec: { command: ['sleep', '600'] } });
    assert.equal(res.status, 202);
    assert.equal(res.json.phase, 'Starting');
    // Read from the store, not the API (a read through the API asks the provider itself).
    await waitFor(async () => (await h.host.ledger.store.get('poll-1'))?.state.phase === 'Running', 'the poll to move poll-1 to Running');

    await h.host.workers.executeCommand('poll-1', ['vanish']);
    const lost = await waitFor(async () => {
      const r = await h.host.ledger.store.get('poll-1');
      return r?.state.phase === 'Failed' ? r : undefined;
    }, 'the poll to find poll-1 gone');
    assert.equal(lost.state.reason, 'Lost');
  });

  it('DELETE of a finished worker purges its record at once; of a live one, keeps the Terminated record', async () => {
    const done = await api('POST', '/v1/workers?wait=exit', { workerId: 'fin-1', spec: { command: ['exit', '0'] } });
    assert.deepEqual(done.json.state, { phase: 'Terminated', exitCode: 0 });
    const del = await api('DELETE', '/v1/workers/fin-1');
    assert.equal(del.status, 200, JSON.stringify(del.json));
    assert.equal((del.json as unknown as { alreadyGone: boolean }).alreadyGone, true);
    assert.deepEqual(del.json.state, { phase: 'Terminated', exitCode: 0 }, 'the answer names the state it ended in');
    assert.equal(await h.host.ledger.store.get('fin-1'), undefined, 'the record is gone');
    assert.equal((await api('GET', '/v1/workers/fin-1')).status, 404);

    await api('POST', '/v1/workers?wait=running', { workerId: 'live-1', spec: { command: ['sleep', '600'] } });
    const stop = await api('DELETE', '/v1/workers/live-1');
    assert.equal(stop.status, 200);
    assert.equal((stop.json as unknown as { alreadyGone: boolean }).alreadyGone, false);
    assert.equal((await h.host.ledger.store.get('live-1'))?.state.phase, 'Terminated', 'a terminated live worker stays readable for the retention');
    // Deleting it again, now that it has ended, purges it.
    assert.equal((await api('DELETE', '/v1/workers/live-1')).status, 200);
    assert.equal(await h.host.ledger.store.get('live-1'), undefined);
  });

  it('a read while the provider is still making the worker does not declare it lost', async () => {
    // Regression: GET /v1/workers/{id} during a create asked the provider, which did not have the worker yet, and the
    // record was failed Lost under the create that then succeeded.
    const creating = h.host.workers.createWorker({ provider: 'slowapi', workerId: 'slow-1', spec: {} });
    await waitFor(async () => (await h.host.ledger.store.get('slow-1'))?.state.phase === 'Creating', 'the record of slow-1 to be Creating');
    const read = await api('GET', '/v1/workers/slow-1');
    assert.equal(read.status, 200);
    assert.equal(read.json.phase, 'Creating');
    await creating;
    assert.equal((await h.host.ledger.store.get('slow-1'))?.state.phase, 'Running');
  });

  it('refuses a bad wait with 400 naming the query field', async () => {
    const res = await api('POST', '/v1/workers?wait=forever', { spec: { command: ['true'] } });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'WM_ERR_VALIDATION');
    assert.match(JSON.stringify(res.json), /querystring\/wait/);
  });
});
