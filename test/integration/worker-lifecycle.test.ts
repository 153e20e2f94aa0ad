import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EventEnvelope } from '../../host/src/bus/EventEnvelope.ts';
import { openWorkerStore } from '../../host/src/workers/ledger/openWorkerStore.ts';
import type { WorkerRecord, WorkerStore } from '../../host/src/workers/ledger/index.ts';
import { adminAuthorization } from '../helpers/adminToken.ts';
import { fixturePlugin, processProviderYaml, repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';
import { workerProcesses } from '../helpers/workerProcesses.ts';

// The host's side of every worker's lifecycle, the same for every provider: the spec's timeoutMs (DeadlineExceeded),
// the start timeout (StartTimeout, with the pending reason) and what a host stop does to the workers
// (host.onShutdown). The echo fixture enforces nothing itself, so what happens to its workers is the host's doing;
// the process provider shows the same on real processes, across a host restart.

const PATH_ENV = process.env['PATH'] ?? '/usr/bin:/bin';

const YAML = `
host: { id: h-lifecycle, stateDir: \${DIR}/state, workerStartTimeoutMs: 120000 }
ledger: { pollIntervalMs: 200 }
plugins:
  - name: echo
    package: ${fixturePlugin('echo')}
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH_ENV}" }
instances:
  - { name: quick, plugin: echo, default: true }
  - { name: stuck, plugin: echo, workerStartTimeoutMs: 1500, config: { startDelayMs: 600000, pendingReason: ImagePull } }
  - { name: selfish, plugin: echo, config: { enforcesDeadlines: true } }
  - { name: proc, plugin: process, config: { defaultGracePeriodMs: 1000 } }
`;

const SLEEP = ['sleep', '600'];

/** The record once it has ended (Terminated or Failed). */
function ended(store: () => WorkerStore, workerId: string, timeoutMs?: number): Promise<WorkerRecord> {
  return waitFor(async () => {
    const r = await store().get(workerId);
    return r !== undefined && (r.state.phase === 'Failed' || r.state.phase === 'Terminated') ? r : undefined;
  }, `${workerId} to end`, timeoutMs);
}

const eventsOf = (events: EventEnvelope[], workerId: string, type: string): EventEnvelope[] =>
  events.filter((e) => e.type.endsWith(type) && (e.data as { workerId?: string }).workerId === workerId);

const transitions = (r: WorkerRecord): string[] => r.history.map((x) => `${x.from}>${x.to}${x.reason === undefined ? '' : `(${x.reason})`}`);

/** Live processes the process provider runs for `workerId` under a host's state dir. */
async function processesOf(stateDir: string, workerId: string): Promise<number> {
  return (await workerProcesses(stateDir)).filter((p) => p.workerId === workerId).length;
}

describe('deadlines and start timeouts, enforced by the host', { timeout: budget(300_000) }, () => {
  let h: TestHost;
  const store = (): WorkerStore => h.host.ledger.store;
  before(async () => {
    h = await startTestHost(YAML);
  });
  after(() => h.stop());

  it('terminates a worker of a provider that enforces no deadline itself at its timeoutMs: Failed(DeadlineExceeded), one ci.worker.failed', async () => {
    await h.host.workers.createWorker({ workerId: 'dl-echo', spec: { command: SLEEP, timeoutMs: 1_500 }, correlationId: 'corr-dl' });
    const record = await ended(store, 'dl-echo');
    assert.deepEqual([record.state.phase, record.state.reason, record.desired], ['Failed', 'DeadlineExceeded', 'Terminated']);
    assert.equal(record.state.message, 'ran past its timeoutMs of 1500 ms');
    // The host decided (Stopping with its reason), then the provider's Terminated became the host's end.
    assert.deepEqual(transitions(record), ['Pending>Creating', 'Creating>Running', 'Running>Stopping(DeadlineExceeded)', 'Stopping>Failed(DeadlineExceeded)']);
    const running = Date.parse(record.timestamps.Running ?? '');
    assert.ok(record.ending !== undefined && Date.parse(record.ending.at) >= running + 1_500, 'not before its deadline');
    // The echo provider no longer has it: it was terminated, not only recorded as failed.
    assert.ok(!(await h.host.registry.provider('quick').listWorkers({})).some((w) => w.workerId === 'dl-echo'));
    const failed = await waitFor(() => eventsOf(h.events, 'dl-echo', 'worker.failed')[0], 'the worker.failed event');
    assert.deepEqual([(failed.data as { reason?: string }).reason, failed.correlationid], ['DeadlineExceeded', 'corr-dl']);
    // A barrier: an event published after the end, so anything the end caused has been published before it.
    await h.host.workers.createWorker({ workerId: 'dl-barrier', spec: {} });
    await waitFor(() => eventsOf(h.events, 'dl-barrier', 'worker.created')[0], 'the barrier event');
    assert.equal(eventsOf(h.events, 'dl-echo', 'worker.failed').length, 1, 'announced once');
    assert.equal(eventsOf(h.events, 'dl-echo', 'worker.terminated').length, 0, 'announced as the host\'s failure, not as a terminate');
    await h.host.workers.terminateWorker('dl-barrier');
  });

  it('a provider that enforces the deadline itself and reports DeadlineExceeded ends the same way, and is not terminated a second time', async () => {
    await h.host.workers.createWorker({ provider: 'selfish', workerId: 'dl-self', spec: { command: SLEEP, timeoutMs: 1_500 } });
    const record = await ended(store, 'dl-self');
    assert.deepEqual([record.state.phase, record.state.reason], ['Failed', 'DeadlineExceeded']);
    assert.equal(record.ending, undefined, 'the host found it ended: no decision of its own');
    assert.ok(!transitions(record).some((x) => x.includes('Stopping')), transitions(record).join(' '));
    // The fixture keeps a worker until it is terminated: still listed, so the host never terminated it.
    const listed = (await h.host.registry.provider('selfish').listWorkers({})).find((w) => w.workerId === 'dl-self');
    assert.deepEqual(listed?.state, { phase: 'Failed', reason: 'DeadlineExceeded' });
  });

  it('fails a worker stuck in Starting past its instance\'s start timeout with StartTimeout and its pending reason, and terminates it', async () => {
    const created = await h.host.workers.createWorker({ provider: 'stuck', workerId: 'st-echo', spec: { command: SLEEP } });
    assert.deepEqual(created.worker.state, { phase: 'Starting', pendingReason: 'ImagePull' });
    const record = await ended(store, 'st-echo');
    // The exit code is whatever the provider's terminate reported (the echo fixture says 0).
    const { exitCode: _exitCode, ...state } = record.state;
    assert.deepEqual(state, {
      phase: 'Failed', reason: 'StartTimeout', pendingReason: 'ImagePull', message: 'did not start within 1500 ms (Starting, last pending reason ImagePull)',
    });
    assert.equal(record.startTimeoutMs, 1_500, 'the instance\'s override, fixed in the record');
    assert.ok(Date.parse(record.ending?.at ?? '') >= Date.parse(record.createdAt) + 1_500);
    assert.ok(!(await h.host.registry.provider('stuck').listWorkers({})).some((w) => w.workerId === 'st-echo'), 'what the provider made is gone');
    await waitFor(() => eventsOf(h.events, 'st-echo', 'worker.failed').find((e) => (e.data as { reason?: string }).reason === 'StartTimeout'), 'the worker.failed event');
    // A worker of an instance without an override gets the host's start timeout, and once Running has no start timeout.
    await h.host.workers.createWorker({ workerId: 'st-default', spec: {} });
    const other = await store().get('st-default');
    assert.equal(other?.startTimeoutMs, 120_000);
    await h.host.workers.terminateWorker('st-default');
  });

  it('a process worker running `sleep 600` with a short timeoutMs ends Failed(DeadlineExceeded), and its processes are gone', async (t) => {
    const stateDir = path.join(h.dir, 'state');
    await h.host.workers.createWorker({ provider: 'proc', workerId: 'dl-proc', spec: { command: SLEEP, timeoutMs: 2_000 } });
    assert.ok(await processesOf(stateDir, 'dl-proc') > 0, 'it runs');
    const record = await ended(store, 'dl-proc');
    assert.deepEqual([record.state.phase, record.state.reason], ['Failed', 'DeadlineExceeded']);
    assert.ok(Date.parse(record.finishedAt ?? '') >= Date.parse(record.timestamps.Running ?? '') + 2_000, 'not before its deadline');
    await waitFor(async () => (await processesOf(stateDir, 'dl-proc')) === 0, 'the worker\'s processes to be gone');
    // Whoever stopped it first (the host, or the provider's own deadline), the other found it ended: nothing refused.
    assert.doesNotMatch(await h.host.metrics.render(), /worker_illegal_transitions_total\{provider="(proc|quick|stuck)"/);
    t.diagnostic(`dl-proc: ${transitions(record).join(' ')}${record.ending === undefined ? ' (ended by its provider)' : ' (ended by the host)'}`);
  });
});

describe('deadlines across a host restart', { timeout: budget(300_000) }, () => {
  it('a deadline set before a restart is honoured after it, counted from when the worker first ran, not from the restart', async (t) => {
    const yaml = (stateDir: string): string => `
host: { id: h-lifecycle-restart, stateDir: ${stateDir} }
${processProviderYaml('a', '{ defaultGracePeriodMs: 1000 }')}`;
    const first = await startTestHost(yaml('${DIR}/state'));
    const later: { second?: TestHost } = {};
    t.after(async () => {
      await later.second?.stop();
      await first.stop();
    });
    const stateDir = path.join(first.dir, 'state');
    // Long enough that the restart fits well inside it even on a loaded machine.
    const timeoutMs = 20_000;
    await first.host.workers.createWorker({ workerId: 'dl-restart', spec: { command: SLEEP, timeoutMs } });
    const running = Date.parse((await first.host.ledger.store.get('dl-restart'))?.timestamps.Running ?? '');
    assert.ok(Number.isFinite(running));
    // leave-running (the default): the worker outlives its host.
    await first.host.stop();
    assert.ok(await processesOf(stateDir, 'dl-restart') > 0, 'the worker outlived its host');
    // Half its time passes with no host at all; a deadline counted from the restart would then come 10 s late.
    await waitFor(() => Date.now() >= running + timeoutMs / 2, 'half of the worker\'s time to pass', timeoutMs);
    const restartedAt = Date.now();
    const second = (later.second = await startTestHost(yaml(stateDir)));
    const record = await ended(() => second.host.ledger.store, 'dl-restart', 60_000);
    assert.deepEqual([record.state.phase, record.state.reason], ['Failed', 'DeadlineExceeded']);
    const finished = Date.parse(record.finishedAt ?? '');
    assert.ok(finished >= running + timeoutMs, 'not before its deadline');
    assert.ok(finished < restartedAt + timeoutMs, `counted from its first Running (${new Date(running).toISOString()}), not from the restart (ended ${record.finishedAt})`);
    await waitFor(async () => (await processesOf(stateDir, 'dl-restart')) === 0, 'the worker\'s processes to be gone');
  });
});

describe('an ending decided before a restart', { timeout: budget(300_000) }, () => {
  it('is carried out by the next host: a worker left running between the decision and its terminate is terminated, and ends with the decided reason', async (t) => {
    const yaml = (stateDir: string): string => `
host: { id: h-lifecycle-resume, stateDir: ${stateDir} }
${processProviderYaml('a', '{ defaultGracePeriodMs: 1000 }')}`;
    const first = await startTestHost(yaml('${DIR}/state'));
    const later: { second?: TestHost } = {};
    t.after(async () => {
      await later.second?.stop();
      await first.stop();
    });
    const stateDir = path.join(first.dir, 'state');
    await first.host.workers.createWorker({ workerId: 'resume', spec: { command: SLEEP } });
    // What a host that stopped right after deciding leaves: the decision written, the worker still running. Written
    // to the store directly, past the ledger that would have this host carry it out at once.
    const store = first.host.ledger.store;
    await store.update('resume', { desired: 'Terminated', ending: { reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 1000 ms', at: new Date().toISOString() } });
    await store.transition('resume', { phase: 'Stopping', reason: 'DeadlineExceeded' });
    await first.host.stop();
    assert.ok(await processesOf(stateDir, 'resume') > 0, 'the worker still runs');

    const second = (later.second = await startTestHost(yaml(stateDir)));
    const record = await ended(() => second.host.ledger.store, 'resume', 60_000);
    assert.deepEqual([record.state.phase, record.state.reason, record.state.message], ['Failed', 'DeadlineExceeded', 'ran past its timeoutMs of 1000 ms']);
    assert.deepEqual(transitions(record), ['Pending>Creating', 'Creating>Running', 'Running>Stopping(DeadlineExceeded)', 'Stopping>Failed(DeadlineExceeded)'], 'adoption did not move it back to Running');
    await waitFor(async () => (await processesOf(stateDir, 'resume')) === 0, 'the worker\'s processes to be gone');
    assert.doesNotMatch(await second.host.metrics.render(), /worker_illegal_transitions_total\{provider="a"/);
  });
});

describe('host.onShutdown', { timeout: budget(300_000) }, () => {
  const yaml = (stateDir: string, shutdown: string): string => `
host: { id: h-shutdown, stateDir: ${stateDir}, ${shutdown} }
api: { enabled: true, port: 0 }
${processProviderYaml('a', '{ defaultGracePeriodMs: 1000 }')}`;

  /** The ledger of a stopped host, read from its file. */
  async function ledgerOf(t: { after(fn: () => Promise<void>): void }, dir: string): Promise<WorkerStore> {
    const store = await openWorkerStore(path.join(dir, 'state', 'ledger', 'workers.db'));
    t.after(() => store.close());
    return store;
  }

  it('leave-running (the default): a stop leaves the workers running, and the next start adopts them', async (t) => {
    const first = await startTestHost(yaml('${DIR}/state', 'onShutdown: leave-running'));
    const later: { second?: TestHost } = {};
    t.after(async () => {
      await later.second?.stop();
      await first.stop();
    });
    const stateDir = path.join(first.dir, 'state');
    for (const id of ['keep-1', 'keep-2']) await first.host.workers.createWorker({ workerId: id, spec: { command: SLEEP } });
    const pids = (await workerProcesses(stateDir)).map((p) => p.pid).sort();
    await first.host.stop();
    assert.deepEqual((await workerProcesses(stateDir)).map((p) => p.pid).sort(), pids, 'the same processes run on');
    const second = (later.second = await startTestHost(yaml(stateDir, 'onShutdown: leave-running')));
    for (const id of ['keep-1', 'keep-2']) {
      const record = await second.host.ledger.store.get(id);
      assert.deepEqual([record?.state.phase, record?.desired, record?.ending], ['Running', 'Running', undefined], id);
      assert.deepEqual(record?.history.map((x) => `${x.from}>${x.to}`), ['Pending>Creating', 'Creating>Running'], `${id} was adopted as it was`);
    }
    assert.equal((await second.host.workers.listWorkers()).length, 2);
  });

  it('drain: refuses creates with 503 HOST_ERR_DRAINING and Retry-After, lets a short worker finish, then terminates a long one at the drain deadline', async (t) => {
    const drainTimeoutMs = budget(15_000);
    const h = await startTestHost(yaml('${DIR}/state', `onShutdown: drain, drainTimeoutMs: ${drainTimeoutMs}`));
    t.after(() => h.stop());
    const stateDir = path.join(h.dir, 'state');
    const go = path.join(h.dir, 'go');
    const auth = await adminAuthorization(h.host);
    // The short worker ends once the test lets it (a barrier, not a guess at how long the drain takes to begin).
    await h.host.workers.createWorker({ workerId: 'short', spec: { command: ['sh', '-c', `while [ ! -e '${go}' ]; do sleep 0.1; done`] } });
    await h.host.workers.createWorker({ workerId: 'long', spec: { command: SLEEP } });

    const drainStarted = Date.now();
    const stopping = h.host.stop();
    await waitFor(() => h.host.workers.lifecycle?.draining, 'the drain to begin');
    const refused = await fetch(`${h.host.apiUrl}/v1/workers`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ spec: { command: SLEEP } }) });
    const body = (await refused.json()) as { code?: string; details?: { retryAfterSeconds?: number } };
    assert.equal(refused.status, 503, JSON.stringify(body));
    assert.equal(body.code, 'HOST_ERR_DRAINING');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= Math.ceil(drainTimeoutMs / 1_000), `Retry-After ${refused.headers.get('retry-after')}`);
    assert.equal(body.details?.retryAfterSeconds, retryAfter);
    const ready = await fetch(`${h.host.apiUrl}/readyz`);
    assert.equal(ready.status, 503);
    assert.ok(((await ready.json()) as { failed?: string[] }).failed?.includes('shutdown'));
    // Everything but creating is still served while the host drains.
    const read = await fetch(`${h.host.apiUrl}/v1/workers/long`, { headers: auth });
    assert.equal(read.status, 200);

    await writeFile(go, '');
    const short = await ended(() => h.host.ledger.store, 'short');
    assert.deepEqual([short.state.phase, short.state.exitCode, short.ending], ['Terminated', 0, undefined], 'the short worker ended by itself');
    assert.equal((await h.host.ledger.store.get('long'))?.state.phase, 'Running', 'the long one runs until the drain deadline');

    await stopping;
    const store = await ledgerOf(t, h.dir);
    const long = await store.get('long');
    assert.deepEqual([long?.state.phase, long?.state.reason], ['Failed', 'HostShutdown']);
    assert.match(long?.state.message ?? '', /drain deadline/);
    assert.ok(Date.parse(long?.ending?.at ?? '') >= drainStarted + drainTimeoutMs, 'terminated at the drain deadline, not before');
    assert.equal((await workerProcesses(stateDir)).length, 0, 'no worker process is left');
    assert.ok(eventsOf(h.events, 'long', 'worker.failed').some((e) => (e.data as { reason?: string }).reason === 'HostShutdown'));
  });

  it('terminate: terminates every worker at once and leaves 0 processes', async (t) => {
    const h = await startTestHost(yaml('${DIR}/state', 'onShutdown: terminate'));
    t.after(() => h.stop());
    const stateDir = path.join(h.dir, 'state');
    const ids = ['t-1', 't-2', 't-3'];
    // One traps SIGTERM and needs its grace period's SIGKILL.
    await h.host.workers.createWorker({ workerId: 't-1', spec: { command: ['sh', '-c', 'trap "" TERM; while true; do sleep 1; done'] } });
    for (const id of ids.slice(1)) await h.host.workers.createWorker({ workerId: id, spec: { command: SLEEP } });
    assert.equal(new Set((await workerProcesses(stateDir)).map((p) => p.workerId)).size, 3);
    await h.host.stop();
    assert.deepEqual(await workerProcesses(stateDir), [], 'no worker process is left');
    const store = await ledgerOf(t, h.dir);
    for (const id of ids) {
      const record = await store.get(id);
      assert.deepEqual([record?.state.phase, record?.state.reason, record?.state.message], ['Failed', 'HostShutdown', 'terminated as the host shut down (host.onShutdown: terminate)'], id);
    }
  });
});
