import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { EventEnvelope } from '../../host/src/bus/EventEnvelope.ts';
import type { AuditLog } from '../../host/src/security/audit/AuditLog.ts';
import { fixturePlugin, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

// Two instances of the in-memory echo provider: 'b' is made to claim workers that 'a' owns. Its exec verb
// ['emit-for', id] emits a WorkerStateChanged about another worker; ['emit', x] one about its own worker.
const YAML = `
host: { id: h-foreign, stateDir: \${DIR}/state }
plugins:
  - name: echo
    package: ${fixturePlugin('echo')}
instances:
  - { name: a, plugin: echo, default: true }
  - { name: b, plugin: echo }
`;

const stateChanges = (t: TestHost, workerId: string): EventEnvelope[] =>
  t.events.filter((e) => e.type.endsWith('worker.state_changed') && (e.data as { workerId?: string }).workerId === workerId);

async function foreignCount(t: TestHost, instance: string): Promise<number> {
  const line = (await t.host.metrics.render()).split('\n').find((l) => l.startsWith(`plugin_foreign_events_total{plugin_instance="${instance}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

async function auditedForeign(t: TestHost): Promise<Array<{ kind: string; resource: string; principal: { id: string } }>> {
  const text = await readFile((t.host.audit as AuditLog).file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { kind: string; resource: string; principal: { id: string } })
    .filter((r) => r.kind === 'plugin.foreign_event');
}

describe('provider events from an instance that does not own the worker', { timeout: budget(180_000) }, () => {
  it('are dropped, counted, logged and audited; a listing never re-routes; three in a row quarantine the instance; the owner keeps working', async (t) => {
    const h = await startTestHost(YAML);
    t.after(() => h.stop());
    const { workers, registry } = h.host;
    await workers.createWorker({ provider: 'a', workerId: 'w-a', spec: {} });
    await workers.createWorker({ provider: 'b', workerId: 'w-b', spec: {} });

    // One foreign event, then a barrier: an event of b's own worker, published after it on the same path.
    await workers.executeCommand('w-b', ['emit-for', 'w-a']);
    await workers.executeCommand('w-b', ['emit', 'barrier-1']);
    await waitFor(() => stateChanges(h, 'w-b').length === 1, 'the barrier event of b about its own worker');
    assert.equal(stateChanges(h, 'w-a').length, 0, 'the foreign event was published');
    assert.equal(await foreignCount(h, 'b'), 1);
    await waitFor(async () => (await auditedForeign(h)).length === 1, 'the audit record of the foreign event');
    const [record] = await auditedForeign(h);
    assert.equal(record?.resource, 'Worker::w-a');
    assert.equal(record?.principal.id, 'plugin:b');
    assert.ok(h.logs.some((l) => l.includes('"level":40') && l.includes('another instance owns') && l.includes('"workerId":"w-a"')), 'no warn line names the worker');

    // b's own event reset the streak: two more foreign events do not reach three in a row.
    await workers.executeCommand('w-b', ['emit-for', 'w-a']);
    await workers.executeCommand('w-b', ['emit-for', 'w-a']);
    await workers.executeCommand('w-b', ['emit', 'barrier-2']);
    await waitFor(() => stateChanges(h, 'w-b').length === 2, 'the second barrier event of b');
    assert.equal(registry.instance('b').state, 'running');
    assert.equal(await foreignCount(h, 'b'), 3);

    // A listing in which b claims a's worker id does not move the worker: a still answers for it.
    await registry.provider('b').createWorker({ workerId: 'w-a', spec: {} });
    const listed = await workers.listWorkers();
    assert.deepEqual(listed.filter((w) => w.worker.workerId === 'w-a').map((w) => w.instance).sort(), ['a', 'b']);
    const described = await workers.describeWorker('w-a');
    assert.equal(described?.instance, 'a');
    assert.equal((await workers.getStatus('w-a')).instance, 'a');

    // Three in a row: b is quarantined, its calls are refused, a keeps answering.
    for (let i = 0; i < 3; i++) await workers.executeCommand('w-b', ['emit-for', 'w-a']).catch(() => undefined);
    await waitFor(() => registry.instance('b').state === 'quarantined', () => `b to be quarantined (state ${registry.instance('b').state})`, 30_000);
    const refused = await within(
      workers.getStatus('w-b').then(
        () => undefined,
        (error: unknown) => error,
      ),
      'the refused call to the quarantined instance',
    );
    assert.ok(refused instanceof WorkerManagerError, 'a call to the quarantined instance was not refused');
    assert.ok(['HOST_ERR_INSTANCE_UNAVAILABLE', 'HOST_ERR_PLUGIN_QUARANTINED'].includes(refused.code), refused.code);
    await waitFor(() => h.events.some((e) => e.type.endsWith('plugin.quarantined') && (e.data as { instance?: string }).instance === 'b'), 'the plugin.quarantined event of b');
    assert.match(JSON.stringify(registry.instance('b').sandbox?.stats?.().lastError), /HOST_ERR_PLUGIN_QUARANTINED.*other instances own/);
    assert.deepEqual(await workers.getStatus('w-a'), { instance: 'a', state: { phase: 'Running' } });
    assert.equal(stateChanges(h, 'w-a').length, 0);
    await workers.executeCommand('w-a', ['emit', 'own']);
    await waitFor(() => stateChanges(h, 'w-a').length === 1, 'a\'s own event, still published');
  });
});
