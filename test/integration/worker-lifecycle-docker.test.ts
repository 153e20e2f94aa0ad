import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import type { WorkerRecord, WorkerStore } from '../../host/src/workers/ledger/index.ts';
import { startRegistryDouble } from '../helpers/registryDouble.ts';
import { requireDocker } from '../helpers/requireDocker.ts';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';
import { docker, IMAGE, newHostId, removeOwned, secretsRoot } from '../plugins/docker/helpers.ts';

const skip = await requireDocker();

// The host's deadlines and start timeouts on real containers: the same path as for every provider (see
// worker-lifecycle.test.ts), here against the Docker Engine and an image pull a registry double holds.

/** A host with one Docker instance whose workers get `startTimeoutMs`, cleaned up (by its labels) when the test ends. */
async function dockerHost(t: TestContext, startTimeoutMs = 120_000): Promise<{ h: TestHost; hostId: string }> {
  const hostId = newHostId('lifecycle');
  const h = await startTestHost(`
host: { id: ${hostId}, stateDir: \${DIR}/state }
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
instances:
  - name: d
    plugin: docker
    default: true
    workerStartTimeoutMs: ${startTimeoutMs}
    config: { secretsDir: ${secretsRoot}, defaultGracePeriodMs: 1000 }
`);
  // Stopped first, then whatever still carries its labels is removed (also when the test failed halfway).
  t.after(() => h.stop());
  t.after(() => removeOwned(hostId));
  return { h, hostId };
}

function ended(store: WorkerStore, workerId: string, timeoutMs?: number): Promise<WorkerRecord> {
  return waitFor(async () => {
    const r = await store.get(workerId);
    return r !== undefined && (r.state.phase === 'Failed' || r.state.phase === 'Terminated') ? r : undefined;
  }, `${workerId} to end`, timeoutMs);
}

/** Containers of one worker that the engine still runs. */
async function runningContainers(hostId: string, workerId: string): Promise<number> {
  const rows = await docker.listContainers({ filters: { label: [`worker-manager/host=${hostId}`, `worker-manager/worker-id=${workerId}`] } });
  return rows.length;
}

describe('deadlines and start timeouts on Docker workers', { skip, timeout: budget(600_000) }, () => {
  it('a container running `sleep 600` with a short timeoutMs ends Failed(DeadlineExceeded), and no container of it runs', async (t) => {
    const { h, hostId } = await dockerHost(t);
    await h.host.workers.createWorker({ workerId: 'dl-docker', spec: { image: IMAGE, command: ['sleep', '600'], timeoutMs: 3_000 } });
    await waitFor(async () => (await h.host.ledger.store.get('dl-docker'))?.state.phase === 'Running', 'the container to run', 60_000);
    assert.equal(await runningContainers(hostId, 'dl-docker'), 1);
    const record = await ended(h.host.ledger.store, 'dl-docker', 60_000);
    assert.deepEqual([record.state.phase, record.state.reason], ['Failed', 'DeadlineExceeded']);
    assert.ok(Date.parse(record.finishedAt ?? '') >= Date.parse(record.timestamps.Running ?? '') + 3_000, 'not before its deadline');
    await waitFor(async () => (await runningContainers(hostId, 'dl-docker')) === 0, 'no container of the worker to run');
    assert.doesNotMatch(await h.host.metrics.render(), /worker_illegal_transitions_total\{provider="d"/);
    t.diagnostic(`dl-docker ended by ${record.ending === undefined ? 'its provider' : 'the host'}: ${record.history.map((x) => `${x.from}>${x.to}`).join(' ')}`);
  });

  it('a worker whose image pull never finishes fails with StartTimeout and its pending reason ImagePull; what the provider made is gone', async (t) => {
    // After hooks run in the order they are registered: the host stops first, then the registry goes.
    const { h, hostId } = await dockerHost(t, 3_000);
    const reg = await startRegistryDouble(docker);
    const ref = await reg.serve(IMAGE, `wm-test/stuck-${randomBytes(4).toString('hex')}`, '1');
    t.after(async () => {
      reg.release();
      await reg.close();
      // The engine may have finished the pull once it was let go.
      await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
    });
    reg.hold();
    const created = await h.host.workers.createWorker({ workerId: 'st-docker', spec: { image: ref, command: ['sleep', '600'] } });
    assert.deepEqual(created.worker.state, { phase: 'Starting', pendingReason: 'ImagePull' });
    const record = await ended(h.host.ledger.store, 'st-docker', 60_000);
    assert.deepEqual([record.state.phase, record.state.reason, record.state.pendingReason, record.startTimeoutMs], ['Failed', 'StartTimeout', 'ImagePull', 3_000]);
    assert.equal(record.state.message, 'did not start within 3000 ms (Starting, last pending reason ImagePull)');
    // The provider's pending create was cancelled by the host's terminate (a cancelled pending create reads
    // Terminated until it is forgotten), and no container of the worker exists.
    await waitFor(async () => !(await h.host.registry.provider('d').listWorkers({})).some((w) => w.workerId === 'st-docker' && w.state.phase !== 'Terminated'), 'the provider to drop the pending worker');
    const containers = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${hostId}`, 'worker-manager/worker-id=st-docker'] } });
    assert.deepEqual(containers.map((c) => c.State), []);
  });
});
