import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixturePlugin, startTestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// The provider's WorkerCreated event arrives during the first exec, after the create answered (as it does under load,
// when the event channel is overtaken by the call's answer): it must still carry the create's correlation id.
const YAML = `
host: { id: h-corr, stateDir: \${DIR}/state }
plugins:
  - name: late
    package: ${fixturePlugin('late-created-event')}
instances:
  - { name: late, plugin: late, default: true }
`;

describe('correlation ids of provider events', { timeout: budget(120_000) }, () => {
  it('a WorkerCreated that arrives during a later exec carries the create\'s correlation id and tenant, not the exec\'s', async (t) => {
    const h = await startTestHost(YAML);
    t.after(() => h.stop());
    await h.host.workers.createWorker({ workerId: 'w-late', tenant: 'team-a', spec: {}, correlationId: 'corr-create' });
    await h.host.workers.executeCommand('w-late', ['true'], budget(30_000), { correlationId: 'corr-exec' });
    const created = () => h.events.filter((e) => e.busSubject?.endsWith('worker.created') && e.subject === 'w-late');
    await waitFor(() => created().length === 1, 'the WorkerCreated event');
    assert.equal(created()[0]?.correlationid, 'corr-create');
    assert.equal(created()[0]?.tenant, 'team-a');

    // A second exec emits nothing more and the terminate's own event carries the terminate's id.
    await h.host.workers.executeCommand('w-late', ['true'], budget(30_000), { correlationId: 'corr-exec-2' });
    await h.host.workers.terminateWorker('w-late', { correlationId: 'corr-terminate' });
    const ended = () => h.events.filter((e) => e.busSubject?.endsWith('worker.terminated') && e.subject === 'w-late');
    await waitFor(() => ended().length === 1, 'the WorkerTerminated event');
    assert.equal(ended()[0]?.correlationid, 'corr-terminate');
    assert.equal(created().length, 1);
  });
});
