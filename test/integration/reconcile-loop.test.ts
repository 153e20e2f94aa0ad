/**
 * The periodic reconciliation of the ledger with each provider (ReconcileLoop), on the real process provider: what a
 * missed event, a worker removed behind the host's back and a worker made behind its back become, and the metrics
 * that count them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

const SLEEP = { command: ['sleep', '600'] };

/** Two process instances: `a` adopts orphans (the default), `b` terminates them. */
const yaml = (reconcileMs: number): string => `
host: { id: reconcile, stateDir: \${DIR}/state, logLevel: debug }
ledger: { reconcileIntervalMs: ${reconcileMs} }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process, default: true }
  - { name: b, plugin: process, orphans: terminate }
`;

/** The value of one series in the host's Prometheus text, 0 when absent. */
async function metric(t: TestHost, name: string, labels: Record<string, string>): Promise<number> {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of (await t.host.metrics.render()).split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((pair) => inside.split(',').includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** Waits until the host published an event of `type` for the worker: the barrier for its provider's events. */
const eventFor = async (t: TestHost, workerId: string, type: string): Promise<void> => {
  await waitFor(() => t.events.some((e) => e.subject === workerId && e.type.endsWith(type)), `${type} of ${workerId}`, budget(60_000));
};

describe('periodic reconciliation of the ledger with the providers', () => {
  it('on its own timer, a live record whose worker the provider no longer has ends Failed(Lost), counted as lost drift', async (t) => {
    const h = await startTestHost(yaml(1_000));
    t.after(() => h.stop());
    // A record the host wrote, for a worker no provider has (removed by hand while the host ran).
    await h.host.ledger.store.create({ id: 'w-ghost', tenant: 'default', owner: 'alice', instance: 'a', spec: SLEEP, state: { phase: 'Running' } });
    await waitFor(async () => (await h.host.ledger.store.get('w-ghost'))?.state.phase === 'Failed', 'the ghost to fail', budget(60_000));
    const ghost = await h.host.ledger.store.get('w-ghost');
    assert.deepEqual([ghost?.state.phase, ghost?.state.reason], ['Failed', 'Lost']);
    assert.equal(await metric(h, 'worker_drift_total', { provider: 'a', kind: 'lost' }), 1);
    assert.ok((await metric(h, 'worker_reconcile_duration_seconds_count', { provider: 'a' })) >= 1, 'the rounds are timed');
  });

  it('applies a state change whose event was missed, as state drift, and leaves up-to-date records alone', async (t) => {
    const h = await startTestHost(yaml(600_000));
    t.after(() => h.stop());
    const kept = await h.host.workers.createWorker({ spec: SLEEP });
    // A job that ended while the host missed it: made behind the host's back, its end published, and only then a
    // record written that still says Running.
    await h.host.registry.provider('a').createWorker({ workerId: 'w-missed', spec: { command: ['sh', '-c', 'exit 3'] } });
    await eventFor(h, 'w-missed', '.failed');
    await h.host.ledger.store.create({ id: 'w-missed', tenant: 'default', owner: 'alice', instance: 'a', spec: {}, state: { phase: 'Running' } });
    await h.host.workers.reconcile({ all: true });
    const missed = await h.host.ledger.store.get('w-missed');
    assert.equal(missed?.state.phase, 'Failed');
    assert.equal(missed?.state.exitCode, 3);
    assert.equal((await h.host.ledger.store.get(kept.worker.workerId))?.state.phase, 'Running');
    assert.equal(await metric(h, 'worker_drift_total', { provider: 'a', kind: 'state' }), 1, 'only the missed change is drift');
    assert.equal(await metric(h, 'worker_drift_total', { provider: 'a', kind: 'lost' }), 0);
    await h.host.workers.terminateWorker(kept.worker.workerId);
  });

  it('a running worker with no record is adopted or terminated per its instance\'s orphans policy; a finished one is left alone', async (t) => {
    const h = await startTestHost(yaml(600_000));
    t.after(() => h.stop());
    await h.host.registry.provider('a').createWorker({ workerId: 'w-stray-a', spec: SLEEP });
    await h.host.registry.provider('b').createWorker({ workerId: 'w-stray-b', spec: SLEEP });
    await h.host.registry.provider('a').createWorker({ workerId: 'w-done-a', spec: { command: ['true'] } });
    await eventFor(h, 'w-done-a', '.terminated');
    await h.host.workers.reconcile({ all: true });
    const adopted = await h.host.ledger.store.get('w-stray-a');
    assert.deepEqual([adopted?.origin, adopted?.state.phase, adopted?.instance], ['orphan', 'Running', 'a']);
    assert.equal(await h.host.ledger.store.get('w-stray-b'), undefined, 'terminated, not recorded');
    await waitFor(async () => (await h.host.registry.provider('b').getWorkerStatus({ workerId: 'w-stray-b' })).phase === 'Terminated', 'the orphan on b to be terminated', budget(60_000));
    assert.equal(await h.host.ledger.store.get('w-done-a'), undefined, 'a finished worker with no record is not brought back');
    assert.equal(await metric(h, 'worker_orphans_total', { provider: 'a', action: 'adopt' }), 1);
    assert.equal(await metric(h, 'worker_orphans_total', { provider: 'b', action: 'terminate' }), 1);
    assert.equal(await metric(h, 'worker_drift_total', { provider: 'a', kind: 'orphan' }), 1);
    // A second round finds nothing new: the adopted orphan now has its record.
    await h.host.workers.reconcile({ all: true });
    assert.equal(await metric(h, 'worker_orphans_total', { provider: 'a', action: 'adopt' }), 1);
    await h.host.workers.terminateWorker('w-stray-a');
  });

  it('an instance that cannot be reached is skipped: its workers keep their state and none is Lost', async (t) => {
    const h = await startTestHost(yaml(600_000));
    t.after(() => h.stop());
    const live = await h.host.workers.createWorker({ provider: 'b', spec: SLEEP });
    // Quarantined, as after a crash loop: its plugin answers nothing, though its workers may well still run.
    h.host.registry.quarantine('b', new WorkerManagerError('WM_ERR_UNAVAILABLE', 'test: instance b is down'));
    await h.host.workers.reconcile({ all: true });
    const record = await h.host.ledger.store.get(live.worker.workerId);
    assert.equal(record?.state.phase, 'Running');
    assert.equal(await metric(h, 'worker_drift_total', { provider: 'b', kind: 'lost' }), 0);
  });
});
