import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { EventEnvelope } from '../../host/src/bus/EventEnvelope.ts';
import { fixturePlugin, processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// The host's worker ledger, through a real host: the in-memory echo provider where only the ledger's behaviour
// matters, the process provider where workers must outlive a host and be adopted by the next one.
const ECHO = `
host: { id: h-ledger, stateDir: \${DIR}/state }
plugins:
  - name: echo
    package: ${fixturePlugin('echo')}
instances:
  - { name: a, plugin: echo, default: true }
`;

const processYaml = (stateDir: string): string => `
host: { id: h-ledger-proc, stateDir: ${stateDir} }
${processProviderYaml('a')}`;

const SLEEP = { command: ['sleep', '600'] };

const eventsOf = (t: TestHost, workerId: string): EventEnvelope[] => t.events.filter((e) => (e.data as { workerId?: string }).workerId === workerId);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WorkerManagerError, String(error));
    return error.code;
  }
  return 'ok';
}

describe('the worker ledger in a real host', { timeout: budget(240_000) }, () => {
  it('records a create before the provider runs it, then each transition with its history; events carry the revision they announce', async (t) => {
    const h = await startTestHost(ECHO);
    t.after(() => h.stop());
    const created = await h.host.workers.createWorker({ workerId: 'w-rec', spec: { labels: { team: 'ci' } }, tenant: 'team-a', owner: 'alice', correlationId: 'corr-1' });
    assert.equal(created.instance, 'a');
    const record = await h.host.ledger.store.get('w-rec');
    assert.ok(record !== undefined);
    assert.deepEqual(
      { tenant: record.tenant, owner: record.owner, instance: record.instance, origin: record.origin, desired: record.desired, phase: record.state.phase, correlationId: record.correlationId },
      { tenant: 'team-a', owner: 'alice', instance: 'a', origin: 'request', desired: 'Running', phase: 'Running', correlationId: 'corr-1' },
    );
    assert.deepEqual(record.history.map((x) => `${x.from}>${x.to}`), ['Pending>Creating', 'Creating>Running']);
    assert.equal(record.labels['team'], 'ci');
    assert.equal(record.labels['wm.tenant'], 'team-a');

    // A provider event is written before it is published: whoever reads the record after the event is never behind it.
    await h.host.workers.executeCommand('w-rec', ['emit', 'pause']);
    const changed = await waitFor(() => eventsOf(h, 'w-rec').find((e) => e.type.endsWith('worker.state_changed')), 'the state_changed event');
    const announced = (changed.data as { revision?: number }).revision;
    assert.equal(typeof announced, 'number');
    const after = await h.host.ledger.store.get('w-rec');
    assert.ok(after !== undefined && after.revision >= (announced as number));
    assert.equal(after.state.phase, 'Paused');

    const gone = await h.host.workers.terminateWorker('w-rec');
    assert.equal(gone.alreadyGone, false);
    const ended = await h.host.ledger.store.get('w-rec');
    assert.equal(ended?.state.phase, 'Terminated');
    assert.equal(ended?.desired, 'Terminated');
    assert.deepEqual(ended?.history.slice(-2).map((x) => `${x.from}>${x.to}`), ['Paused>Stopping', 'Stopping>Terminated']);
    assert.ok(ended?.finishedAt !== undefined);
  });

  it('ignores, logs and counts a state change the state machine refuses, and never applies it', async (t) => {
    const h = await startTestHost(ECHO);
    t.after(() => h.stop());
    await h.host.workers.createWorker({ workerId: 'w-ill', spec: {} });
    // The ledger says the worker ended; the provider then claims it moved Running -> Paused.
    await h.host.ledger.store.transition('w-ill', { phase: 'Terminated', exitCode: 0 });
    await h.host.workers.executeCommand('w-ill', ['emit', 'late']);
    await waitFor(() => eventsOf(h, 'w-ill').some((e) => e.type.endsWith('worker.state_changed')), 'the provider event');
    assert.equal((await h.host.ledger.store.get('w-ill'))?.state.phase, 'Terminated');
    const metrics = await h.host.metrics.render();
    assert.match(metrics, /worker_illegal_transitions_total\{provider="a",from="Terminated",to="Paused"\} 1/);
    assert.ok(h.logs.some((l) => l.includes('impossible worker state change') && l.includes('w-ill')));
  });

  it('scopes Idempotency-Key to tenant and principal: a repeat returns the first worker, another body is 409, another tenant gets its own worker', async (t) => {
    const h = await startTestHost(ECHO);
    t.after(() => h.stop());
    const { workers } = h.host;
    const first = await workers.createWorker({ spec: { labels: { n: '1' } }, tenant: 'team-a', owner: 'alice', idempotencyKey: 'k-1' });
    const again = await workers.createWorker({ spec: { labels: { n: '1' } }, tenant: 'team-a', owner: 'alice', idempotencyKey: 'k-1' });
    assert.equal(again.worker.workerId, first.worker.workerId);
    assert.equal(await codeOf(workers.createWorker({ spec: { labels: { n: '2' } }, tenant: 'team-a', owner: 'alice', idempotencyKey: 'k-1' })), 'HOST_ERR_IDEMPOTENCY_CONFLICT');
    const otherTenant = await workers.createWorker({ spec: { labels: { n: '1' } }, tenant: 'team-b', owner: 'alice', idempotencyKey: 'k-1' });
    const otherPrincipal = await workers.createWorker({ spec: { labels: { n: '1' } }, tenant: 'team-a', owner: 'bob', idempotencyKey: 'k-1' });
    const ids = new Set([first.worker.workerId, otherTenant.worker.workerId, otherPrincipal.worker.workerId]);
    assert.equal(ids.size, 3, 'another tenant or principal reusing a key got the first worker');
    assert.equal((await h.host.ledger.store.get(otherTenant.worker.workerId))?.tenant, 'team-b');
  });

  it('a create the provider refuses is recorded as Failed(CreateFailed), and a retry with its key tries again', async (t) => {
    const h = await startTestHost(ECHO.replace('instances:', 'instances:\n  - { name: tiny, plugin: echo, config: { maxWorkers: 1 } }'));
    t.after(() => h.stop());
    await h.host.workers.createWorker({ provider: 'tiny', workerId: 'w-fill', spec: {} });
    assert.equal(await codeOf(h.host.workers.createWorker({ provider: 'tiny', workerId: 'w-full', spec: {}, idempotencyKey: 'k-full' })), 'WM_ERR_RESOURCE_EXHAUSTED');
    const failed = await h.host.ledger.store.get('w-full');
    assert.equal(failed?.state.phase, 'Failed');
    assert.equal(failed?.state.reason, 'CreateFailed');
    assert.match(failed?.state.message ?? '', /WM_ERR_RESOURCE_EXHAUSTED/);
    await h.host.workers.terminateWorker('w-fill');
    const retried = await h.host.workers.createWorker({ provider: 'tiny', workerId: 'w-full', spec: {}, idempotencyKey: 'k-full' });
    assert.equal(retried.worker.workerId, 'w-full');
    assert.equal((await h.host.ledger.store.get('w-full'))?.state.phase, 'Running');
  });

  it('after a host restart: keys still dedupe, live workers are adopted, a vanished one is Lost, an unrecorded one is an orphan', async (t) => {
    const first = await startTestHost(processYaml('${DIR}/state'));
    const later: { second?: TestHost } = {};
    t.after(async () => {
      await later.second?.stop();
      await first.stop();
    });
    const { workers } = first.host;
    const kept = await workers.createWorker({ spec: SLEEP, tenant: 'team-a', owner: 'alice', idempotencyKey: 'k-kept' });
    // A record whose worker will not be there after the restart, and a worker with no record.
    await first.host.ledger.store.create({ id: 'w-vanished', tenant: 'team-a', owner: 'alice', instance: 'a', spec: SLEEP, state: { phase: 'Running' } });
    await first.host.registry.provider('a').createWorker({ workerId: 'w-stray', spec: SLEEP });
    await first.host.stop();

    const second = (later.second = await startTestHost(processYaml(`${first.dir}/state`)));
    const store = second.host.ledger.store;
    assert.equal((await store.get(kept.worker.workerId))?.state.phase, 'Running');
    const vanished = await store.get('w-vanished');
    assert.deepEqual([vanished?.state.phase, vanished?.state.reason], ['Failed', 'Lost']);
    assert.deepEqual(vanished?.history.slice(-2).map((x) => `${x.from}>${x.to}`), ['Running>Unknown', 'Unknown>Failed']);
    const stray = await store.get('w-stray');
    assert.equal(stray?.origin, 'orphan');
    assert.equal(stray?.state.phase, 'Running');
    // The retry after the restart returns the worker the first host made; the process count does not change.
    const retried = await second.host.workers.createWorker({ spec: SLEEP, tenant: 'team-a', owner: 'alice', idempotencyKey: 'k-kept' });
    assert.equal(retried.worker.workerId, kept.worker.workerId);
    const listed = await second.host.workers.listWorkers();
    assert.equal(listed.filter((w) => w.worker.state.phase === 'Running').length, 2);
    for (const id of [kept.worker.workerId, 'w-stray']) await second.host.workers.terminateWorker(id);
  });
});
